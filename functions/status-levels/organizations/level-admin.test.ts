import { describe, expect, it } from "vitest";
import { body, call, exec, expectProblem, fixtures, listBody } from "../../_test/harness.ts";

const post = (path: string, token: string | null, json: unknown) => call(path, { method: "POST", token, json });

describe("POST /organizations/{id}/grant", () => {
  it("lets a platform admin grant B for 18 months and refuses a second grant with 409", async () => {
    const p = await fixtures.orgWithPeople();
    const res = await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "B", notes: "verified on site" });
    expect(res.status).toBe(201);
    const row = await body(res);
    expect(row).toMatchObject({ level: "B", is_active: true, granted_by: p.platformAdmin.id, notes: "verified on site" });
    const months = (Date.parse(row.valid_until) - Date.parse(row.valid_from)) / (30.44 * 86_400_000);
    expect(months).toBeGreaterThan(17.9);
    expect(months).toBeLessThan(18.1);
    const again = await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "B" });
    const problem = await expectProblem(again, 409, "level_already_active");
    expect(problem.hint).toMatch(/Renew/);
  });

  it("refuses everyone else: owners, admins, members, outsiders (403) and anonymous (401)", async () => {
    const p = await fixtures.orgWithPeople();
    for (const who of [p.owner, p.admin, p.manager, p.member, p.outsider]) {
      await expectProblem(await post(`/status-levels/organizations/${p.orgId}/grant`, who.token, { level: "B" }), 403, "not_allowed");
    }
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/grant`, null, { level: "B" }), 401, "unauthorized");
    const rows = await exec("select count(*)::int as n from public.organization_status_levels where organization_id = $1", [p.orgId]);
    expect(rows[0]!.n).toBe(0);
  });

  it("maps business rules: C without B is 422, A without a subscription is 422, unknown organization 404", async () => {
    const p = await fixtures.orgWithPeople();
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "C" }), 422, "level_c_requires_b");
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "A" }), 422, "subscription_required");
    await expectProblem(await post(`/status-levels/organizations/${crypto.randomUUID()}/grant`, p.platformAdmin.token, { level: "B" }), 404, "organization_not_found");
    await expectProblem(
      await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "B", valid_until: "2020-01-01T00:00:00Z" }),
      422,
      "valid_until_in_past",
    );
  });

  it("grants A with a subscription of the organization", async () => {
    const p = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(p.orgId);
    const res = await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "A", subscription_id: sub.id });
    expect(res.status).toBe(201);
    expect(await body(res)).toMatchObject({ level: "A", subscription_id: sub.id });
  });
});

describe("POST /organizations/{id}/revoke", () => {
  it("revokes B, says whether something was active, and leaves C alone", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    await fixtures.levelRow(p.orgId, "C");
    const res = await post(`/status-levels/organizations/${p.orgId}/revoke`, p.platformAdmin.token, { level: "B", reason: "failed audit" });
    expect(await body(res)).toEqual({ organization_id: p.orgId, level: "B", success: true });
    const again = await post(`/status-levels/organizations/${p.orgId}/revoke`, p.platformAdmin.token, { level: "B", reason: "again" });
    expect(again.status).toBe(200);
    expect((await body(again)).success).toBe(false);
    const status = await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }));
    expect(status.current_level).toBe("C");
    expect(status.active_levels.map((l: { level: string }) => l.level)).toEqual(["C"]);
  });

  it("needs a reason and a platform admin", async () => {
    const p = await fixtures.orgWithPeople();
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/revoke`, p.platformAdmin.token, { level: "B", reason: "  " }), 400, "invalid_request");
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/revoke`, p.owner.token, { level: "B", reason: "x" }), 403, "not_allowed");
  });
});

describe("POST /organizations/{id}/renew and /validity", () => {
  it("renews an active B for 18 months from now and records the re-verification", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B", { validUntil: new Date(Date.now() + 20 * 86_400_000) });
    const res = await post(`/status-levels/organizations/${p.orgId}/renew`, p.platformAdmin.token, { notes: "re-verified" });
    expect(res.status).toBe(200);
    const row = await body(res);
    expect(Date.parse(row.valid_until)).toBeGreaterThan(Date.now() + 540 * 86_400_000);
    expect(Date.parse(row.last_verified_at)).toBeGreaterThan(Date.now() - 60_000);
    const history = await body(await call(`/status-levels/organizations/${p.orgId}/history`, { token: p.member.token }));
    expect(history[0]).toMatchObject({ action: "renewed", level: "B", actor_id: p.platformAdmin.id });
  });

  it("renewing without an active B is a 404, and nobody but platform admins may renew", async () => {
    const p = await fixtures.orgWithPeople();
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/renew`, p.platformAdmin.token, {}), 404, "level_not_active");
    await expectProblem(await post(`/status-levels/organizations/${p.orgId}/renew`, p.owner.token, {}), 403, "not_allowed");
  });

  it("moves the end of an active B", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    const until = new Date(Date.now() + 100 * 86_400_000).toISOString();
    const res = await post(`/status-levels/organizations/${p.orgId}/validity`, p.platformAdmin.token, { level: "B", valid_until: until, reason: "audit moved" });
    expect(res.status).toBe(200);
    expect(Date.parse((await body(res)).valid_until)).toBe(Date.parse(until));
  });
});

describe("GET /organizations/{id}/history", () => {
  it("pages newest first with the total, for members and platform admins only", async () => {
    const p = await fixtures.orgWithPeople();
    await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "B" });
    await post(`/status-levels/organizations/${p.orgId}/revoke`, p.platformAdmin.token, { level: "B", reason: "test" });
    await post(`/status-levels/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "B" });
    const res = await call(`/status-levels/organizations/${p.orgId}/history?limit=2&offset=0`, { token: p.member.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-total-count")).toBe("3");
    expect(res.headers.get("link")).toContain(`<${`/status-levels/organizations/${p.orgId}/history?limit=2&offset=2`}>; rel="next"`);
    const page = await listBody(res);
    expect(page.total).toBe(3);
    expect(page.items.map((h) => h.action)).toEqual(["granted", "revoked"]);
    const rest = await listBody(await call(`/status-levels/organizations/${p.orgId}/history?limit=2&offset=2`, { token: p.platformAdmin.token }));
    expect(rest.items.map((h) => h.action)).toEqual(["granted"]);
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}/history`, { token: p.outsider.token }), 403, "not_allowed");
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}/history`), 401, "unauthorized");
  });
});
