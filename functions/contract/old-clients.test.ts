import { beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { call, exec, fixtures, postSignedEvent } from "../_test/harness.ts";
import type { OrgWithPeople, TestUser } from "../../scripts/test/fixtures.ts";
import {
  OldCriteria,
  OldEligibility,
  OldError,
  OldGrantedLevelRow,
  OldHistoryEntry,
  OldLevelAFromSubscription,
  OldList,
  OldOrganizationStatus,
  OldRevokeResult,
  OldUpgradeRequest,
  OldUpgradeRequestBody,
  oldEndpoints,
} from "./old-service-shapes.ts";
import shapesSource from "./old-service-shapes.ts?raw";
import testSource from "./old-clients.test.ts?raw";

/**
 * The old service's clients, tried against this one: every old endpoint, called as each role that
 * may call it, checked against the old shapes (./old-service-shapes.ts) and against values known
 * from seeded data.
 */

const hour = 3_600_000;
const day = 24 * hour;
const base = "/status-levels";

/**
 * Checks a value against an old model; a mismatch names the field, what the old clients expect and
 * what came. Returns the value as sent (richer fields kept: zod would strip them from its copy).
 */
function expectOld<T extends z.ZodType>(model: T, value: unknown, where: string): z.infer<T> {
  const result = model.safeParse(value);
  if (result.success) return value as z.infer<T>;
  const at = (path: PropertyKey[]) => path.reduce<any>((v, k) => (v == null ? undefined : v[k as any]), value);
  const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message} (got ${JSON.stringify(at(i.path))})`);
  throw new Error(`${where}: the old clients' shape does not hold\n${lines.join("\n")}`);
}

async function json(res: Response, status: number | number[], where: string): Promise<any> {
  const text = await res.text();
  const ok = Array.isArray(status) ? status.includes(res.status) : res.status === status;
  if (!ok) throw new Error(`${where}: expected HTTP ${status}, got ${res.status}: ${text}`);
  return JSON.parse(text);
}

async function oldError(res: Response, status: number, where: string): Promise<string> {
  const problem = await json(res, status, where);
  return expectOld(OldError, problem, where).detail;
}

const post = (path: string, token: string | null, body: unknown) => call(`${base}${path}`, { method: "POST", token, json: body });
const get = (path: string, token: string | null = null) => call(`${base}${path}`, { token });

type Role = "owner" | "admin" | "manager" | "member" | "platformAdmin";
const members: Role[] = ["owner", "admin", "manager", "member"];
const readers: Role[] = [...members, "platformAdmin"];

/**
 * The seeded organization level C is measured on (now = when the test seeds it):
 * - an active B;
 * - 20 published reviews in the last 90 days, 17 of them answered: 16 after 12 h, one after
 *   18 h 07 min 12 s, so the average is exactly 12.36 h (44,496 s): 12.3 truncated, 12.4 rounded;
 *   the response rate is 17/20 = 85.0 percent;
 * - 3 published reviews 200 days ago (answered after 1,000 h: in the 12-month count, not in the
 *   90-day figures), 1 published 400 days ago, 2 hidden ones last week (counted nowhere);
 * - 2 published case studies and 1 draft.
 */
const seededCriteria = {
  has_active_b: true,
  review_count: 23,
  review_count_needed: 15,
  response_rate: 85,
  response_rate_needed: 85,
  avg_response_hours: 12.3,
  avg_response_hours_max: 48,
  public_cases: 2,
  public_cases_needed: 1,
};

async function seedMeasuredOrganization(): Promise<OrgWithPeople> {
  const p = await fixtures.orgWithPeople();
  const now = Date.now();
  await fixtures.levelRow(p.orgId, "B");
  const recent = Array.from({ length: 20 }, (_, i) => {
    const published = now - (i + 2) * day - 3 * hour;
    const respondedAfter = i < 16 ? 12 * hour : i === 16 ? 18 * hour + 7 * 60_000 + 12_000 : null;
    return { publishedAt: new Date(published), respondedAt: respondedAfter === null ? null : new Date(published + respondedAfter) };
  });
  const older = Array.from({ length: 3 }, (_, i) => ({ publishedAt: new Date(now - (200 + i) * day), respondedAt: new Date(now - (200 + i) * day + 1000 * hour) }));
  const outside = [
    { publishedAt: new Date(now - 400 * day), respondedAt: new Date(now - 400 * day + hour) },
    { publishedAt: new Date(now - 5 * day), respondedAt: new Date(now - 5 * day + 100 * hour), status: "hidden" },
    { publishedAt: new Date(now - 6 * day), respondedAt: null, status: "hidden" },
  ];
  await fixtures.reviews(p.orgId, [...recent, ...older, ...outside]);
  await fixtures.caseStudy(p.orgId);
  await fixtures.caseStudy(p.orgId);
  await fixtures.caseStudy(p.orgId, false);
  return p;
}

describe("old endpoint: POST /upgrade-requests (UpgradeRequestForm)", () => {
  it("owner and admin post {organization_id, target_level, message?, evidence_urls?} and get the request with target_level and status", async () => {
    const p = await fixtures.orgWithPeople();
    const full = expectOld(OldUpgradeRequestBody, { organization_id: p.orgId, target_level: "B", message: "we are ready", evidence_urls: ["https://example.org/audit.pdf"] }, "the old form's body");
    const byOwner = await json(await post("/upgrade-requests", p.owner.token, full), [200, 201], "owner's request");
    expect(expectOld(OldUpgradeRequest, byOwner, "owner's request")).toMatchObject({ target_level: "B", status: "pending" });
    expect(byOwner).toMatchObject({ organization_id: p.orgId, message: "we are ready", evidence_urls: ["https://example.org/audit.pdf"] });

    await json(await post(`/upgrade-requests/${byOwner.id}/cancel`, p.owner.token, {}), 200, "cancel");
    // The optional fields left out, as the old form did when they were empty.
    const byAdmin = await json(await post("/upgrade-requests", p.admin.token, { organization_id: p.orgId, target_level: "B" }), [200, 201], "admin's request");
    expect(expectOld(OldUpgradeRequest, byAdmin, "admin's request")).toMatchObject({ target_level: "B", status: "pending" });
  });

  it("target_level C is accepted by name once B is active", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    const created = await json(await post("/upgrade-requests", p.owner.token, { organization_id: p.orgId, target_level: "C", message: "criteria met" }), [200, 201], "request for C");
    expect(expectOld(OldUpgradeRequest, created, "request for C")).toMatchObject({ target_level: "C", status: "pending" });
  });
});

describe("old endpoint: GET /organizations/{id}/upgrade-requests", () => {
  let p: OrgWithPeople;
  let newestFirst: string[];

  beforeAll(async () => {
    p = await fixtures.orgWithPeople();
    // 24 older requests (hours ago, outside the rate limit's 10 minutes), decided, then one made now.
    const rows = await exec<{ id: string }>(
      `insert into public.upgrade_requests (organization_id, target_level, status, message, requested_by, created_at, decided_at, decided_by, decision_note)
       select $1, case when k % 2 = 0 then 'B' else 'C' end, case when k % 3 = 0 then 'rejected' else 'cancelled' end,
              'older request ' || k, $2, now() - k * interval '1 hour', now() - k * interval '1 hour' + interval '5 minutes', $2,
              case when k % 3 = 0 then 'not yet' end
       from generate_series(1, 24) as k
       order by k
       returning id`,
      [p.orgId, p.owner.id],
    );
    const created = await json(await post("/upgrade-requests", p.owner.token, { organization_id: p.orgId, target_level: "B" }), [200, 201], "newest request");
    newestFirst = [created.id, ...rows.map((r) => r.id)];
  });

  it.each(readers)("as %s: a JSON array of requests, newest first, 20 by default", async (role) => {
    const res = await get(`/organizations/${p.orgId}/upgrade-requests`, p[role].token);
    const items = expectOld(OldList(OldUpgradeRequest), await json(res, 200, `list as ${role}`), `list as ${role}`);
    expect(items).toHaveLength(20);
    expect((items as Array<{ id?: string }>).map((r) => r.id)).toEqual(newestFirst.slice(0, 20));
    expect(items[0]).toMatchObject({ target_level: "B", status: "pending" });
    expect(items[1]).toMatchObject({ target_level: "C", status: "cancelled" });
    expect(items[3]).toMatchObject({ target_level: "C", status: "rejected" });
    expect(res.headers.get("x-total-count")).toBe("25");
  });

  it("limit and offset still page through the same array", async () => {
    const res = await get(`/organizations/${p.orgId}/upgrade-requests?limit=10&offset=20`, p.member.token);
    const items = expectOld(OldList(OldUpgradeRequest), await json(res, 200, "second page"), "second page") as Array<{ id?: string }>;
    expect(items.map((r) => r.id)).toEqual(newestFirst.slice(20));
  });
});

describe("old endpoint: GET /organizations/{id}/eligibility", () => {
  let p: OrgWithPeople;
  beforeAll(async () => {
    p = await seedMeasuredOrganization();
  });

  it.each(readers)("as %s: meets_criteria, criteria in percent and hours (truncated to one decimal), timestamp", async (role) => {
    const before = Date.now();
    const answer = await json(await get(`/organizations/${p.orgId}/eligibility`, p[role].token), 200, `eligibility as ${role}`);
    const old = expectOld(OldEligibility, answer, `eligibility as ${role}`);
    expect(old.organization_id).toBe(p.orgId);
    expect(old.meets_criteria).toBe(true);
    expect(old.criteria).toEqual(seededCriteria);
    // Units: 85.0 is a percent (not the 0.85 fraction); 12.3 is hours (not 44,496 seconds), truncated (not 12.4).
    expect(old.criteria.response_rate).not.toBe(0.85);
    expect(old.criteria.avg_response_hours).not.toBe(12.4);
    const at = Date.parse(old.timestamp);
    expect(at).toBeGreaterThanOrEqual(before - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it("no reviews in 90 days: response_rate and avg_response_hours are null (not 0), and the criteria are not met", async () => {
    const q = await fixtures.orgWithPeople();
    await fixtures.reviews(q.orgId, [{ publishedAt: new Date(Date.now() - 120 * day), respondedAt: new Date(Date.now() - 120 * day + hour) }]);
    const old = expectOld(OldEligibility, await json(await get(`/organizations/${q.orgId}/eligibility`, q.owner.token), 200, "no recent reviews"), "no recent reviews");
    expect(old).toMatchObject({ organization_id: q.orgId, meets_criteria: false });
    expect(old.criteria).toEqual({ ...seededCriteria, has_active_b: false, review_count: 1, response_rate: null, avg_response_hours: null, public_cases: 0 });
  });

  it("truncates, never rounds: 2 of 3 answered is 66.6 percent; 1 h and 2 h 59 min 54 s average 1.9 hours", async () => {
    const q = await fixtures.orgWithPeople();
    const now = Date.now();
    await fixtures.reviews(q.orgId, [
      { publishedAt: new Date(now - 3 * day), respondedAt: new Date(now - 3 * day + hour) },
      { publishedAt: new Date(now - 4 * day), respondedAt: new Date(now - 4 * day + 3 * hour - 6_000) },
      { publishedAt: new Date(now - 5 * day), respondedAt: null },
    ]);
    const old = expectOld(OldEligibility, await json(await get(`/organizations/${q.orgId}/eligibility`, q.member.token), 200, "truncation"), "truncation");
    expect(old.criteria.response_rate).toBe(66.6);
    expect(old.criteria.avg_response_hours).toBe(1.9);
    expect(old.meets_criteria).toBe(false);
  });

  it("an outsider gets an error the old pages can show (detail)", async () => {
    const res = await get(`/organizations/${p.orgId}/eligibility`, p.outsider.token);
    expect([403, 404]).toContain(res.status);
    expect(await oldError(res, res.status, "eligibility as outsider")).toMatch(/\w/);
  });
});

describe("old endpoint: GET /organizations/{id}", () => {
  let p: OrgWithPeople;
  beforeAll(async () => {
    p = await seedMeasuredOrganization();
  });

  const canManage: Record<Role, boolean> = { owner: true, admin: true, manager: false, member: false, platformAdmin: true };

  it.each(readers)("as %s: the full view; level_c_progress is eligibility's criteria", async (role) => {
    const who = p[role] as TestUser;
    const status = expectOld(OldOrganizationStatus, await json(await get(`/organizations/${p.orgId}`, who.token), 200, `status as ${role}`), `status as ${role}`);
    expect(status.organization_id).toBe(p.orgId);
    expect(status.current_level).toBe("B");
    expect(status.can_manage).toBe(canManage[role]);
    expect(status.active_levels.map((l) => l.level)).toEqual(["B"]);
    expect(Date.parse(status.active_levels[0]!.valid_until!)).toBeGreaterThan(Date.now());
    expect(status.level_c_progress).toEqual(seededCriteria);
    // The page reads status.level_c_progress.review_count: the same object as eligibility's criteria.
    const eligibility = expectOld(OldEligibility, await json(await get(`/organizations/${p.orgId}/eligibility`, who.token), 200, "eligibility"), "eligibility");
    expect(status.level_c_progress).toEqual(eligibility.criteria);
  });

  it.each([
    ["an outsider", "outsider"],
    ["an anonymous caller", null],
  ] as const)("as %s: the public projection (level_c_progress null, can_manage false)", async (_who, role) => {
    const token = role ? p[role].token : null;
    const status = expectOld(OldOrganizationStatus, await json(await get(`/organizations/${p.orgId}`, token), 200, "public status"), "public status");
    expect(status).toMatchObject({ organization_id: p.orgId, current_level: "B", level_c_progress: null, can_manage: false });
    expect(status.active_levels.map((l) => l.level)).toEqual(["B"]);
  });

  it('an organization with no level: current_level "0" and no active levels', async () => {
    const q = await fixtures.orgWithPeople();
    for (const token of [q.member.token, null]) {
      const status = expectOld(OldOrganizationStatus, await json(await get(`/organizations/${q.orgId}`, token), 200, "level 0"), "level 0");
      expect(status).toMatchObject({ current_level: "0", active_levels: [] });
    }
  });
});

describe("old endpoint: POST /organizations/{id}/grant", () => {
  it("as platform admin: B with valid_until and notes answers the level row", async () => {
    const p = await fixtures.orgWithPeople();
    const validUntil = new Date(Math.floor((Date.now() + 200 * day) / 1000) * 1000).toISOString();
    const row = expectOld(OldGrantedLevelRow, await json(await post(`/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "B", valid_until: validUntil, notes: "audit passed" }), [200, 201], "grant B"), "grant B");
    expect(row).toMatchObject({ level: "B", notes: "audit passed", subscription_id: null });
    expect(Date.parse(row.valid_until!)).toBe(Date.parse(validUntil));
    const [db] = await exec<{ id: string }>("select id from public.organization_status_levels where organization_id = $1 and level = 'B' and is_active", [p.orgId]);
    expect(row.id).toBe(db!.id);
  });

  it("as platform admin: A with subscription_id, and C (no valid_until)", async () => {
    const p = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(p.orgId);
    const a = expectOld(OldGrantedLevelRow, await json(await post(`/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "A", subscription_id: sub.id }), [200, 201], "grant A"), "grant A");
    expect(a).toMatchObject({ level: "A", subscription_id: sub.id });
    await fixtures.meetsLevelC(p.orgId);
    const c = expectOld(OldGrantedLevelRow, await json(await post(`/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "C", notes: "top level" }), [200, 201], "grant C"), "grant C");
    expect(c).toMatchObject({ level: "C", valid_until: null, notes: "top level" });
  });

  it.each(members)("as %s: refused with a detail", async (role) => {
    const p = await fixtures.orgWithPeople();
    expect(await oldError(await post(`/organizations/${p.orgId}/grant`, p[role].token, { level: "B" }), 403, `grant as ${role}`)).toMatch(/\w/);
  });
});

describe("old endpoint: POST /organizations/{id}/revoke", () => {
  it("as platform admin: {success: true} when the level was active, {success: false} (still 200) when not", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    const revoke = (level: string) => post(`/organizations/${p.orgId}/revoke`, p.platformAdmin.token, { level, reason: "verification withdrawn" });
    expect(expectOld(OldRevokeResult, await json(await revoke("B"), 200, "revoke B"), "revoke B").success).toBe(true);
    expect(expectOld(OldRevokeResult, await json(await revoke("B"), 200, "revoke B again"), "revoke B again").success).toBe(false);
    expect(expectOld(OldRevokeResult, await json(await revoke("C"), 200, "revoke C never held"), "revoke C never held").success).toBe(false);
    const status = expectOld(OldOrganizationStatus, await json(await get(`/organizations/${p.orgId}`, p.member.token), 200, "status"), "status");
    expect(status.current_level).toBe("0");
  });

  it.each(members)("as %s: refused with a detail", async (role) => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    expect(await oldError(await post(`/organizations/${p.orgId}/revoke`, p[role].token, { level: "B", reason: "no" }), 403, `revoke as ${role}`)).toMatch(/\w/);
  });
});

describe("old endpoint: GET /organizations/{id}/history?limit=50&offset=0", () => {
  let p: OrgWithPeople;
  beforeAll(async () => {
    p = await fixtures.orgWithPeople();
    // 55 older entries (minutes apart), then one grant through the API: 56 in all.
    const actions = ["granted", "renewed", "validity_updated", "revoked", "expired"];
    await exec(
      `insert into public.status_level_history (organization_id, level, action, reason, created_at)
       select $1, 'B', ($2::text[])[1 + (k - 1) % 5], 'seeded ' || k, now() - k * interval '1 minute'
       from generate_series(1, 55) as k`,
      [p.orgId, actions],
    );
    await json(await post(`/organizations/${p.orgId}/grant`, p.platformAdmin.token, { level: "A", subscription_id: (await fixtures.subscription(p.orgId)).id }), [200, 201], "grant A");
  });

  it.each(readers)("as %s: a JSON array of entries (created_at, action, level), newest first, 50 by default", async (role) => {
    const res = await get(`/organizations/${p.orgId}/history`, p[role].token);
    const entries = expectOld(OldList(OldHistoryEntry), await json(res, 200, `history as ${role}`), `history as ${role}`);
    expect(entries).toHaveLength(50);
    expect(entries[0]).toMatchObject({ action: "granted", level: "A" });
    expect(entries[1]).toMatchObject({ action: "granted", level: "B", reason: "seeded 1" });
    expect(entries[2]).toMatchObject({ action: "renewed", level: "B", reason: "seeded 2" });
    const times = entries.map((e) => Date.parse(e.created_at));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    expect(res.headers.get("x-total-count")).toBe("56");
  });

  it("?limit=50&offset=0 is the same first page; offset=50 the rest", async () => {
    const first = expectOld(OldList(OldHistoryEntry), await json(await get(`/organizations/${p.orgId}/history?limit=50&offset=0`, p.owner.token), 200, "first page"), "first page");
    expect(first).toHaveLength(50);
    const rest = expectOld(OldList(OldHistoryEntry), await json(await get(`/organizations/${p.orgId}/history?limit=50&offset=50`, p.owner.token), 200, "second page"), "second page");
    expect(rest.map((e) => (e as { reason?: string }).reason)).toEqual(["seeded 50", "seeded 51", "seeded 52", "seeded 53", "seeded 54", "seeded 55"]);
  });
});

describe("old endpoint: level A from a subscription (POST /subscriptions/events, the payments service)", () => {
  it('a first active event reports {status_level_id, action: "granted"}; a renewal "already_active" with the same id', async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    const subscriptionId = `sub_${crypto.randomUUID()}`;
    const event = (occurredAt: number, periodEnd: number) => ({
      id: `evt_${crypto.randomUUID()}`,
      subscription_id: subscriptionId,
      organization_id: orgId,
      status: "active",
      occurred_at: new Date(occurredAt).toISOString(),
      current_period_end: new Date(periodEnd).toISOString(),
    });
    const first = expectOld(OldLevelAFromSubscription, await json(await postSignedEvent(event(now - 2 * day, now + 28 * day)), 200, "first active event"), "first active event");
    expect(first.action).toBe("granted");
    const [row] = await exec<{ id: string }>("select id from public.organization_status_levels where organization_id = $1 and level = 'A' and is_active", [orgId]);
    expect(first.status_level_id).toBe(row!.id);

    const renewal = expectOld(OldLevelAFromSubscription, await json(await postSignedEvent(event(now - day, now + 58 * day)), 200, "renewal"), "renewal");
    expect(renewal).toMatchObject({ status_level_id: row!.id, action: "already_active" });
  });
});

describe("old clients: errors keep a human detail string", () => {
  it("400, 401, 403, 404, 409 and 422 each carry detail", async () => {
    const p = await fixtures.orgWithPeople();
    const details = [
      await oldError(await post("/upgrade-requests", p.owner.token, { organization_id: p.orgId, target_level: "D" }), 400, "bad target_level"),
      await oldError(await get(`/organizations/${p.orgId}/eligibility`), 401, "no token"),
      await oldError(await post("/upgrade-requests", p.member.token, { organization_id: p.orgId, target_level: "B" }), 403, "a member asks"),
      await oldError(await get(`/organizations/${crypto.randomUUID()}`), 404, "unknown organization"),
      await oldError(await post("/upgrade-requests", p.owner.token, { organization_id: p.orgId, target_level: "C" }), 422, "C without B"),
    ];
    await json(await post("/upgrade-requests", p.owner.token, { organization_id: p.orgId, target_level: "B" }), [200, 201], "first request");
    details.push(await oldError(await post("/upgrade-requests", p.admin.token, { organization_id: p.orgId, target_level: "B" }), 409, "second pending request"));
    for (const detail of details) expect(detail.trim().length).toBeGreaterThan(10);
  });
});

describe("the old models are the old service's, not this service's", () => {
  const importsOf = (source: string) => [...source.matchAll(/^import[^;]*?from\s+["']([^"']+)["']/gms)].map((m) => m[1]!);

  it("are defined in functions/contract/ from zod alone; this test imports no schema of the service", () => {
    expect(importsOf(shapesSource)).toEqual(["zod"]);
    expect(importsOf(testSource).length).toBeGreaterThan(3);
    for (const path of importsOf(testSource)) {
      expect(path, "the contract test may import the harness, fixtures and the old models only").toMatch(/^(vitest|zod|\.\.\/_test\/harness\.ts|\.\.\/\.\.\/scripts\/test\/fixtures\.ts|\.\/old-service-shapes\.ts(\?raw)?|\.\/old-clients\.test\.ts\?raw)$/);
    }
    expect(Object.keys(oldEndpoints)).toHaveLength(8);
  });

  it("tolerate richer fields beside the old ones, and require every old field with its old type", () => {
    const criteria = { ...seededCriteria, something_new: { met: true } };
    expect(OldCriteria.safeParse(criteria).success).toBe(true);
    const { review_count: _dropped, ...withoutReviewCount } = seededCriteria;
    expect(OldCriteria.safeParse(withoutReviewCount).success).toBe(false);
    expect(OldCriteria.safeParse({ ...seededCriteria, response_rate: "85.0" }).success).toBe(false);
    expect(OldCriteria.safeParse({ ...seededCriteria, avg_response_hours: 12.36 }).success).toBe(false);
    expect(OldCriteria.safeParse({ ...seededCriteria, response_rate: 850 }).success).toBe(false);
    expect(OldRevokeResult.safeParse({ revoked: true }).success).toBe(false);
    expect(OldList(OldHistoryEntry).safeParse({ items: [], total: 0 }).success).toBe(false);
  });
});
