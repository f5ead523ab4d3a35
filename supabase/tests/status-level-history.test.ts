import { describe, expect, it } from "vitest";
import { exec, fixtures, sql } from "../../scripts/test/node-harness.ts";
import {
  DAY,
  HOUR,
  SERVICE_ROLE,
  api,
  arrangeB,
  expectApiError,
  fromNow,
  historyOf,
  levelById,
  levelsOf,
  requestById,
  rpc,
  rpcOk,
  type HistoryRow,
} from "./helpers.ts";

/**
 * The audit trail: every change writes exactly one history row of the right action, in the same
 * transaction as the change (same now(): history.created_at equals the change's timestamps); a
 * failed change writes nothing and leaves everything as it was; history is append-only.
 */

/** The history rows written after `before` (rows of the organization, oldest first). */
async function newHistory(orgId: string, before: HistoryRow[]): Promise<HistoryRow[]> {
  const seen = new Set(before.map((h) => h.id));
  return (await historyOf(orgId)).filter((h) => !seen.has(h.id));
}

/** Exact comparisons in SQL (microseconds; postgres.js Dates stop at milliseconds). */
async function sqlTrue(query: string, params: unknown[]): Promise<boolean> {
  const [row] = await exec<{ ok: boolean | null }>(`select (${query}) as ok`, params);
  return row!.ok === true;
}

const same = (a: Date | null | undefined, b: Date | string | null | undefined) =>
  expect(a ? a.getTime() : null).toBe(b ? new Date(b).getTime() : null);

describe("each change writes exactly one history row, in its transaction", () => {
  it("granted: the admin as actor, notes, new valid_until", async () => {
    const o = await fixtures.orgWithPeople();
    const level = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B", p_notes: "audit passed" });
    const rows = await historyOf(o.orgId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      action: "granted", level: "B", status_level_id: level.id, upgrade_request_id: null, actor_id: o.platformAdmin.id,
      notes: "audit passed", reason: null, old_valid_until: null,
    });
    expect(await sqlTrue(
      "select h.created_at = l.granted_at and h.new_valid_until = l.valid_until from public.status_level_history h join public.organization_status_levels l on l.id = h.status_level_id where h.id = $1",
      [rows[0]!.id],
    )).toBe(true);
  });

  it("granted by the system (service role, or a superuser session): actor null", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    const a = await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    const o2 = await fixtures.orgWithPeople();
    const sub2 = await fixtures.subscription(o2.orgId);
    await sql`select public.grant_status_level(${o2.orgId}::uuid, 'A', null, ${sub2.id}::uuid, 'from the backend')`;

    const [h1] = await historyOf(o.orgId);
    const [h2] = await historyOf(o2.orgId);
    expect(h1).toMatchObject({ action: "granted", level: "A", actor_id: null, status_level_id: a.id });
    same(h1!.new_valid_until, a.valid_until);
    expect(h2).toMatchObject({ action: "granted", level: "A", actor_id: null, notes: "from the backend" });
    expect(await historyOf(o.orgId)).toHaveLength(1);
    expect(await historyOf(o2.orgId)).toHaveLength(1);
  });

  it("renewed: old and new valid_until, notes, the admin", async () => {
    const o = await fixtures.orgWithPeople();
    const oldUntil = await fromNow(15 * DAY);
    const bId = await arrangeB(o.orgId, oldUntil);
    await rpcOk(o.platformAdmin.token, "renew_status_level_b", { p_organization_id: o.orgId, p_notes: "second audit" });
    const rows = await historyOf(o.orgId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "renewed", level: "B", status_level_id: bId, actor_id: o.platformAdmin.id, notes: "second audit" });
    same(rows[0]!.old_valid_until, oldUntil);
    const b = await levelById(bId);
    same(rows[0]!.new_valid_until, b.valid_until);
    expect(await sqlTrue("select h.created_at = l.updated_at and h.created_at = l.last_verified_at from public.status_level_history h join public.organization_status_levels l on l.id = h.status_level_id where h.id = $1", [rows[0]!.id])).toBe(true);
  });

  it("revoked: the reason and the validity it had; a revoke that finds nothing writes nothing", async () => {
    const o = await fixtures.orgWithPeople();
    const until = await fromNow(200 * DAY);
    const bId = await arrangeB(o.orgId, until);
    expect((await rpc<boolean>(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "complaints" })).data).toBe(true);
    const rows = await historyOf(o.orgId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "revoked", level: "B", status_level_id: bId, actor_id: o.platformAdmin.id, reason: "complaints", new_valid_until: null });
    same(rows[0]!.old_valid_until, until);
    expect(await sqlTrue("select h.created_at = l.revoked_at and h.created_at = l.ended_at from public.status_level_history h join public.organization_status_levels l on l.id = h.status_level_id where h.id = $1", [rows[0]!.id])).toBe(true);

    expect((await rpc<boolean>(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "again" })).data).toBe(false);
    expect((await rpc<boolean>(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "C", p_reason: "none" })).data).toBe(false);
    expect(await historyOf(o.orgId)).toHaveLength(1);
  });

  it("revoked by the system (level A): actor null", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    const before = await historyOf(o.orgId);
    expect((await rpc<boolean>(SERVICE_ROLE, "revoke_status_level", { p_organization_id: o.orgId, p_level: "A", p_reason: "subscription_canceled" })).data).toBe(true);
    const added = await newHistory(o.orgId, before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ action: "revoked", level: "A", actor_id: null, reason: "subscription_canceled" });
  });

  it("expired: the system as actor, the validity that ended; one row per lapsed level, once", async () => {
    const o = await fixtures.orgWithPeople();
    const lapsedAt = await fromNow(-2 * HOUR);
    const bId = await arrangeB(o.orgId, lapsedAt);
    const [{ n }] = (await exec<{ n: number }>("select private.expire_lapsed_levels($1) as n", [o.orgId])) as [{ n: number }];
    expect(n).toBe(1);
    const rows = await historyOf(o.orgId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "expired", level: "B", status_level_id: bId, actor_id: null, new_valid_until: null });
    expect(rows[0]!.reason).toBeTruthy();
    same(rows[0]!.old_valid_until, lapsedAt);
    const b = await levelById(bId);
    expect(b).toMatchObject({ is_active: false, end_reason: "expired" });
    same(b.ended_at, lapsedAt);

    const [{ n: again }] = (await exec<{ n: number }>("select private.expire_lapsed_levels($1) as n", [o.orgId])) as [{ n: number }];
    expect(again).toBe(0);
    expect(await historyOf(o.orgId)).toHaveLength(1);
  });

  it("expired, found by a revoke: the revoke returns false and only the `expired` row is written", async () => {
    const o = await fixtures.orgWithPeople();
    const bId = await arrangeB(o.orgId, await fromNow(-HOUR));
    const res = await rpc<boolean>(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "too late" });
    expect(res.data).toBe(false);
    const rows = await historyOf(o.orgId);
    expect(rows.map((h) => [h.action, h.status_level_id, h.actor_id])).toEqual([["expired", bId, null]]);
    expect((await levelById(bId)).end_reason).toBe("expired");
  });

  it("validity_updated: reason, old and new valid_until, the actor (null for the system)", async () => {
    const o = await fixtures.orgWithPeople();
    const oldB = await fromNow(10 * DAY);
    const bId = await arrangeB(o.orgId, oldB);
    const newB = await fromNow(90 * DAY);
    await rpcOk(o.platformAdmin.token, "update_status_validity", { p_organization_id: o.orgId, p_level: "B", p_valid_until: newB.toISOString(), p_reason: "audit delayed" });
    const rows = await historyOf(o.orgId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "validity_updated", level: "B", status_level_id: bId, actor_id: o.platformAdmin.id, reason: "audit delayed" });
    same(rows[0]!.old_valid_until, oldB);
    same(rows[0]!.new_valid_until, newB);
    expect(await sqlTrue("select h.created_at = l.updated_at from public.status_level_history h join public.organization_status_levels l on l.id = h.status_level_id where h.id = $1", [rows[0]!.id])).toBe(true);

    const sub = await fixtures.subscription(o.orgId);
    await rpcOk(SERVICE_ROLE, "grant_status_level", { p_organization_id: o.orgId, p_level: "A", p_subscription_id: sub.id });
    const before = await historyOf(o.orgId);
    await rpcOk(SERVICE_ROLE, "update_status_validity", { p_organization_id: o.orgId, p_level: "A", p_valid_until: (await fromNow(60 * DAY)).toISOString() });
    const added = await newHistory(o.orgId, before);
    expect(added.map((h) => [h.action, h.level, h.actor_id])).toEqual([["validity_updated", "A", null]]);
  });

  it("request_created: the requester, the message as notes, the request", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_message: "we are ready" });
    const rows = await historyOf(o.orgId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "request_created", level: "B", upgrade_request_id: r.id, status_level_id: null, actor_id: o.admin.id, notes: "we are ready" });
    expect(await sqlTrue("select h.created_at = r.created_at from public.status_level_history h join public.upgrade_requests r on r.id = h.upgrade_request_id where h.id = $1", [rows[0]!.id])).toBe(true);
  });

  it("request_approved: the grant and the approval, one row each, in one transaction", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const before = await historyOf(o.orgId);
    const res = await rpcOk(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id, p_notes: "verified on site" });
    const added = await newHistory(o.orgId, before);
    expect(added.map((h) => h.action)).toEqual(["granted", "request_approved"]);
    for (const h of added) {
      expect(h).toMatchObject({ level: "B", upgrade_request_id: r.id, status_level_id: res.level.id, actor_id: o.platformAdmin.id, notes: "verified on site" });
    }
    expect(await sqlTrue(
      "select count(distinct h.created_at) = 1 and min(h.created_at) = (select decided_at from public.upgrade_requests where id = $2) and min(h.created_at) = (select granted_at from public.organization_status_levels where id = $3) from public.status_level_history h where h.id = any($1::bigint[])",
      [added.map((h) => h.id), r.id, res.level.id],
    )).toBe(true);
  });

  it("request_approved for a renewal: `renewed` and `request_approved`", async () => {
    const o = await fixtures.orgWithPeople();
    const oldUntil = await fromNow(30 * DAY);
    const bId = await arrangeB(o.orgId, oldUntil);
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const before = await historyOf(o.orgId);
    await rpcOk(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id });
    const added = await newHistory(o.orgId, before);
    expect(added.map((h) => [h.action, h.status_level_id, h.upgrade_request_id])).toEqual([
      ["renewed", bId, r.id],
      ["request_approved", bId, r.id],
    ]);
    same(added[0]!.old_valid_until, oldUntil);
    same(added[0]!.new_valid_until, (await levelById(bId)).valid_until);
  });

  it("request_rejected: the note as reason", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const before = await historyOf(o.orgId);
    await rpcOk(o.platformAdmin.token, "reject_upgrade_request", { p_request_id: r.id, p_note: "evidence links are broken" });
    const added = await newHistory(o.orgId, before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ action: "request_rejected", level: "B", upgrade_request_id: r.id, actor_id: o.platformAdmin.id, reason: "evidence links are broken", status_level_id: null });
    expect(await sqlTrue("select h.created_at = r.decided_at from public.status_level_history h join public.upgrade_requests r on r.id = h.upgrade_request_id where h.id = $1", [added[0]!.id])).toBe(true);
  });

  it("request_cancelled: whoever cancelled", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const before = await historyOf(o.orgId);
    await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: r.id });
    const added = await newHistory(o.orgId, before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ action: "request_cancelled", level: "B", upgrade_request_id: r.id, actor_id: o.owner.id });
    expect(await sqlTrue("select h.created_at = r.decided_at from public.status_level_history h join public.upgrade_requests r on r.id = h.upgrade_request_id where h.id = $1", [added[0]!.id])).toBe(true);
  });

  it("the API's history shows the same rows, with actor, reason, notes and validity", async () => {
    const o = await fixtures.orgWithPeople();
    await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B", p_notes: "n1" });
    await rpcOk(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "r1" });
    const stored = await historyOf(o.orgId);
    const viaApi = await rpcOk(o.member.token, "get_status_level_history", { p_organization_id: o.orgId });
    expect(viaApi.items.map((i: Record<string, any>) => [String(i.id), i.action, i.actor_id, i.reason, i.notes, i.status_level_id])).toEqual(
      [...stored].reverse().map((h) => [h.id, h.action, h.actor_id, h.reason, h.notes, h.status_level_id]),
    );
    same(stored[1]!.old_valid_until, viaApi.items[0].old_valid_until);
    same(stored[0]!.new_valid_until, viaApi.items[1].new_valid_until);
  });
});

describe("a failed change writes nothing (the transaction rolls back whole)", () => {
  it("a 409 grant, a 422 grant of C and a 403 grant leave no history and no level row", async () => {
    const o = await fixtures.orgWithPeople();
    await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" });
    const before = await historyOf(o.orgId);
    const levels = await levelsOf(o.orgId);
    expectApiError(await rpc(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" }), 409, "level_already_active");
    expectApiError(await rpc(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" }), 422, "level_c_criteria_not_met");
    expectApiError(await rpc(o.owner.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" }), 403, "not_allowed");
    expectApiError(await rpc(o.platformAdmin.token, "renew_status_level_b", { p_organization_id: o.orgId, p_notes: "x".repeat(2001) }), 400, "notes_too_long");
    expect(await historyOf(o.orgId)).toEqual(before);
    expect(await levelsOf(o.orgId)).toEqual(levels);
  });

  it("approving a C request whose grant fails the criteria: no history row, no level, the request stays pending", async () => {
    const o = await fixtures.orgWithPeople();
    await arrangeB(o.orgId, await fromNow(300 * DAY));
    await fixtures.caseStudy(o.orgId);
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C" });
    const before = await historyOf(o.orgId);
    const levels = await levelsOf(o.orgId);
    const requestBefore = await requestById(r.id);

    expectApiError(await rpc(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id, p_notes: "looks good" }), 422, "level_c_criteria_not_met");

    expect(await historyOf(o.orgId)).toEqual(before);
    expect(await levelsOf(o.orgId)).toEqual(levels);
    expect(await requestById(r.id)).toEqual(requestBefore);
    expect(requestBefore.status).toBe("pending");
  });

  it("approving a C request after its B lapsed: the expiry found on the way is rolled back with the failed grant", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C" });
    await exec("update public.organization_status_levels set valid_until = now() - interval '1 minute' where organization_id = $1 and level = 'B'", [o.orgId]);
    const before = await historyOf(o.orgId);
    const levels = await levelsOf(o.orgId);

    expectApiError(await rpc(o.platformAdmin.token, "approve_upgrade_request", { p_request_id: r.id }), 422, "level_c_requires_b");

    expect(await historyOf(o.orgId)).toEqual(before); // not even the `expired` row
    expect(await levelsOf(o.orgId)).toEqual(levels); // the lapsed B still carries its flag: nothing committed
    expect((await requestById(r.id)).status).toBe("pending");
  });

  it("a refused request (409 already pending, 422 too early) and a refused rejection or cancel write nothing", async () => {
    const o = await fixtures.orgWithPeople();
    const r = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" });
    const before = await historyOf(o.orgId);
    expectApiError(await rpc(o.admin.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B" }), 409, "request_already_pending");
    expectApiError(await rpc(o.platformAdmin.token, "reject_upgrade_request", { p_request_id: r.id, p_note: "" }), 400, "decision_note_required");
    expectApiError(await rpc(o.member.token, "cancel_upgrade_request", { p_request_id: r.id }), 403, "not_allowed");
    expect(await historyOf(o.orgId)).toEqual(before);

    const other = await fixtures.orgWithPeople();
    await arrangeB(other.orgId, await fromNow(400 * DAY));
    expectApiError(await rpc(other.owner.token, "create_upgrade_request", { p_organization_id: other.orgId, p_target_level: "B" }), 422, "renewal_too_early");
    expect(await historyOf(other.orgId)).toEqual([]);
  });
});

describe("history is append-only", () => {
  async function orgWithHistory() {
    const o = await fixtures.orgWithPeople();
    await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B", p_notes: "original" });
    return { o, rows: await historyOf(o.orgId) };
  }

  /** Runs statements as the superuser in a transaction that is always rolled back. */
  async function inRolledBack(statement: string, params: unknown[]): Promise<unknown> {
    let failure: unknown = null;
    await sql
      .begin(async (tx) => {
        await tx.unsafe("set local lock_timeout = '10s'");
        try {
          await tx.unsafe(statement, params as never[]);
        } catch (error) {
          failure = error;
        }
        throw new RolledBack();
      })
      .catch((error) => {
        if (!(error instanceof RolledBack)) throw error;
      });
    return failure;
  }
  class RolledBack extends Error {}

  it("the superuser can neither update nor delete nor truncate it (PT403 history_append_only)", async () => {
    const { o, rows } = await orgWithHistory();
    for (const statement of [
      "update public.status_level_history set notes = 'tampered' where organization_id = $1",
      "update public.status_level_history set actor_id = null where organization_id = $1",
      "delete from public.status_level_history where organization_id = $1",
    ]) {
      const error = (await inRolledBack(statement, [o.orgId])) as { code?: string; message?: string } | null;
      expect(error, statement).not.toBeNull();
      expect({ sqlstate: error!.code, code: error!.message?.split(":")[0] }).toEqual({ sqlstate: "PT403", code: "history_append_only" });
    }
    // Truncate is caught by the statement trigger; run in a rolled-back transaction so that even a
    // missing trigger could not wipe other tests' rows.
    const truncate = (await inRolledBack("truncate public.status_level_history", [])) as { code?: string; message?: string } | null;
    expect(truncate).not.toBeNull();
    expect({ sqlstate: truncate!.code, code: truncate!.message?.split(":")[0] }).toEqual({ sqlstate: "PT403", code: "history_append_only" });

    // And outside a wrapping transaction, straight as the superuser.
    await expect(exec("delete from public.status_level_history where organization_id = $1", [o.orgId])).rejects.toMatchObject({ code: "PT403" });
    expect(await historyOf(o.orgId)).toEqual(rows);
  });

  it("the service role, members and platform admins cannot change it through the API (42501)", async () => {
    const { o, rows } = await orgWithHistory();
    for (const token of [SERVICE_ROLE, o.owner.token, o.platformAdmin.token]) {
      const upd = await api(token).from("status_level_history").update({ notes: "tampered" }).eq("organization_id", o.orgId).select();
      expect(upd.error?.code, "update").toBe("42501");
      expect(upd.status).toBe(403);
      const del = await api(token).from("status_level_history").delete().eq("organization_id", o.orgId).select();
      expect(del.error?.code, "delete").toBe("42501");
      expect(del.status).toBe(403);
    }
    expect(await historyOf(o.orgId)).toEqual(rows);
  });
});
