import { describe, expect, it } from "vitest";
import { call, expectProblem, fixtures, listBody } from "../../_test/harness.ts";

describe("GET /status-levels/admin/level-c-at-risk", () => {
  it("lists a C holder whose criteria stop being met within the horizon, with the failing criterion and its date, for platform admins only", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelCAtRiskInFiveDays(p.orgId);
    await fixtures.levelRow(p.orgId, "C");
    const res = await call("/status-levels/admin/level-c-at-risk?within=30&limit=200", { token: p.platformAdmin.token });
    expect(res.status).toBe(200);
    expect(Date.parse(res.headers.get("x-computed-at")!)).toBeGreaterThan(Date.now() - 5 * 60_000);
    const { total, items } = await listBody(res);
    expect(total).toBeGreaterThanOrEqual(1);
    const ours = items.find((i) => i.organization.id === p.orgId);
    expect(ours).toMatchObject({ meets_criteria_now: true, meets_criteria_at_horizon: false, failing: [expect.objectContaining({ criterion: "review_count" })] });
    expect(ours!.first_failing_on).toBe(ours!.failing[0].fails_on);

    // Within 3 days it is not at risk yet.
    const soon = await listBody(await call("/status-levels/admin/level-c-at-risk?within=3&limit=200", { token: p.platformAdmin.token }));
    expect(soon.items.some((i) => i.organization.id === p.orgId)).toBe(false);

    for (const who of [p.owner, p.admin, p.member, p.outsider]) {
      await expectProblem(await call("/status-levels/admin/level-c-at-risk", { token: who.token }), 403, "not_allowed");
    }
    await expectProblem(await call("/status-levels/admin/level-c-at-risk"), 401, "unauthorized");
    await expectProblem(await call("/status-levels/admin/level-c-at-risk?within=0", { token: p.platformAdmin.token }), 400, "invalid_request");
  });
});
