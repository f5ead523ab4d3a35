import { describe, expect, it } from "vitest";
import { exec, fixtures, sql, stack } from "../../scripts/test/node-harness.ts";
import type { TestUser } from "../../scripts/test/fixtures.ts";
import {
  DAY,
  HOUR,
  arrangeB,
  committedAs,
  expectApiError,
  fromNow,
  historyOf,
  levelById,
  levelsOf,
  requestById,
  requestsOf,
  rpc,
  rpcOk,
  sleep,
  type RpcResult,
} from "./helpers.ts";

/**
 * Concurrency and time: the rules hold when many callers race (separate connections, really at the
 * same time), and expiry takes effect at valid_until, before any job flips the flag.
 */

const N = 50;

async function platformAdmins(n: number): Promise<TestUser[]> {
  return Promise.all(Array.from({ length: n }, () => fixtures.platformAdmin()));
}

function tally(results: Array<RpcResult<unknown>>) {
  const ok = results.filter((r) => !r.error);
  const failed = results.filter((r) => r.error);
  return { ok, failed };
}

describe("concurrent grants", () => {
  it(`${N} concurrent grants of B through PostgREST: one active row, one \`granted\` row, ${N - 1} × 409 level_already_active`, async () => {
    const orgId = await fixtures.organization();
    const admins = await platformAdmins(10);
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        rpc(admins[i % admins.length]!.token, "grant_status_level", { p_organization_id: orgId, p_level: "B", p_notes: `attempt ${i}` }),
      ),
    );
    const { ok, failed } = tally(results);
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(N - 1);
    for (const f of failed) expectApiError(f, 409, "level_already_active");

    const levels = await levelsOf(orgId);
    expect(levels).toHaveLength(1);
    expect(levels[0]).toMatchObject({ level: "B", is_active: true, id: (ok[0]!.data as { id: string }).id });
    const history = await historyOf(orgId);
    expect(history.map((h) => [h.action, h.status_level_id])).toEqual([["granted", levels[0]!.id]]);
  });

  it(`${N} concurrent grants of B over postgres.js connections (as platform admins, committed): the same`, async () => {
    const orgId = await fixtures.organization();
    const admins = await platformAdmins(10);
    const outcomes = await Promise.allSettled(
      Array.from({ length: N }, (_, i) =>
        committedAs({ role: "authenticated", userId: admins[i % admins.length]!.id }, (tx) =>
          tx`select public.grant_status_level(${orgId}::uuid, 'B') as level`,
        ),
      ),
    );
    const fulfilled = outcomes.filter((o) => o.status === "fulfilled");
    const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    expect(fulfilled).toHaveLength(1);
    expect(rejected.map((r) => [(r.reason as { code?: string }).code, String((r.reason as Error).message).split(":")[0]])).toEqual(
      Array.from({ length: N - 1 }, () => ["PT409", "level_already_active"]),
    );
    expect((await levelsOf(orgId)).filter((l) => l.is_active)).toHaveLength(1);
    expect((await historyOf(orgId)).map((h) => h.action)).toEqual(["granted"]);
  });

  it(`${N} concurrent grants of B over a lapsed B: one grant, the lapsed row expired once`, async () => {
    const orgId = await fixtures.organization();
    const admins = await platformAdmins(10);
    const lapsedAt = await fromNow(-HOUR);
    const staleId = await arrangeB(orgId, lapsedAt);
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => rpc(admins[i % admins.length]!.token, "grant_status_level", { p_organization_id: orgId, p_level: "B" })),
    );
    const { ok, failed } = tally(results);
    expect(ok).toHaveLength(1);
    for (const f of failed) expectApiError(f, 409, "level_already_active");
    expect(failed).toHaveLength(N - 1);

    const stale = await levelById(staleId);
    expect(stale).toMatchObject({ is_active: false, end_reason: "expired" });
    const active = (await levelsOf(orgId)).filter((l) => l.is_active);
    expect(active.map((l) => l.id)).toEqual([(ok[0]!.data as { id: string }).id]);
    expect((await historyOf(orgId)).map((h) => [h.action, h.status_level_id])).toEqual([
      ["expired", staleId],
      ["granted", active[0]!.id],
    ]);
  });

  it("grant C racing revoke B: C is never granted once B is gone (10 rounds)", async () => {
    for (let round = 0; round < 10; round++) {
      const o = await fixtures.orgWithPeople();
      await fixtures.meetsLevelC(o.orgId);
      const grantC = () => rpc(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "C" });
      const revokeB = () => rpc<boolean>(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "race" });
      const [c, b] = round % 2 === 0 ? await Promise.all([grantC(), revokeB()]) : (await Promise.all([revokeB(), grantC()])).reverse() as [RpcResult<unknown>, RpcResult<boolean>];
      expect(b.error).toBeNull();
      expect(b.data).toBe(true);
      const history = await historyOf(o.orgId);
      const cGranted = history.findIndex((h) => h.action === "granted" && h.level === "C");
      const bRevoked = history.findIndex((h) => h.action === "revoked" && h.level === "B");
      expect(bRevoked).toBeGreaterThanOrEqual(0);
      if (c.error) {
        expectApiError(c, 422, "level_c_requires_b");
        expect(cGranted).toBe(-1);
        expect((await levelsOf(o.orgId)).filter((l) => l.level === "C")).toEqual([]);
      } else {
        expect(cGranted).toBeGreaterThanOrEqual(0);
        expect(cGranted).toBeLessThan(bRevoked);
        expect((await levelsOf(o.orgId)).filter((l) => l.level === "C" && l.is_active)).toHaveLength(1);
      }
    }
  });
});

describe("concurrent upgrade requests", () => {
  it(`${N} concurrent requests for one organization: one pending, ${N - 1} × 409 request_already_pending`, async () => {
    const o = await fixtures.orgWithPeople();
    const secondAdmin = await fixtures.member(o.orgId, "admin", "admin2");
    const askers = [o.owner, o.admin, secondAdmin];
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        rpc(askers[i % askers.length]!.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "B", p_message: `ask ${i}` }),
      ),
    );
    const { ok, failed } = tally(results);
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(N - 1);
    for (const f of failed) expectApiError(f, 409, "request_already_pending");

    const requests = await requestsOf(o.orgId);
    expect(requests.map((r) => [r.id, r.status])).toEqual([[(ok[0]!.data as { id: string }).id, "pending"]]);
    expect((await historyOf(o.orgId)).map((h) => [h.action, h.upgrade_request_id])).toEqual([["request_created", requests[0]!.id]]);
  });

  it("approve racing cancel on the same request ends in exactly one of them, with consistent rows and history (20 rounds)", async () => {
    const reviewer = await fixtures.platformAdmin();
    for (let round = 0; round < 20; round++) {
      const orgId = await fixtures.organization();
      const owner = await fixtures.member(orgId, "owner");
      const request = await rpcOk(owner.token, "create_upgrade_request", { p_organization_id: orgId, p_target_level: "B" });
      const approve = () => rpc(reviewer.token, "approve_upgrade_request", { p_request_id: request.id, p_notes: "ok" });
      const cancel = () => rpc(owner.token, "cancel_upgrade_request", { p_request_id: request.id });
      const [approved, cancelled] =
        round % 2 === 0 ? await Promise.all([approve(), cancel()]) : ((await Promise.all([cancel(), approve()])).reverse() as [RpcResult<any>, RpcResult<any>]);

      expect([approved.error === null, cancelled.error === null].filter(Boolean), `round ${round}`).toHaveLength(1);
      const stored = await requestById(request.id);
      const history = (await historyOf(orgId)).map((h) => h.action);
      const levels = await levelsOf(orgId);
      if (approved.error === null) {
        expectApiError(cancelled, 409, "request_not_pending");
        expect(stored).toMatchObject({ status: "approved", decided_by: reviewer.id });
        expect(levels.map((l) => [l.level, l.is_active, l.id])).toEqual([["B", true, stored.granted_status_level_id]]);
        expect(history).toEqual(["request_created", "granted", "request_approved"]);
      } else {
        expectApiError(approved, 409, "request_not_pending");
        expect(stored).toMatchObject({ status: "cancelled", decided_by: owner.id, granted_status_level_id: null });
        expect(levels).toEqual([]);
        expect(history).toEqual(["request_created", "request_cancelled"]);
      }
    }
  });
});

describe("approving a B request while B is revoked", () => {
  it("an approval that read B as active while a revoke held the organization lock grants a new B instead of failing (decided under the lock)", async () => {
    const orgId = await fixtures.organization();
    const owner = await fixtures.member(orgId, "owner");
    const [reviewer, revoker] = await platformAdmins(2);
    const originalB = await arrangeB(orgId, await fromNow(30 * DAY));
    const request = await rpcOk(owner.token, "create_upgrade_request", { p_organization_id: orgId, p_target_level: "B" });
    let approval: Promise<RpcResult<any>> | null = null;
    await committedAs({ role: "authenticated", userId: revoker!.id }, async (tx) => {
      await tx`select public.revoke_status_level(${orgId}, 'B', 'revoked while an approval is on its way')`;
      // The approval starts while the revoke holds the lock and has not committed yet.
      approval = rpc(reviewer!.token, "approve_upgrade_request", { p_request_id: request.id, p_notes: "verified again" });
      await sleep(500);
    });
    const approved = await approval!;
    expect(approved.error).toBeNull();
    const stored = await requestById(request.id);
    expect(stored.status).toBe("approved");
    const levels = await levelsOf(orgId);
    expect(levels.map((l) => [l.id === originalB, l.is_active, l.end_reason])).toEqual([[true, false, "revoked"], [false, true, null]]);
    expect(stored.granted_status_level_id).toBe(levels[1]!.id);
  });

  it(`approve and revoke racing ${N} times: the approval never fails for a state that changed between check and lock; every outcome matches one serial order`, async () => {
    const reviewers = await platformAdmins(2);
    const rounds = await Promise.all(
      Array.from({ length: N }, async () => {
        const orgId = await fixtures.organization();
        const owner = await fixtures.member(orgId, "owner");
        const originalB = await arrangeB(orgId, await fromNow(30 * DAY));
        const request = await rpcOk(owner.token, "create_upgrade_request", { p_organization_id: orgId, p_target_level: "B" });
        return { orgId, originalB, requestId: request.id as string };
      }),
    );
    const orders: Record<string, number> = {};
    await Promise.all(
      rounds.map(async ({ orgId, originalB, requestId }, i) => {
        const approve = () => rpc(reviewers[0]!.token, "approve_upgrade_request", { p_request_id: requestId, p_notes: "verified again" });
        const revoke = () => rpc<boolean>(reviewers[1]!.token, "revoke_status_level", { p_organization_id: orgId, p_level: "B", p_reason: "revoked in the race" });
        const [approved, revoked] = i % 2 === 0 ? await Promise.all([approve(), revoke()]) : ((await Promise.all([revoke(), approve()])).reverse() as [RpcResult<any>, RpcResult<boolean>]);

        expect(approved.error, `round ${i}: approve`).toBeNull();
        expect(revoked.error, `round ${i}: revoke`).toBeNull();
        expect(revoked.data, `round ${i}: B was active whichever ran first`).toBe(true);
        const stored = await requestById(requestId);
        expect(stored.status).toBe("approved");
        const levels = await levelsOf(orgId);
        const history = (await historyOf(orgId)).map((h) => `${h.action}:${h.status_level_id === originalB ? "original" : h.status_level_id ? "new" : "-"}`);
        if (stored.granted_status_level_id === originalB) {
          // approve, then revoke: the original B was renewed, then revoked.
          expect(levels.map((l) => [l.id === originalB, l.is_active, l.end_reason])).toEqual([[true, false, "revoked"]]);
          expect(history).toEqual(["request_created:-", "renewed:original", "request_approved:original", "revoked:original"]);
          orders["approve, revoke"] = (orders["approve, revoke"] ?? 0) + 1;
        } else {
          // revoke, then approve: the original B was revoked, the approval granted a new B.
          expect(levels.map((l) => [l.id === originalB, l.is_active, l.end_reason])).toEqual([[true, false, "revoked"], [false, true, null]]);
          expect(levels[1]!.id).toBe(stored.granted_status_level_id);
          expect(history).toEqual(["request_created:-", "revoked:original", "granted:new", "request_approved:new"]);
          orders["revoke, approve"] = (orders["revoke, approve"] ?? 0) + 1;
        }
      }),
    );
    expect(Object.values(orders).reduce((a, b) => a + b, 0)).toBe(N);
  }, 60_000);
});

describe("expiry by time", () => {
  it("a row past valid_until is not current, even while is_active is still true", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId);
    await fixtures.levelRow(o.orgId, "A", { subscriptionId: sub.id, validUntil: await fromNow(30 * DAY) });
    const bId = await arrangeB(o.orgId, await fromNow(-60_000));

    for (const token of [null, o.member.token, o.platformAdmin.token]) {
      expect(await rpcOk<string>(token, "get_current_status_level", { p_organization_id: o.orgId })).toBe("A");
      const status = await rpcOk(token, "get_organization_status", { p_organization_id: o.orgId });
      expect(status.current_level).toBe("A");
      expect(status.active_levels.map((l: { level: string }) => l.level)).toEqual(["A"]);
    }
    const full = await rpcOk(o.member.token, "get_organization_status", { p_organization_id: o.orgId });
    expect(full.level_c_progress.has_active_b).toBe(false);
    expect(full.level_c_checklist.items.has_active_b.met).toBe(false);
    expect((await levelById(bId)).is_active).toBe(true); // the flag alone would have said B

    const onlyStale = await fixtures.orgWithPeople();
    await arrangeB(onlyStale.orgId, await fromNow(-1000));
    expect(await rpcOk<string>(null, "get_current_status_level", { p_organization_id: onlyStale.orgId })).toBe("0");
    const status = await rpcOk(onlyStale.owner.token, "get_organization_status", { p_organization_id: onlyStale.orgId });
    expect(status).toMatchObject({ current_level: "0", active_levels: [] });
  });

  it("a level becomes not current at valid_until, with no job and no write in between", async () => {
    const o = await fixtures.orgWithPeople();
    const [{ until }] = (await exec<{ until: Date }>("select now() + interval '1 second' as until")) as [{ until: Date }];
    const bId = await arrangeB(o.orgId, until);
    // Whether B is still current before `until` depends on how fast this runs: only the state after counts.
    for (;;) {
      const [{ passed }] = (await exec<{ passed: boolean }>("select now() > $1::timestamptz as passed", [until.toISOString()])) as [{ passed: boolean }];
      if (passed) break;
      await sleep(100);
    }
    expect(await rpcOk<string>(o.member.token, "get_current_status_level", { p_organization_id: o.orgId })).toBe("0");
    expect((await rpcOk(o.member.token, "get_organization_status", { p_organization_id: o.orgId })).active_levels).toEqual([]);
    expect((await levelById(bId)).is_active).toBe(true);
  });

  it("granting over a lapsed row works: the lapsed row is flipped to expired with an `expired` history row, in the grant's transaction", async () => {
    const o = await fixtures.orgWithPeople();
    const lapsedAt = await fromNow(-3 * DAY);
    const staleId = await arrangeB(o.orgId, lapsedAt);
    const granted = await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" });
    expect(granted.id).not.toBe(staleId);

    const stale = await levelById(staleId);
    expect(stale).toMatchObject({ is_active: false, end_reason: "expired", revoked_at: null });
    expect(stale.ended_at!.getTime()).toBe(lapsedAt.getTime());
    const history = await historyOf(o.orgId);
    expect(history.map((h) => [h.action, h.status_level_id, h.actor_id])).toEqual([
      ["expired", staleId, null],
      ["granted", granted.id, o.platformAdmin.id],
    ]);
    expect(history[0]!.old_valid_until!.getTime()).toBe(lapsedAt.getTime());
    expect(history[0]!.created_at.getTime()).toBe(history[1]!.created_at.getTime());
    expect(await rpcOk<string>(o.member.token, "get_current_status_level", { p_organization_id: o.orgId })).toBe("B");
  });

});

/**
 * Runs `call` while the daily job is mid-run on the organization: the job's transaction has flipped
 * the lapsed row to expired (and holds its row lock) but has not committed. The job commits once
 * the call waits on it (or has finished, or after a bounded wait), then the call's result is returned.
 */
async function whileTheJobExpires<T>(orgId: string, call: () => Promise<T>): Promise<T> {
  const job = await sql.reserve();
  let pending: Promise<T>;
  try {
    await job`begin`;
    const [{ pid }] = (await job`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
    const [{ n }] = (await job`select private.expire_lapsed_levels(${orgId}::uuid) as n`) as unknown as [{ n: number }];
    expect(n).toBe(1);
    pending = call();
    let settled = false;
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (let i = 0; i < 50 && !settled; i++) {
      const [{ blocked }] = (await exec<{ blocked: number }>(
        "select count(*)::int as blocked from pg_stat_activity where $1 = any(pg_blocking_pids(pid))",
        [pid],
      )) as [{ blocked: number }];
      if (blocked > 0) break;
      await sleep(100);
    }
    await job`commit`;
  } catch (error) {
    await job`rollback`.catch(() => {});
    throw error;
  } finally {
    job.release();
  }
  return pending;
}

describe("operations racing the daily job's expiry of the same lapsed row", () => {
  it("a grant waits for the job and succeeds (no 409 over a lapsed level)", async () => {
    const o = await fixtures.orgWithPeople();
    const staleId = await arrangeB(o.orgId, await fromNow(-HOUR));
    const res = await whileTheJobExpires(o.orgId, () => rpc(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" }));
    expect(res.error, JSON.stringify(res.error)).toBeNull();
    const active = (await levelsOf(o.orgId)).filter((l) => l.is_active);
    expect(active.map((l) => l.id)).toEqual([(res.data as { id: string }).id]);
    expect(await levelById(staleId)).toMatchObject({ is_active: false, end_reason: "expired" });
    expect((await historyOf(o.orgId)).map((h) => h.action)).toEqual(["expired", "granted"]);
  });

  it("a renewal finds no active B (404 level_not_active), as it would a moment later; the expired row is not renewed", async () => {
    const o = await fixtures.orgWithPeople();
    const lapsedAt = await fromNow(-HOUR);
    const staleId = await arrangeB(o.orgId, lapsedAt);
    const res = await whileTheJobExpires(o.orgId, () => rpc(o.platformAdmin.token, "renew_status_level_b", { p_organization_id: o.orgId }));
    expectApiError(res, 404, "level_not_active");
    const row = await levelById(staleId);
    expect(row).toMatchObject({ is_active: false, end_reason: "expired" });
    expect(row.valid_until!.getTime()).toBe(lapsedAt.getTime());
    expect((await historyOf(o.orgId)).map((h) => h.action)).toEqual(["expired"]);
  });

  it("a validity change finds no active B (404 level_not_active); the expired row keeps its end", async () => {
    const o = await fixtures.orgWithPeople();
    const lapsedAt = await fromNow(-HOUR);
    const staleId = await arrangeB(o.orgId, lapsedAt);
    const res = await whileTheJobExpires(o.orgId, async () =>
      rpc(o.platformAdmin.token, "update_status_validity", { p_organization_id: o.orgId, p_level: "B", p_valid_until: (await fromNow(100 * DAY)).toISOString() }),
    );
    expectApiError(res, 404, "level_not_active");
    const row = await levelById(staleId);
    expect(row).toMatchObject({ is_active: false, end_reason: "expired" });
    expect(row.valid_until!.getTime()).toBe(lapsedAt.getTime());
    expect((await historyOf(o.orgId)).map((h) => h.action)).toEqual(["expired"]);
  });

  it("a revoke finds nothing active and says so (false), writing nothing more", async () => {
    const o = await fixtures.orgWithPeople();
    const staleId = await arrangeB(o.orgId, await fromNow(-HOUR));
    const res = await whileTheJobExpires(o.orgId, () =>
      rpc<boolean>(o.platformAdmin.token, "revoke_status_level", { p_organization_id: o.orgId, p_level: "B", p_reason: "late" }),
    );
    expect(res.error).toBeNull();
    expect(res.data).toBe(false);
    expect(await levelById(staleId)).toMatchObject({ is_active: false, end_reason: "expired", revoked_at: null });
    expect((await historyOf(o.orgId)).map((h) => h.action)).toEqual(["expired"]);
  });

  it("a request for C is refused (422 level_c_requires_b): the B it would build on has lapsed", async () => {
    const o = await fixtures.orgWithPeople();
    await arrangeB(o.orgId, await fromNow(-HOUR));
    const res = await whileTheJobExpires(o.orgId, () => rpc(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C" }));
    expectApiError(res, 422, "level_c_requires_b");
    expect(await requestsOf(o.orgId)).toEqual([]);
  });
});

describe("writes the Worker has given up on", () => {
  it("a write function refuses to start after the moment the caller sent (x-status-levels-not-after): 503 request_expired, nothing written; without the header it runs", async () => {
    const orgId = await fixtures.organization();
    const [admin] = await platformAdmins(1);
    const grantB = (headers: Record<string, string>) =>
      fetch(`${stack.supabaseUrl}/rest/v1/rpc/grant_status_level`, {
        method: "POST",
        headers: { apikey: stack.anonKey, authorization: `Bearer ${admin!.token}`, "content-type": "application/json", ...headers },
        body: JSON.stringify({ p_organization_id: orgId, p_level: "B" }),
      });
    const late = await grantB({ "x-status-levels-not-after": String(Date.now() - 1000) });
    expect(late.status).toBe(503);
    expect(await late.json()).toMatchObject({ code: "PT503", message: expect.stringMatching(/^request_expired: /) });
    expect(await levelsOf(orgId)).toEqual([]);
    expect(await historyOf(orgId)).toEqual([]);
    const inTime = await grantB({ "x-status-levels-not-after": String(Date.now() + 60_000) });
    expect(inTime.status).toBe(200);
    const revoke = await fetch(`${stack.supabaseUrl}/rest/v1/rpc/revoke_status_level`, {
      method: "POST",
      headers: { apikey: stack.anonKey, authorization: `Bearer ${admin!.token}`, "content-type": "application/json" },
      body: JSON.stringify({ p_organization_id: orgId, p_level: "B", p_reason: "no header: a direct caller" }),
    });
    expect(await revoke.json()).toBe(true);
  });
});
