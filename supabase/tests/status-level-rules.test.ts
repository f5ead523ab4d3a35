import { describe, expect, it } from "vitest";
import { exec, fixtures, sql } from "../../scripts/test/node-harness.ts";
import {
  DAY,
  HOUR,
  SERVICE_ROLE,
  arrangeB,
  expectApiError,
  expectSqlError,
  fromNow,
  historyOf,
  levelById,
  levelsOf,
  requestById,
  requestsOf,
  rpc,
  rpcOk,
} from "./helpers.ts";

/**
 * Every rule of DESIGN.md "Operations and their rules", against the real SQL functions, called
 * through PostgREST with real tokens (the system is the service-role key, or a superuser session
 * without claims). Errors are asserted by HTTP status, SQLSTATE PTxxx and the stable code.
 */

const grant = (token: string | null, orgId: string, level: string, extra: Record<string, unknown> = {}) =>
  rpc(token, "grant_status_level", { p_organization_id: orgId, p_level: level, ...extra });
const revoke = (token: string | null, orgId: string, level: string, reason: string | null = "test revocation") =>
  rpc<boolean>(token, "revoke_status_level", { p_organization_id: orgId, p_level: level, p_reason: reason });
const renew = (token: string | null, orgId: string, notes?: string) =>
  rpc(token, "renew_status_level_b", { p_organization_id: orgId, ...(notes === undefined ? {} : { p_notes: notes }) });
const updateValidity = (token: string | null, orgId: string, level: string, validUntil: Date | string | null, reason?: string) =>
  rpc(token, "update_status_validity", {
    p_organization_id: orgId,
    p_level: level,
    p_valid_until: validUntil instanceof Date ? validUntil.toISOString() : validUntil,
    ...(reason === undefined ? {} : { p_reason: reason }),
  });
const createRequest = (token: string | null, orgId: string, level: string, extra: Record<string, unknown> = {}) =>
  rpc(token, "create_upgrade_request", { p_organization_id: orgId, p_target_level: level, ...extra });
const approve = (token: string | null, requestId: string, notes?: string) =>
  rpc(token, "approve_upgrade_request", { p_request_id: requestId, ...(notes === undefined ? {} : { p_notes: notes }) });
const reject = (token: string | null, requestId: string, note: string | null) =>
  rpc(token, "reject_upgrade_request", { p_request_id: requestId, p_note: note });
const cancel = (token: string | null, requestId: string) => rpc(token, "cancel_upgrade_request", { p_request_id: requestId });
const currentLevel = async (orgId: string) => (await rpcOk<string>(SERVICE_ROLE, "get_current_status_level", { p_organization_id: orgId }));

/** True when the SQL predicate holds for the level row (exact database arithmetic, no JS rounding). */
async function levelSatisfies(id: string, predicate: string): Promise<boolean> {
  const [row] = await exec<{ ok: boolean }>(`select (${predicate}) as ok from public.organization_status_levels where id = $1`, [id]);
  return row!.ok;
}

describe("grant_status_level: who may grant", () => {
  it("only platform admins grant B and C: org people, outsiders and the service role get 403 not_allowed and nothing is written", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId); // an active B and the C criteria, so C is refused for who calls, not for the data
    const [existingB] = await levelsOf(o.orgId);
    await exec("update public.organization_status_levels set is_active = false, ended_at = now(), end_reason = 'expired' where id = $1", [existingB!.id]);

    for (const who of [o.owner, o.admin, o.manager, o.member, o.outsider]) {
      for (const level of ["B", "C"]) {
        expectApiError(await grant(who.token, o.orgId, level), 403, "not_allowed");
      }
    }
    expectApiError(await grant(SERVICE_ROLE, o.orgId, "B"), 403, "not_allowed");
    expectApiError(await grant(SERVICE_ROLE, o.orgId, "C"), 403, "not_allowed");

    const anon = await grant(null, o.orgId, "B");
    expect(anon.status).toBe(401);
    expect(anon.error?.code).toBe("42501");

    expect((await levelsOf(o.orgId)).filter((l) => l.is_active)).toEqual([]);
    expect(await historyOf(o.orgId)).toEqual([]);
  });

  it("an organization's own owner/admin/manager/member can never grant, renew, revoke or change its levels, nor approve its own request", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    const bId = await arrangeB(o.orgId, await fromNow(30 * DAY));
    const request = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });

    for (const who of [o.owner, o.admin, o.manager, o.member]) {
      expectApiError(await grant(who.token, o.orgId, "A", { p_subscription_id: sub.id }), 403, "not_allowed");
      expectApiError(await grant(who.token, o.orgId, "C"), 403, "not_allowed");
      expectApiError(await renew(who.token, o.orgId), 403, "not_allowed");
      expectApiError(await revoke(who.token, o.orgId, "B"), 403, "not_allowed");
      expectApiError(await updateValidity(who.token, o.orgId, "B", await fromNow(400 * DAY)), 403, "not_allowed");
      expectApiError(await approve(who.token, request.id), 403, "not_allowed");
      expectApiError(await reject(who.token, request.id, "no"), 403, "not_allowed");
    }
    const b = await levelById(bId);
    expect(b.is_active).toBe(true);
    expect(b.last_verified_at).not.toBeNull();
    expect((await levelsOf(o.orgId)).map((l) => l.level)).toEqual(["B"]);
    expect((await requestById(request.id)).status).toBe("pending");
    expect((await historyOf(o.orgId)).map((h) => h.action)).toEqual(["request_created"]);
  });

  it("a platform admin whose admin row is revoked cannot grant any more (403), at once", async () => {
    const o = await fixtures.orgWithPeople();
    await exec("update public.platform_admins set revoked_at = now() where user_id = $1", [o.platformAdmin.id]);
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "B"), 403, "not_allowed");
    expect(await levelsOf(o.orgId)).toEqual([]);
  });

  it("an unknown level is 400 invalid_level, an unknown organization 404 organization_not_found", async () => {
    const o = await fixtures.orgWithPeople();
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "D"), 400, "invalid_level");
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "b"), 400, "invalid_level");
    expectApiError(await grant(o.platformAdmin.token, crypto.randomUUID(), "B"), 404, "organization_not_found");
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "B", { p_notes: "x".repeat(2001) }), 400, "notes_too_long");
    expect(await levelsOf(o.orgId)).toEqual([]);
  });
});

describe("grant_status_level: level A", () => {
  it("needs a subscription of the organization: 422 subscription_required, 404 subscription_not_found, 422 subscription_mismatch", async () => {
    const o = await fixtures.orgWithPeople();
    const otherOrg = await fixtures.organization();
    const foreign = await fixtures.subscription(otherOrg);
    expectApiError(await grant(SERVICE_ROLE, o.orgId, "A"), 422, "subscription_required");
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "A"), 422, "subscription_required");
    expectApiError(await grant(SERVICE_ROLE, o.orgId, "A", { p_subscription_id: crypto.randomUUID() }), 404, "subscription_not_found");
    expectApiError(await grant(SERVICE_ROLE, o.orgId, "A", { p_subscription_id: foreign.id }), 422, "subscription_mismatch");
    expect(await levelsOf(o.orgId)).toEqual([]);
  });

  it("the service role grants A until the subscription's period end, recorded as the system (granted_by null)", async () => {
    const o = await fixtures.orgWithPeople();
    const periodEnd = await fromNow(30 * DAY);
    const sub = await fixtures.subscription(o.orgId, { currentPeriodEnd: periodEnd });
    const level = await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    expect(level).toMatchObject({ level: "A", is_active: true, subscription_id: sub.id, granted_by: null });
    expect(new Date(level.valid_until).getTime()).toBe(periodEnd.getTime());
    expect(await currentLevel(o.orgId)).toBe("A");
  });

  it("a superuser session without JWT claims is the system too and may grant A; a platform admin may as well", async () => {
    const o1 = await fixtures.orgWithPeople();
    const sub1 = await fixtures.subscription(o1.orgId);
    const [viaSql] = await sql`select public.grant_status_level(${o1.orgId}::uuid, 'A', null, ${sub1.id}::uuid, null) as level`;
    expect(viaSql!.level).toMatchObject({ level: "A", granted_by: null });
    // ... but not B: the system drives A only.
    await expectSqlError(sql`select public.grant_status_level(${o1.orgId}::uuid, 'B')`, 403, "not_allowed");

    const o2 = await fixtures.orgWithPeople();
    const sub2 = await fixtures.subscription(o2.orgId);
    const viaAdmin = await rpcOk(o2.platformAdmin.token, "grant_status_level", { p_organization_id: o2.orgId, p_level: "A", p_subscription_id: sub2.id });
    expect(viaAdmin).toMatchObject({ level: "A", granted_by: o2.platformAdmin.id });
  });

  it("an explicit valid_until for A must be in the future (422 valid_until_in_past)", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    expectApiError(await grant(SERVICE_ROLE, o.orgId, "A", { p_subscription_id: sub.id, p_valid_until: (await fromNow(-HOUR)).toISOString() }), 422, "valid_until_in_past");
    expect(await levelsOf(o.orgId)).toEqual([]);
  });
});

describe("grant_status_level: level B", () => {
  it("defaults to now + 18 months, verified now, granted by the admin", async () => {
    const o = await fixtures.orgWithPeople();
    const level = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B", p_notes: "site visit ok" });
    expect(level).toMatchObject({ level: "B", is_active: true, granted_by: o.platformAdmin.id, notes: "site visit ok", subscription_id: null });
    expect(await levelSatisfies(level.id, "valid_until = granted_at + interval '18 months' and last_verified_at = granted_at and valid_from = granted_at")).toBe(true);
    // granted_at is the transaction's now(): within the call, not some other time.
    const [{ fresh }] = (await exec<{ fresh: boolean }>("select granted_at > now() - interval '1 minute' and granted_at <= now() as fresh from public.organization_status_levels where id = $1", [level.id])) as [{ fresh: boolean }];
    expect(fresh).toBe(true);
    expect(await currentLevel(o.orgId)).toBe("B");
  });

  it("takes an explicit valid_until in the future; refuses one in the past (422 valid_until_in_past)", async () => {
    const o = await fixtures.orgWithPeople();
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "B", { p_valid_until: (await fromNow(-60_000)).toISOString() }), 422, "valid_until_in_past");
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "B", { p_valid_until: "2001-01-01T00:00:00Z" }), 422, "valid_until_in_past");
    expect(await levelsOf(o.orgId)).toEqual([]);

    const until = await fromNow(200 * DAY);
    const level = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B", p_valid_until: until.toISOString() });
    expect(new Date(level.valid_until).getTime()).toBe(until.getTime());
  });

  it("is not tied to a subscription (400 subscription_not_applicable)", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "B", { p_subscription_id: sub.id }), 400, "subscription_not_applicable");
    expect(await levelsOf(o.orgId)).toEqual([]);
  });
});

describe("grant_status_level: level C", () => {
  it("needs an active B (422 level_c_requires_b), even when every other criterion holds", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    await exec("update public.organization_status_levels set is_active = false, ended_at = now(), end_reason = 'expired' where organization_id = $1", [o.orgId]);
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "C"), 422, "level_c_requires_b");
    expect((await levelsOf(o.orgId)).filter((l) => l.level === "C")).toEqual([]);
  });

  it("a B past its valid_until is no B (422 level_c_requires_b)", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    await exec("update public.organization_status_levels set valid_until = now() - interval '1 minute' where organization_id = $1 and level = 'B'", [o.orgId]);
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "C"), 422, "level_c_requires_b");
    expect((await levelsOf(o.orgId)).filter((l) => l.level === "C")).toEqual([]);
  });

  it("needs the criteria (422 level_c_criteria_not_met, saying what is missing)", async () => {
    const o = await fixtures.orgWithPeople();
    await arrangeB(o.orgId, await fromNow(300 * DAY));
    const res = await grant(o.platformAdmin.token, o.orgId, "C");
    expectApiError(res, 422, "level_c_criteria_not_met");
    expect(res.error!.message).toContain("15 more published reviews in the last 12 months");
    expect(res.error!.message).toContain("publish at least one case study");
    expect((await levelsOf(o.orgId)).filter((l) => l.level === "C")).toEqual([]);
  });

  it("has no valid_until: an explicit one is 422 level_c_is_permanent; granted without one it is permanent", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "C", { p_valid_until: (await fromNow(DAY)).toISOString() }), 422, "level_c_is_permanent");
    const c = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" });
    expect(c).toMatchObject({ level: "C", valid_until: null, is_active: true, granted_by: o.platformAdmin.id });
    expect(c.last_verified_at).not.toBeNull();
    expect(await currentLevel(o.orgId)).toBe("C");
  });
});

describe("grant_status_level: already active", () => {
  it("granting an active level again is 409 level_already_active for A, B and C; the active row is untouched", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    const sub = await fixtures.subscription(o.orgId);
    await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" });
    const before = await levelsOf(o.orgId);
    const historyBefore = await historyOf(o.orgId);

    expectApiError(await grant(SERVICE_ROLE, o.orgId, "A", { p_subscription_id: sub.id }), 409, "level_already_active");
    const b = await grant(o.platformAdmin.token, o.orgId, "B");
    expectApiError(b, 409, "level_already_active");
    expect(b.error!.hint).toMatch(/renew/i);
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "B", { p_valid_until: (await fromNow(900 * DAY)).toISOString() }), 409, "level_already_active");
    expectApiError(await grant(o.platformAdmin.token, o.orgId, "C"), 409, "level_already_active");

    expect(await levelsOf(o.orgId)).toEqual(before);
    expect(await historyOf(o.orgId)).toEqual(historyBefore);
  });
});

describe("renew_status_level_b (re-verification)", () => {
  it("sets valid_until to now + 18 months on the active B, records last_verified_at, writes `renewed`", async () => {
    const o = await fixtures.orgWithPeople();
    const bId = await arrangeB(o.orgId, await fromNow(20 * DAY));
    const before = await levelById(bId);
    const renewed = await rpcOk(o.platformAdmin.token, "renew_status_level_b", { p_organization_id: o.orgId, p_notes: "re-verified" });
    expect(renewed).toMatchObject({ id: bId, level: "B", is_active: true, notes: "re-verified" });
    expect(await levelSatisfies(bId, "valid_until = last_verified_at + interval '18 months' and last_verified_at = updated_at")).toBe(true);
    const after = await levelById(bId);
    expect(after.last_verified_at!.getTime()).toBeGreaterThan(before.last_verified_at!.getTime());
    expect((await levelsOf(o.orgId)).length).toBe(1);
    const history = await historyOf(o.orgId);
    expect(history.map((h) => h.action)).toEqual(["renewed"]);
    expect(history[0]).toMatchObject({ level: "B", status_level_id: bId, actor_id: o.platformAdmin.id, notes: "re-verified" });
  });

  it("is for platform admins only: the service role and the org's owner get 403 not_allowed", async () => {
    const o = await fixtures.orgWithPeople();
    const bId = await arrangeB(o.orgId, await fromNow(20 * DAY));
    const before = await levelById(bId);
    expectApiError(await renew(SERVICE_ROLE, o.orgId), 403, "not_allowed");
    expectApiError(await renew(o.owner.token, o.orgId), 403, "not_allowed");
    expect(await levelById(bId)).toEqual(before);
  });

  it("needs an active B: none, or one past its valid_until, is 404 level_not_active", async () => {
    const o = await fixtures.orgWithPeople();
    expectApiError(await renew(o.platformAdmin.token, o.orgId), 404, "level_not_active");
    await arrangeB(o.orgId, await fromNow(-HOUR));
    expectApiError(await renew(o.platformAdmin.token, o.orgId), 404, "level_not_active");
    expect(await historyOf(o.orgId)).toEqual([]);
  });
});

describe("revoke_status_level", () => {
  it("returns true when something was active and ends it; false when nothing is active", async () => {
    const o = await fixtures.orgWithPeople();
    const granted = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" });
    const first = await revoke(o.platformAdmin.token, o.orgId, "B", "fraudulent reviews");
    expect(first.error).toBeNull();
    expect(first.data).toBe(true);
    const row = await levelById(granted.id);
    expect(row).toMatchObject({ is_active: false, end_reason: "revoked", revoked_by: o.platformAdmin.id, revoke_reason: "fraudulent reviews" });
    expect(row.ended_at).not.toBeNull();
    expect(await currentLevel(o.orgId)).toBe("0");

    const second = await revoke(o.platformAdmin.token, o.orgId, "B");
    expect(second.error).toBeNull();
    expect(second.data).toBe(false);
    expect((await revoke(o.platformAdmin.token, o.orgId, "C")).data).toBe(false);
  });

  it("revoking B leaves C alone", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    const c = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" });
    expect((await revoke(o.platformAdmin.token, o.orgId, "B")).data).toBe(true);
    expect(await levelById(c.id)).toMatchObject({ is_active: true, ended_at: null });
    expect(await currentLevel(o.orgId)).toBe("C");
  });

  it("is for platform admins (A also the system); a reason is required (400 reason_required)", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    await arrangeB(o.orgId, await fromNow(100 * DAY));

    expectApiError(await revoke(o.owner.token, o.orgId, "A"), 403, "not_allowed");
    expectApiError(await revoke(SERVICE_ROLE, o.orgId, "B"), 403, "not_allowed");
    expectApiError(await revoke(o.platformAdmin.token, o.orgId, "B", ""), 400, "reason_required");
    expectApiError(await revoke(o.platformAdmin.token, o.orgId, "B", "   "), 400, "reason_required");
    expectApiError(await revoke(o.platformAdmin.token, o.orgId, "B", null), 400, "reason_required");
    expectApiError(await revoke(o.platformAdmin.token, o.orgId, "X"), 400, "invalid_level");
    expect((await levelsOf(o.orgId)).filter((l) => l.is_active).map((l) => l.level).sort()).toEqual(["A", "B"]);

    const byService = await revoke(SERVICE_ROLE, o.orgId, "A", "subscription_canceled");
    expect(byService.data).toBe(true);
    expect(await currentLevel(o.orgId)).toBe("B");
  });
});

describe("revoke_status_level: blank reasons", () => {
  it("a reason made only of tabs and line breaks is no reason (400 reason_required); B stays active", async () => {
    const o = await fixtures.orgWithPeople();
    const bId = await arrangeB(o.orgId, await fromNow(100 * DAY));
    expectApiError(await revoke(o.platformAdmin.token, o.orgId, "B", "\n\t"), 400, "reason_required");
    expect((await levelById(bId)).is_active).toBe(true);
  });
});

describe("update_status_validity", () => {
  it("moves the end of the active B (admin) and of A (also the system)", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    const a = await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    const bId = await arrangeB(o.orgId, await fromNow(10 * DAY));

    const newB = await fromNow(120 * DAY);
    const b = await rpcOk(o.platformAdmin.token, "update_status_validity", { p_organization_id: o.orgId, p_level: "B", p_valid_until: newB.toISOString(), p_reason: "extension" });
    expect(b).toMatchObject({ id: bId, level: "B", is_active: true });
    expect((await levelById(bId)).valid_until!.getTime()).toBe(newB.getTime());

    const newA = await fromNow(45 * DAY);
    const moved = await rpcOk(SERVICE_ROLE, "update_status_validity", { p_organization_id: o.orgId, p_level: "A", p_valid_until: newA.toISOString() });
    expect(moved.id).toBe(a.id);
    expect((await levelById(a.id)).valid_until!.getTime()).toBe(newA.getTime());
  });

  it("refuses: C (422 level_c_is_permanent), a time not in the future (422 valid_until_in_past), no active level (404 level_not_active), non-admins (403)", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" });
    const before = await levelsOf(o.orgId);

    expectApiError(await updateValidity(o.platformAdmin.token, o.orgId, "C", await fromNow(DAY)), 422, "level_c_is_permanent");
    expectApiError(await updateValidity(o.platformAdmin.token, o.orgId, "B", await fromNow(-HOUR)), 422, "valid_until_in_past");
    expectApiError(await updateValidity(o.platformAdmin.token, o.orgId, "B", null), 422, "valid_until_in_past");
    expectApiError(await updateValidity(o.platformAdmin.token, o.orgId, "A", await fromNow(DAY)), 404, "level_not_active");
    expectApiError(await updateValidity(SERVICE_ROLE, o.orgId, "B", await fromNow(DAY)), 403, "not_allowed");
    expectApiError(await updateValidity(o.owner.token, o.orgId, "B", await fromNow(DAY)), 403, "not_allowed");
    expect(await levelsOf(o.orgId)).toEqual(before);
  });
});

describe("upgrade requests: creating", () => {
  it("owners and admins of the organization may ask; managers, members, outsiders and platform admins get 403, anonymous 401", async () => {
    const o = await fixtures.orgWithPeople();
    for (const who of [o.manager, o.member, o.outsider, o.platformAdmin]) {
      expectApiError(await createRequest(who.token, o.orgId, "B"), 403, "not_allowed");
    }
    const anon = await createRequest(null, o.orgId, "B");
    expect(anon.status).toBe(401);
    expect(anon.error?.code).toBe("42501");
    expectApiError(await createRequest(SERVICE_ROLE, o.orgId, "B"), 403, "not_allowed");
    expect(await requestsOf(o.orgId)).toEqual([]);

    const byOwner = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_message: "please" });
    expect(byOwner).toMatchObject({ organization_id: o.orgId, target_level: "B", status: "pending", message: "please", requested_by: o.owner.id, evidence_urls: [] });
    expect((await cancel(o.owner.token, byOwner.id)).error).toBeNull();

    const byAdmin = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    expect(byAdmin).toMatchObject({ status: "pending", requested_by: o.admin.id });
  });

  it("a private organization is invisible to outsiders (404 organization_not_found)", async () => {
    const o = await fixtures.orgWithPeople({ isPublic: false });
    expectApiError(await createRequest(o.outsider.token, o.orgId, "B"), 404, "organization_not_found");
    expectApiError(await createRequest(o.owner.token, crypto.randomUUID(), "B"), 404, "organization_not_found");
  });

  it("targets B or C only (400 invalid_level)", async () => {
    const o = await fixtures.orgWithPeople();
    expectApiError(await createRequest(o.owner.token, o.orgId, "A"), 400, "invalid_level");
    expectApiError(await createRequest(o.owner.token, o.orgId, "D"), 400, "invalid_level");
    expectApiError(await createRequest(o.owner.token, o.orgId, "0"), 400, "invalid_level");
    expect(await requestsOf(o.orgId)).toEqual([]);
  });

  it("a message of at most 2000 characters (400 message_too_long)", async () => {
    const o = await fixtures.orgWithPeople();
    expectApiError(await createRequest(o.owner.token, o.orgId, "B", { p_message: "m".repeat(2001) }), 400, "message_too_long");
    expect(await requestsOf(o.orgId)).toEqual([]);
    const ok = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_message: "m".repeat(2000) });
    expect(ok.message).toHaveLength(2000);
  });

  it("at most 10 evidence links, https only (400 too_many_evidence_urls / invalid_evidence_url)", async () => {
    const o = await fixtures.orgWithPeople();
    const urls = (n: number) => Array.from({ length: n }, (_, i) => `https://evidence.example/doc/${i}?page=1#top`);
    expectApiError(await createRequest(o.owner.token, o.orgId, "B", { p_evidence_urls: urls(11) }), 400, "too_many_evidence_urls");
    for (const bad of [
      "http://evidence.example/doc", "https://", "https://evi dence.example/", "ftp://evidence.example/x", "evidence.example/doc",
      "javascript:alert(1)", "https:///path", "https://user:pass@evidence.example/", "https://user@evidence.example/doc",
      "https://:secret@evidence.example", "https://evidence.example@attacker.example/",
    ]) {
      expectApiError(await createRequest(o.owner.token, o.orgId, "B", { p_evidence_urls: ["https://fine.example/", bad] }), 400, "invalid_evidence_url");
    }
    expect(await requestsOf(o.orgId)).toEqual([]);
    const ok = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_evidence_urls: urls(10) });
    expect(ok.evidence_urls).toEqual(urls(10));
    // An @ after the host (a profile path) is not a credential.
    await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: ok.id });
    const profile = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_evidence_urls: ["https://medium.example/@org/case-study"] });
    expect(profile.evidence_urls).toEqual(["https://medium.example/@org/case-study"]);
  });

  it("one pending request per organization (409 request_already_pending); after a decision a new one may be made", async () => {
    const o = await fixtures.orgWithPeople();
    const first = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const second = await createRequest(o.admin.token, o.orgId, "B");
    expectApiError(second, 409, "request_already_pending");
    expect(second.error!.hint).toBeTruthy();
    expect((await requestsOf(o.orgId)).map((r) => r.id)).toEqual([first.id]);

    await rpcOk(o.platformAdmin.token, "reject_upgrade_request", { p_request_id: first.id, p_note: "not yet" });
    const third = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    expect(third.status).toBe("pending");
  });

  it("a request for C needs an active B (422 level_c_requires_b) and is 409 level_already_active when C is active", async () => {
    const o = await fixtures.orgWithPeople();
    expectApiError(await createRequest(o.owner.token, o.orgId, "C"), 422, "level_c_requires_b");
    const staleB = await arrangeB(o.orgId, await fromNow(-60_000)); // past its valid_until: not an active B
    expectApiError(await createRequest(o.owner.token, o.orgId, "C"), 422, "level_c_requires_b");
    expect(await requestsOf(o.orgId)).toEqual([]);
    await exec("update public.organization_status_levels set is_active = false, ended_at = valid_until, end_reason = 'expired' where id = $1", [staleB]);

    await arrangeB(o.orgId, await fromNow(300 * DAY));
    const c = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C" });
    expect(c.target_level).toBe("C");
    await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: c.id });

    await fixtures.levelRow(o.orgId, "C");
    expectApiError(await createRequest(o.owner.token, o.orgId, "C"), 409, "level_already_active");
  });

  it("a request for B while B is active is a renewal: allowed only within 60 days of its end (422 renewal_too_early)", async () => {
    const early = await fixtures.orgWithPeople();
    await arrangeB(early.orgId, await fromNow(60 * DAY + HOUR));
    const tooEarly = await createRequest(early.owner.token, early.orgId, "B");
    expectApiError(tooEarly, 422, "renewal_too_early");
    expect(await requestsOf(early.orgId)).toEqual([]);

    const due = await fixtures.orgWithPeople();
    await arrangeB(due.orgId, await fromNow(60 * DAY - HOUR));
    const renewal = await rpcOk(due.owner.token, "create_upgrade_request", { p_organization_id: due.orgId, p_target_level: "B" });
    expect(renewal.status).toBe("pending");

    const farAway = await fixtures.orgWithPeople();
    await arrangeB(farAway.orgId, await fromNow(500 * DAY));
    expectApiError(await createRequest(farAway.owner.token, farAway.orgId, "B"), 422, "renewal_too_early");
  });
});

describe("upgrade requests: the rate limit holds in SQL, for direct PostgREST callers too", () => {
  const LIMIT_PER_USER = 5;
  const LIMIT_PER_ORG = 10;

  it(`a member calling PostgREST directly creates at most ${LIMIT_PER_USER} requests per window (429 rate_limited with a retry time), so create/cancel loops cannot fill the history`, async () => {
    const o = await fixtures.orgWithPeople();
    const outcomes: string[] = [];
    let limited: Awaited<ReturnType<typeof createRequest>> | null = null;
    const started = Date.now();
    for (let i = 0; i < 12; i++) {
      const created = await createRequest(o.owner.token, o.orgId, "B");
      if (created.error) {
        limited ??= created;
        outcomes.push(`${created.status} ${created.error.message.split(":")[0]}`);
        continue;
      }
      outcomes.push("created");
      expect((await cancel(o.owner.token, (created.data as { id: string }).id)).error).toBeNull();
    }
    expect(outcomes).toEqual([...Array(LIMIT_PER_USER).fill("created"), ...Array(12 - LIMIT_PER_USER).fill("429 rate_limited")]);
    expectApiError(limited!, 429, "rate_limited");
    const retryAfter = (JSON.parse(limited!.error!.details!) as { retry_after_seconds: number }).retry_after_seconds;
    // The window (600 s) began with the first request: what is left of it, whatever the calls took.
    expect(retryAfter).toBeGreaterThanOrEqual(600 - Math.ceil((Date.now() - started) / 1000) - 1);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect(limited!.error!.message).toMatch(/try again in \d+ s/);
    expect(await historyOf(o.orgId)).toHaveLength(2 * LIMIT_PER_USER);
  });

  it(`an organization gets at most ${LIMIT_PER_ORG} requests per window whoever asks, and a user at their limit is limited in every organization`, async () => {
    const o = await fixtures.orgWithPeople();
    const owners = [o.owner, o.admin, await fixtures.member(o.orgId, "owner", "second-owner")];
    const outcomes: Record<string, number> = {};
    for (const who of owners) {
      for (let i = 0; i < LIMIT_PER_USER; i++) {
        const created = await createRequest(who.token, o.orgId, "B");
        const label = created.error ? created.error.message.split(":")[0]! : "created";
        outcomes[label] = (outcomes[label] ?? 0) + 1;
        if (!created.error) await cancel(who.token, (created.data as { id: string }).id);
      }
    }
    expect(outcomes).toEqual({ created: LIMIT_PER_ORG, rate_limited: 3 * LIMIT_PER_USER - LIMIT_PER_ORG });

    // o.owner used up their own limit above: another organization they own refuses them too.
    const elsewhere = await fixtures.organization();
    await exec("insert into public.organization_members (organization_id, user_id, role) values ($1, $2, 'owner')", [elsewhere, o.owner.id]);
    expectApiError(await createRequest(o.owner.token, elsewhere, "B"), 429, "rate_limited");
  });

  it(`${2 * LIMIT_PER_USER} concurrent requests by one user for ${2 * LIMIT_PER_USER} organizations: exactly ${LIMIT_PER_USER} are created`, async () => {
    const owner = await fixtures.user("busy-owner");
    const orgs = await Promise.all(Array.from({ length: 2 * LIMIT_PER_USER }, () => fixtures.organization()));
    for (const orgId of orgs) await exec("insert into public.organization_members (organization_id, user_id, role) values ($1, $2, 'owner')", [orgId, owner.id]);
    const results = await Promise.all(orgs.map((orgId) => createRequest(owner.token, orgId, "B")));
    expect(results.filter((r) => !r.error)).toHaveLength(LIMIT_PER_USER);
    for (const r of results.filter((x) => x.error)) expectApiError(r, 429, "rate_limited");
    const [row] = await exec<{ n: number }>("select count(*)::int as n from public.upgrade_requests where requested_by = $1", [owner.id]);
    expect(row!.n).toBe(LIMIT_PER_USER);
  });
});

describe("upgrade requests: pending -> approved | rejected | cancelled, nothing else", () => {
  it("a decided request cannot be approved, rejected or cancelled again (409 request_not_pending)", async () => {
    const o = await fixtures.orgWithPeople();
    const admin = o.platformAdmin.token;

    const approved = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    await rpcOk(admin, "approve_upgrade_request", { p_request_id: approved.id });
    await rpcOk(admin, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "to ask again" });

    const rejected = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    await rpcOk(admin, "reject_upgrade_request", { p_request_id: rejected.id, p_note: "missing evidence" });

    const cancelled = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: cancelled.id });

    const snapshot = await requestsOf(o.orgId);
    const levels = await levelsOf(o.orgId);
    for (const r of [approved, rejected, cancelled]) {
      expectApiError(await approve(admin, r.id), 409, "request_not_pending");
      expectApiError(await reject(admin, r.id, "changed my mind"), 409, "request_not_pending");
      expectApiError(await cancel(o.owner.token, r.id), 409, "request_not_pending");
    }
    expect(await requestsOf(o.orgId)).toEqual(snapshot);
    expect(snapshot.map((r) => r.status)).toEqual(["approved", "rejected", "cancelled"]);
    expect(await levelsOf(o.orgId)).toEqual(levels);
  });

  it("the status column itself only knows the four states", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    await expect(exec("update public.upgrade_requests set status = 'granted', decided_at = now() where id = $1", [r.id])).rejects.toMatchObject({ code: "23514" });
  });

  it("unknown or invisible requests are 404 request_not_found", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    expectApiError(await cancel(o.outsider.token, r.id), 404, "request_not_found");
    expectApiError(await cancel(o.owner.token, crypto.randomUUID()), 404, "request_not_found");
    expectApiError(await approve(o.platformAdmin.token, crypto.randomUUID()), 404, "request_not_found");
    expectApiError(await reject(o.platformAdmin.token, crypto.randomUUID(), "no"), 404, "request_not_found");
    expect((await requestById(r.id)).status).toBe("pending");
  });
});

describe("upgrade requests: cancelling", () => {
  it("the requester may cancel, even after losing the admin role", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    await exec("update public.organization_members set role = 'member' where organization_id = $1 and user_id = $2", [o.orgId, o.admin.id]);
    const cancelled = await rpcOk(o.admin.token, "cancel_upgrade_request", { p_request_id: r.id });
    expect(cancelled).toMatchObject({ id: r.id, status: "cancelled", decided_by: o.admin.id });
    expect(cancelled.decided_at).toBeTruthy();
  });

  it("an owner or admin may cancel someone else's request; managers, members and platform admins may not (403)", async () => {
    const o = await fixtures.orgWithPeople();
    const byAdmin = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    for (const who of [o.manager, o.member, o.platformAdmin]) {
      expectApiError(await cancel(who.token, byAdmin.id), 403, "not_allowed");
    }
    expectApiError(await cancel(SERVICE_ROLE, byAdmin.id), 403, "not_allowed");
    expect((await requestById(byAdmin.id)).status).toBe("pending");
    expect(await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: byAdmin.id })).toMatchObject({ status: "cancelled", decided_by: o.owner.id });

    const byOwner = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    expect(await rpcOk(o.admin.token, "cancel_upgrade_request", { p_request_id: byOwner.id })).toMatchObject({ status: "cancelled", decided_by: o.admin.id });
  });
});

describe("upgrade requests: approving and rejecting", () => {
  it("only platform admins approve or reject (403 for the org's owner and for the service role)", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    expectApiError(await approve(o.owner.token, r.id), 403, "not_allowed");
    expectApiError(await approve(SERVICE_ROLE, r.id), 403, "not_allowed");
    expectApiError(await reject(o.owner.token, r.id, "no"), 403, "not_allowed");
    expectApiError(await reject(SERVICE_ROLE, r.id, "no"), 403, "not_allowed");
    expect((await requestById(r.id)).status).toBe("pending");
    expect(await levelsOf(o.orgId)).toEqual([]);
  });

  it("approving a request for B grants B (now + 18 months) and links it to the request", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const res = await rpcOk(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id, p_notes: "documents checked" });
    expect(res.request).toMatchObject({ id: r.id, status: "approved", decided_by: o.platformAdmin.id, decision_note: "documents checked" });
    expect(res.level).toMatchObject({ level: "B", is_active: true, granted_by: o.platformAdmin.id });
    expect(res.request.granted_status_level_id).toBe(res.level.id);
    expect(await levelSatisfies(res.level.id, "valid_until = granted_at + interval '18 months'")).toBe(true);
    const stored = await requestById(r.id);
    expect(stored).toMatchObject({ status: "approved", granted_status_level_id: res.level.id });
    expect(await currentLevel(o.orgId)).toBe("B");
  });

  it("approving a renewal request (B while B is active) renews that B instead of granting a second one", async () => {
    const o = await fixtures.orgWithPeople();
    const bId = await arrangeB(o.orgId, await fromNow(20 * DAY));
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const res = await rpcOk(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id });
    expect(res.level).toMatchObject({ id: bId, level: "B", is_active: true });
    expect(res.request).toMatchObject({ status: "approved", granted_status_level_id: bId });
    expect(await levelSatisfies(bId, "valid_until = last_verified_at + interval '18 months' and last_verified_at = updated_at")).toBe(true);
    expect((await levelsOf(o.orgId)).length).toBe(1);
    expect((await historyOf(o.orgId)).map((h) => h.action)).toEqual(["request_created", "renewed", "request_approved"]);
  });

  it("approving a request for C grants C when the criteria hold", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C", p_evidence_urls: ["https://reviews.example/org"] });
    const res = await rpcOk(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id });
    expect(res.level).toMatchObject({ level: "C", valid_until: null, is_active: true });
    expect(res.request).toMatchObject({ status: "approved", granted_status_level_id: res.level.id });
    expect(await currentLevel(o.orgId)).toBe("C");
  });

  it("approving fails with the grant's error and leaves the request pending when the grant is refused", async () => {
    const o = await fixtures.orgWithPeople();
    await arrangeB(o.orgId, await fromNow(300 * DAY));
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C" });
    expectApiError(await approve(o.platformAdmin.token, r.id), 422, "level_c_criteria_not_met");
    expect(await requestById(r.id)).toMatchObject({ status: "pending", decided_at: null, decided_by: null, granted_status_level_id: null });
  });

  it("a note made only of tabs and line breaks is no note either (400 decision_note_required)", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    for (const blank of ["\t", "\n", " \r\n\t "]) {
      expectApiError(await reject(o.platformAdmin.token, r.id, blank), 400, "decision_note_required");
    }
    expect((await requestById(r.id)).status).toBe("pending");
  });

  it("rejecting needs a note (400 decision_note_required) and keeps it", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    expectApiError(await reject(o.platformAdmin.token, r.id, null), 400, "decision_note_required");
    expectApiError(await reject(o.platformAdmin.token, r.id, ""), 400, "decision_note_required");
    expectApiError(await reject(o.platformAdmin.token, r.id, "   "), 400, "decision_note_required");
    expectApiError(await reject(o.platformAdmin.token, r.id, "n".repeat(2001)), 400, "note_too_long");
    expect((await requestById(r.id)).status).toBe("pending");

    const rejected = await rpcOk(o.platformAdmin.token, "reject_upgrade_request", { p_request_id: r.id, p_note: "send the audit report" });
    expect(rejected).toMatchObject({ status: "rejected", decision_note: "send the audit report", decided_by: o.platformAdmin.id, granted_status_level_id: null });
    expect(await levelsOf(o.orgId)).toEqual([]);
  });
});

describe("reading: history, an organization's requests, the admin queue", () => {
  it("history pages with limit/offset, newest first, with the total", async () => {
    const o = await fixtures.orgWithPeople();
    const admin = o.platformAdmin.token;
    await rpcOk(admin, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" });
    await rpcOk(admin, "renew_status_level_b", { p_organization_id: o.orgId });
    await rpcOk(admin, "update_status_validity", { p_organization_id: o.orgId, p_level: "B", p_valid_until: (await fromNow(100 * DAY)).toISOString(), p_reason: "r" });
    await rpcOk(admin, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "r" });
    await rpcOk(admin, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" });
    const newestFirst = ["granted", "revoked", "validity_updated", "renewed", "granted"];

    const all = await rpcOk(o.member.token, "get_status_level_history", { p_organization_id: o.orgId });
    expect(all).toMatchObject({ total: 5, limit: 50, offset: 0 });
    expect(all.items.map((i: { action: string }) => i.action)).toEqual(newestFirst);

    const page1 = await rpcOk(o.member.token, "get_status_level_history", { p_organization_id: o.orgId, p_limit: 2, p_offset: 0 });
    const page2 = await rpcOk(o.member.token, "get_status_level_history", { p_organization_id: o.orgId, p_limit: 2, p_offset: 2 });
    const page3 = await rpcOk(o.member.token, "get_status_level_history", { p_organization_id: o.orgId, p_limit: 2, p_offset: 4 });
    const beyond = await rpcOk(o.member.token, "get_status_level_history", { p_organization_id: o.orgId, p_limit: 2, p_offset: 10 });
    expect([page1, page2, page3, beyond].map((p) => p.total)).toEqual([5, 5, 5, 5]);
    expect([...page1.items, ...page2.items, ...page3.items].map((i: { id: number }) => i.id)).toEqual(all.items.map((i: { id: number }) => i.id));
    expect(page3.items).toHaveLength(1);
    expect(beyond.items).toEqual([]);

    const byAdmin = await rpcOk(admin, "get_status_level_history", { p_organization_id: o.orgId, p_limit: 200 });
    expect(byAdmin.total).toBe(5);
  });

  it("history: limit 1..200 and offset >= 0 (400 invalid_limit / invalid_offset); members and platform admins only", async () => {
    const o = await fixtures.orgWithPeople();
    const page = (token: string | null, limit: number, offset: number, orgId = o.orgId) =>
      rpc(token, "get_status_level_history", { p_organization_id: orgId, p_limit: limit, p_offset: offset });
    expectApiError(await page(o.member.token, 0, 0), 400, "invalid_limit");
    expectApiError(await page(o.member.token, 201, 0), 400, "invalid_limit");
    expectApiError(await page(o.member.token, -1, 0), 400, "invalid_limit");
    expectApiError(await page(o.member.token, 10, -1), 400, "invalid_offset");
    expectApiError(await page(o.outsider.token, 10, 0), 403, "not_allowed");
    const anon = await page(null, 10, 0);
    expect(anon.status).toBe(401);

    const hidden = await fixtures.orgWithPeople({ isPublic: false });
    expectApiError(await page(hidden.outsider.token, 10, 0, hidden.orgId), 404, "organization_not_found");
    expect((await rpcOk(hidden.platformAdmin.token, "get_status_level_history", { p_organization_id: hidden.orgId })).total).toBe(0);
  });

  it("an organization's requests, newest first, filtered by status, for its members", async () => {
    const o = await fixtures.orgWithPeople();
    const first = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: first.id });
    const second = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_message: "again" });
    const other = await fixtures.orgWithPeople();
    await rpcOk(other.owner.token, "create_upgrade_request", { p_organization_id: other.orgId, p_target_level: "B" });

    const all = await rpcOk(o.member.token, "list_upgrade_requests", { p_organization_id: o.orgId });
    expect(all).toMatchObject({ total: 2, limit: 50, offset: 0 });
    expect(all.items.map((r: { id: string }) => r.id)).toEqual([second.id, first.id]);
    expect(all.items[0]).toMatchObject({ status: "pending", message: "again", requested_by: o.admin.id });

    const pending = await rpcOk(o.manager.token, "list_upgrade_requests", { p_organization_id: o.orgId, p_status: "pending" });
    expect(pending.total).toBe(1);
    expect(pending.items.map((r: { id: string }) => r.id)).toEqual([second.id]);
    const cancelled = await rpcOk(o.platformAdmin.token, "list_upgrade_requests", { p_organization_id: o.orgId, p_status: "cancelled", p_limit: 1 });
    expect(cancelled.items.map((r: { id: string }) => r.id)).toEqual([first.id]);

    expectApiError(await rpc(o.member.token, "list_upgrade_requests", { p_organization_id: o.orgId, p_status: "granted" }), 400, "invalid_status");
    expectApiError(await rpc(o.outsider.token, "list_upgrade_requests", { p_organization_id: o.orgId }), 403, "not_allowed");
    expectApiError(await rpc(o.member.token, "list_upgrade_requests", { p_organization_id: o.orgId, p_limit: 500 }), 400, "invalid_limit");
  });

  it("the admin queue: pending requests oldest first, with the organization, its current level and C progress; platform admins only", async () => {
    const reviewer = await fixtures.platformAdmin();
    const o1 = await fixtures.orgWithPeople();
    const o2 = await fixtures.orgWithPeople();
    const o3 = await fixtures.orgWithPeople();
    await exec("update public.organizations set name = 'Queue org ' || $2 where id = $1", [o1.orgId, o1.orgId.slice(0, 8)]);
    await arrangeB(o2.orgId, await fromNow(300 * DAY));
    const r1 = await rpcOk(o1.owner.token, "create_upgrade_request", { p_organization_id: o1.orgId, p_target_level: "B" });
    const r2 = await rpcOk(o2.owner.token, "create_upgrade_request", { p_organization_id: o2.orgId, p_target_level: "C" });
    const r3 = await rpcOk(o3.owner.token, "create_upgrade_request", { p_organization_id: o3.orgId, p_target_level: "B" });
    await rpcOk(reviewer.token, "reject_upgrade_request", { p_request_id: r3.id, p_note: "no" });

    // The queue is shared with every other test: walk it all and pick out ours.
    const seen: Array<Record<string, any>> = [];
    let total = 0;
    for (let offset = 0; ; offset += 200) {
      const page = await rpcOk(reviewer.token, "list_pending_upgrade_requests", { p_limit: 200, p_offset: offset });
      total = Math.max(total, page.total);
      seen.push(...page.items);
      if (page.items.length < 200) break;
    }
    const ours = seen.filter((r) => [r1.id, r2.id, r3.id].includes(r.id));
    expect(ours.map((r) => r.id)).toEqual([r1.id, r2.id]);
    expect(total).toBeGreaterThanOrEqual(2);
    expect(seen.every((r) => r.status === "pending")).toBe(true);
    for (let i = 1; i < seen.length; i++) {
      expect(new Date(seen[i]!.created_at).getTime()).toBeGreaterThanOrEqual(new Date(seen[i - 1]!.created_at).getTime());
    }
    expect(ours[0]).toMatchObject({ organization: { id: o1.orgId, name: `Queue org ${o1.orgId.slice(0, 8)}` }, current_level: "0", level_c_progress: null });
    expect(ours[1]).toMatchObject({ organization: { id: o2.orgId }, current_level: "B", target_level: "C" });
    expect(ours[1]!.level_c_progress).toMatchObject({ has_active_b: true });
    expect(ours[1]!.level_c_checklist).toMatchObject({ meets_criteria: false, items: { has_active_b: { met: true } } });

    const one = await rpcOk(reviewer.token, "list_pending_upgrade_requests", { p_limit: 1 });
    expect(one.items).toHaveLength(1);
    expectApiError(await rpc(o1.owner.token, "list_pending_upgrade_requests", {}), 403, "not_allowed");
    expectApiError(await rpc(reviewer.token, "list_pending_upgrade_requests", { p_limit: 0 }), 400, "invalid_limit");
    expect((await rpcOk(SERVICE_ROLE, "list_pending_upgrade_requests", { p_limit: 1 })).total).toBeGreaterThanOrEqual(2);
  });
});
