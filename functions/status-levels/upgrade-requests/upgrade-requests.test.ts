import { describe, expect, it } from "vitest";
import { body, call, exec, expectProblem, fixtures, listBody } from "../../_test/harness.ts";

const post = (path: string, token: string | null, json?: unknown) => call(path, { method: "POST", token, ...(json === undefined ? {} : { json }) });

async function requestB(orgId: string, token: string) {
  return post("/status-levels/upgrade-requests", token, { organization_id: orgId, target_level: "B", message: "we are ready", evidence_urls: ["https://example.org/audit.pdf"] });
}

describe("POST /upgrade-requests", () => {
  it("lets owners and admins ask; managers, members and outsiders get 403, anonymous 401", async () => {
    const p = await fixtures.orgWithPeople();
    for (const who of [p.manager, p.member, p.outsider, p.platformAdmin]) await expectProblem(await requestB(p.orgId, who.token), 403, "not_allowed");
    await expectProblem(await post("/status-levels/upgrade-requests", null, { organization_id: p.orgId, target_level: "B" }), 401, "unauthorized");
    const res = await requestB(p.orgId, p.admin.token);
    expect(res.status).toBe(201);
    expect(await body(res)).toMatchObject({ organization_id: p.orgId, target_level: "B", status: "pending", requested_by: p.admin.id });
    await expectProblem(await requestB(p.orgId, p.owner.token), 409, "request_already_pending");
  });

  it("shows the pending request in the status view right away (the cache is invalidated)", async () => {
    const p = await fixtures.orgWithPeople();
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.owner.token }))).pending_upgrade_request).toBeNull();
    const created = await body(await requestB(p.orgId, p.owner.token));
    const view = await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.owner.token }));
    expect(view.pending_upgrade_request).toMatchObject({ id: created.id, target_level: "B" });
  });

  it("refuses C without an active B (422)", async () => {
    const p = await fixtures.orgWithPeople();
    await expectProblem(await post("/status-levels/upgrade-requests", p.owner.token, { organization_id: p.orgId, target_level: "C" }), 422, "level_c_requires_b");
  });

  it("the database's rate limit reaches the client as 429 rate_limited with Retry-After (5 requests per user in 10 minutes)", async () => {
    const people = await Promise.all(Array.from({ length: 6 }, () => fixtures.orgWithPeople()));
    const owner = await fixtures.user("serial-owner");
    for (const p of people) await exec("insert into public.organization_members values ($1, $2, 'owner')", [p.orgId, owner.id]);
    const statuses: number[] = [];
    for (const p of people.slice(0, 5)) {
      statuses.push((await post("/status-levels/upgrade-requests", owner.token, { organization_id: p.orgId, target_level: "B" })).status);
    }
    expect(statuses).toEqual([201, 201, 201, 201, 201]);
    const limited = await post("/status-levels/upgrade-requests", owner.token, { organization_id: people[5]!.orgId, target_level: "B" });
    const problem = await expectProblem(limited, 429, "rate_limited");
    expect(problem.detail).toMatch(/at most 5 per user/);
    expect(Number(limited.headers.get("retry-after"))).toBe(problem.retry_after_seconds);
    expect(problem.retry_after_seconds).toBeGreaterThan(0);
    expect(problem.retry_after_seconds).toBeLessThanOrEqual(600);
    const pending = await exec("select count(*)::int as n from public.upgrade_requests where organization_id = $1", [people[5]!.orgId]);
    expect(pending[0]!.n).toBe(0);
  });
});

describe("request decisions", () => {
  it("approve grants the level in the same transaction; the org sees B at once", async () => {
    const p = await fixtures.orgWithPeople();
    const request = await body(await requestB(p.orgId, p.owner.token));
    for (const who of [p.owner, p.member, p.outsider]) await expectProblem(await post(`/status-levels/upgrade-requests/${request.id}/approve`, who.token, {}), 403, "not_allowed");
    const res = await post(`/status-levels/upgrade-requests/${request.id}/approve`, p.platformAdmin.token, { notes: "documents checked" });
    expect(res.status).toBe(200);
    const result = await body(res);
    expect(result.request).toMatchObject({ status: "approved", decided_by: p.platformAdmin.id, decision_note: "documents checked" });
    expect(result.level).toMatchObject({ level: "B", is_active: true });
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }))).current_level).toBe("B");
    await expectProblem(await post(`/status-levels/upgrade-requests/${request.id}/approve`, p.platformAdmin.token, {}), 409, "request_not_pending");
  });

  it("reject needs a note; cancel is for the requester or an owner/admin", async () => {
    const p = await fixtures.orgWithPeople();
    const first = await body(await requestB(p.orgId, p.admin.token));
    await expectProblem(await post(`/status-levels/upgrade-requests/${first.id}/reject`, p.platformAdmin.token, {}), 400, "invalid_request");
    const rejected = await body(await post(`/status-levels/upgrade-requests/${first.id}/reject`, p.platformAdmin.token, { note: "audit missing" }));
    expect(rejected).toMatchObject({ status: "rejected", decision_note: "audit missing" });

    const second = await body(await requestB(p.orgId, p.admin.token));
    await expectProblem(await post(`/status-levels/upgrade-requests/${second.id}/cancel`, p.member.token), 403, "not_allowed");
    await expectProblem(await post(`/status-levels/upgrade-requests/${second.id}/cancel`, p.outsider.token), 404, "request_not_found");
    const cancelled = await body(await post(`/status-levels/upgrade-requests/${second.id}/cancel`, p.owner.token));
    expect(cancelled).toMatchObject({ status: "cancelled", decided_by: p.owner.id });
  });

  it("lists an organization's requests for members and the pending queue for platform admins", async () => {
    const p = await fixtures.orgWithPeople();
    const created = await body(await requestB(p.orgId, p.owner.token));
    const list = await listBody(await call(`/status-levels/organizations/${p.orgId}/upgrade-requests?status=pending`, { token: p.member.token }));
    expect(list.total).toBe(1);
    expect(list.items[0]!.id).toBe(created.id);
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}/upgrade-requests`, { token: p.outsider.token }), 403, "not_allowed");

    const queue = await call("/status-levels/admin/upgrade-requests?limit=200", { token: p.platformAdmin.token });
    expect(queue.status).toBe(200);
    const { items } = await listBody(queue);
    expect(items.find((i) => i.id === created.id)).toMatchObject({ organization: { id: p.orgId }, current_level: "0" });
    await expectProblem(await call("/status-levels/admin/upgrade-requests", { token: p.owner.token }), 403, "not_allowed");
  });
});
