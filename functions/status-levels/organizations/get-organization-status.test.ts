import { describe, expect, it } from "vitest";
import { body, call, deadUrl, exec, expectProblem, fixtures, restRequestsFor } from "../../_test/harness.ts";

describe("GET /status-levels/organizations/{id}", () => {
  it("gives members and platform admins the full view, with can_manage for owners, admins and platform admins", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    const expected = { owner: true, admin: true, manager: false, member: false, platformAdmin: true } as const;
    for (const [who, canManage] of Object.entries(expected)) {
      const res = await call(`/status-levels/organizations/${p.orgId}`, { token: p[who as keyof typeof expected].token });
      expect(res.status, who).toBe(200);
      const view = await body(res);
      expect(view, who).toMatchObject({ organization_id: p.orgId, current_level: "B", visibility: "full", can_manage: canManage });
      expect(view.level_c_progress.has_active_b, who).toBe(true);
      expect(view.level_c_checklist.items.has_active_b.met, who).toBe(true);
      expect(view.active_levels[0]).toHaveProperty("notes");
      expect(view).not.toHaveProperty("viewer");
    }
  });

  it("reaches an organization whose id is any uuid Postgres takes, not only an RFC 4122 version 4 one", async () => {
    // Version 1 digit and a variant outside RFC 4122: the platform's ids need not come from gen_random_uuid().
    const hex = crypto.randomUUID().replace(/-/g, "");
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-1${hex.slice(13, 16)}-1${hex.slice(17, 20)}-${hex.slice(20)}`;
    await exec("insert into public.organizations (id, name) values ($1, 'Old id')", [id]);
    const res = await call(`/status-levels/organizations/${id.toUpperCase()}`);
    expect(res.status).toBe(200);
    expect(await body(res)).toMatchObject({ organization_id: id, current_level: "0" });
  });

  it("gives outsiders and anonymous callers the public projection only", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    for (const token of [p.outsider.token, null]) {
      const res = await call(`/status-levels/organizations/${p.orgId}`, { token });
      expect(res.status).toBe(200);
      const view = await body(res);
      expect(view).toMatchObject({ current_level: "B", visibility: "public", can_manage: false, level_c_progress: null, level_c_checklist: null, pending_upgrade_request: null });
      expect(Object.keys(view.active_levels[0]).sort()).toEqual(["level", "valid_from", "valid_until"]);
    }
  });

  it("hides a non-public organization from outsiders and anonymous callers (404, like an unknown id)", async () => {
    const p = await fixtures.orgWithPeople({ isPublic: false });
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}`, { token: p.outsider.token }), 404, "organization_not_found");
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}`), 404, "organization_not_found");
    await expectProblem(await call(`/status-levels/organizations/${crypto.randomUUID()}`), 404, "organization_not_found");
    expect((await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token })).status).toBe(200);
  });

  it("answers a repeated read from the cache with no PostgREST request at all", async () => {
    const p = await fixtures.orgWithPeople();
    const first = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token });
    expect(first.headers.get("x-cache")).toBe("miss");
    expect(await restRequestsFor(p.member.id)).toBe(1);
    const second = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token });
    expect(second.headers.get("x-cache")).toBe("hit");
    expect(await body(second)).toEqual(await body(first));
    expect(await restRequestsFor(p.member.id)).toBe(1);
  });

  it("serves the next read fresh after a grant, and never shows a cached full view to an outsider", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(p.orgId);
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }))).current_level).toBe("B");
    const grant = await call(`/status-levels/organizations/${p.orgId}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "C" } });
    expect(grant.status).toBe(201);
    const after = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token });
    expect(after.headers.get("x-cache")).toBe("miss");
    expect((await body(after)).current_level).toBe("C");

    const outsider = await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.outsider.token }));
    expect(outsider).toMatchObject({ current_level: "C", visibility: "public", level_c_progress: null });
    const outsiderAgain = await call(`/status-levels/organizations/${p.orgId}`, { token: p.outsider.token });
    expect(outsiderAgain.headers.get("x-cache")).toBe("hit");
    expect((await body(outsiderAgain)).level_c_progress).toBeNull();
  });

  it("still answers from the database when Redis is down", async () => {
    const p = await fixtures.orgWithPeople();
    const res = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }, { UPSTASH_REDIS_REST_URL: deadUrl });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("miss");
    expect((await body(res)).visibility).toBe("full");
  });

  it("is a 503 problem when PostgREST is down and the cache cannot answer", async () => {
    const p = await fixtures.orgWithPeople();
    const res = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }, { SUPABASE_URL: deadUrl });
    const problem = await expectProblem(res, 503, "dependency_unavailable");
    expect(res.headers.get("retry-after")).toBe("5");
    expect(JSON.stringify(problem)).not.toMatch(/127\.0\.0\.1|select|stack/i);
  });

  it("bypasses the cache when it is turned off", async () => {
    const p = await fixtures.orgWithPeople();
    for (let i = 0; i < 2; i++) {
      const res = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }, { STATUS_CACHE_ENABLED: "false" });
      expect(res.headers.get("x-cache")).toBe("bypass");
    }
    expect(await restRequestsFor(p.member.id)).toBe(2);
  });
});

describe("GET /status-levels/organizations/{id}/eligibility", () => {
  it("tells a member of a B organization what is missing for C", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    await fixtures.reviews(p.orgId, Array.from({ length: 12 }, (_, i) => ({ publishedAt: new Date(Date.now() - (i + 1) * 86_400_000), respondedAt: new Date(Date.now() - (i + 1) * 86_400_000 + 3_600_000) })));
    const res = await call(`/status-levels/organizations/${p.orgId}/eligibility`, { token: p.member.token });
    expect(res.status).toBe(200);
    const e = await body(res);
    expect(e).toMatchObject({ current_level: "B", next_level: "C", can_request_upgrade: false });
    expect(e).toMatchObject({ meets_criteria: false, criteria: { review_count: 12, review_count_needed: 15, public_cases: 0, public_cases_needed: 1 } });
    expect(e.level_c_checklist.items.review_count).toMatchObject({ value: 12, needed: 15, met: false, missing: "3 more published reviews in the last 12 months" });
    expect(e.level_c_checklist.missing).toContain("publish at least one case study");
  });

  it("lets an owner of an eligible organization request C", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(p.orgId);
    const e = await body(await call(`/status-levels/organizations/${p.orgId}/eligibility`, { token: p.owner.token }));
    expect(e).toMatchObject({ next_level: "C", can_request_upgrade: true });
    expect(e.meets_criteria).toBe(true);
    expect(e.level_c_checklist.meets_criteria).toBe(true);
  });

  it("points a level 0 organization to B", async () => {
    const p = await fixtures.orgWithPeople();
    const e = await body(await call(`/status-levels/organizations/${p.orgId}/eligibility`, { token: p.admin.token }));
    expect(e).toMatchObject({ current_level: "0", next_level: "B", can_request_upgrade: true });
  });

  it("projects the criteria over the coming days: a review leaving the 12-month window in 5 days fails review_count, with what would keep it", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelCAtRiskInFiveDays(p.orgId);
    const e = await body(await call(`/status-levels/organizations/${p.orgId}/eligibility`, { token: p.member.token }));
    expect(e.meets_criteria).toBe(true);
    const projection = e.level_c_projection;
    expect(projection).toMatchObject({ horizon_days: 30, meets_criteria_now: true, meets_criteria_at_horizon: false, time_zone: "UTC" });
    const failsOn = projection.first_failing_on as string;
    const daysAhead = Math.round((Date.parse(failsOn) - Date.parse(projection.today)) / 86_400_000);
    expect(daysAhead).toBeGreaterThanOrEqual(4);
    expect(daysAhead).toBeLessThanOrEqual(6);
    expect(projection.failing).toEqual([expect.objectContaining({ criterion: "review_count", fails_on: failsOn, keep: `1 more published review before ${failsOn}` })]);
    expect(projection.criteria.review_count).toMatchObject({ value_now: 15, value_at_horizon: 14, changes_on: failsOn });
    expect(projection.days).toHaveLength(31);

    const short = await body(await call(`/status-levels/organizations/${p.orgId}/eligibility?horizon=3`, { token: p.member.token }));
    expect(short.level_c_projection).toMatchObject({ horizon_days: 3, meets_criteria_at_horizon: true, first_failing_on: null, failing: [] });
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}/eligibility?horizon=91`, { token: p.member.token }), 400, "invalid_request");

    // The status view carries the same 30 days, without the day-by-day series; the public one none.
    const view = await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }));
    expect(view.level_c_projection).toMatchObject({ horizon_days: 30, first_failing_on: failsOn });
    expect(view.level_c_projection).not.toHaveProperty("days");
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`))).level_c_projection).toBeNull();
  });

  it("is for members: 403 for an outsider, 401 anonymous", async () => {
    const p = await fixtures.orgWithPeople();
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}/eligibility`, { token: p.outsider.token }), 403, "not_allowed");
    await expectProblem(await call(`/status-levels/organizations/${p.orgId}/eligibility`), 401, "unauthorized");
  });
});

