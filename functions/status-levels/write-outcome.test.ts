import { describe, expect, it } from "vitest";
import { body, call, exec, expectProblem, fixtures, holdLocks, postSignedEvent } from "../_test/harness.ts";

/**
 * A write answered 503 never commits later behind the client's back, and its outcome being unknown
 * never leaves the cache showing the state before it. The database is made slow on purpose: the
 * test holds the row lock every writer of an organization (or request) takes.
 */

const lockOrganization = (orgId: string, ms: number) => holdLocks("select 1 from public.organizations where id = $1 for update", [orgId], ms);
/** Waits until no transaction holds the organization's row any more. */
const waitForOrganization = (orgId: string) => exec("select 1 from public.organizations where id = $1 for update", [orgId]);
const activeLevels = async (orgId: string) =>
  (await exec<{ level: string }>("select level from public.organization_status_levels where organization_id = $1 and is_active order by level", [orgId])).map((r) => r.level);

describe("the API roles' statement timeout is shorter than the Worker's dependency timeout", () => {
  it("sets anon 3 s, authenticated and service_role 4 s, each below the Worker's default 5 s", async () => {
    const rows = await exec<{ role: string; timeout: string }>(
      `select r.rolname as role, (select split_part(c, '=', 2) from unnest(s.setconfig) c where c like 'statement_timeout=%') as timeout
       from pg_roles r join pg_db_role_setting s on s.setrole = r.oid and s.setdatabase = 0
       where r.rolname in ('anon', 'authenticated', 'service_role') order by r.rolname`,
    );
    expect(rows).toEqual([
      { role: "anon", timeout: "3s" },
      { role: "authenticated", timeout: "4s" },
      { role: "service_role", timeout: "4s" },
    ]);
  });

  it("rolls a write the database gave up on back: 503, and the level is not granted once the lock is gone (user and service role)", async () => {
    const p = await fixtures.orgWithPeople();
    const other = await fixtures.orgWithPeople();
    // The Worker waits longer than the database here, so the 503 can only come from the
    // database's own statement timeout, applied by PostgREST to the impersonated role.
    const patient = { DEPENDENCY_TIMEOUT_MS: "10000" };
    // Held well past the database's 4 s, so a slow request cannot reach the row after the lock is gone.
    await lockOrganization(p.orgId, 6500);
    await lockOrganization(other.orgId, 6500);
    const started = Date.now();
    const [grant, event] = await Promise.all([
      call(`/status-levels/organizations/${p.orgId}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "B" } }, patient),
      postSignedEvent({
        id: `evt_${crypto.randomUUID()}`,
        subscription_id: `sub_${crypto.randomUUID()}`,
        organization_id: other.orgId,
        status: "active",
        occurred_at: new Date().toISOString(),
        current_period_end: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      }),
    ]);
    const elapsed = Date.now() - started;
    await expectProblem(grant, 503, "dependency_unavailable");
    await expectProblem(event, 503, "dependency_unavailable");
    expect(elapsed).toBeGreaterThan(3500); // the database's 4 s, not an immediate failure
    expect(elapsed).toBeLessThan(6500);

    await waitForOrganization(p.orgId);
    await waitForOrganization(other.orgId);
    expect(await activeLevels(p.orgId)).toEqual([]);
    expect(await activeLevels(other.orgId)).toEqual([]);
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }))).current_level).toBe("0");
  });
});

describe("a write whose outcome is unknown still invalidates the cached status", () => {
  // Worker timeouts shorter than the database's are refused by the config; these tests tell the
  // Worker the database gives up sooner than it does, so the Worker gives up first and the write
  // commits after the 503, as a write lost in a PostgREST queue or a dropped connection would.
  // The Worker gives up after 2 s, while the lock holds the write for 3 s (under the database's
  // real 4 s). The call may start in the database up to 1.25 s after it was sent (2 s - 0.5 s -
  // 0.25 s): room for a PostgREST queue on a loaded machine, which would otherwise turn the 503
  // under test into a request_expired one that never commits.
  const impatient = { DEPENDENCY_TIMEOUT_MS: "2000", DATABASE_STATEMENT_TIMEOUT_MS: "500" };
  const lockMs = 3000;

  it("refuses a dependency timeout not longer than the database's statement timeout", async () => {
    const p = await fixtures.orgWithPeople();
    const res = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }, { DEPENDENCY_TIMEOUT_MS: "4000" });
    await expectProblem(res, 503, "misconfigured");
  });

  it("grant: the read after a 503 shows the level the database committed after all", async () => {
    const p = await fixtures.orgWithPeople();
    for (let i = 0; i < 2; i++) expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }))).current_level).toBe("0");
    await lockOrganization(p.orgId, lockMs);
    const grant = await call(`/status-levels/organizations/${p.orgId}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "B" } }, impatient);
    await expectProblem(grant, 503, "dependency_unavailable");
    await waitForOrganization(p.orgId);
    expect(await activeLevels(p.orgId)).toEqual(["B"]);
    const read = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token });
    expect(read.headers.get("x-cache")).toBe("miss");
    expect((await body(read)).current_level).toBe("B");
  });

  it("approve (by request id, organization unknown to the Worker): the read after a 503 shows the approval", async () => {
    // Its own cache prefix: an unknown outcome here invalidates every organization's cache.
    const env = { ...impatient, CACHE_KEY_PREFIX: `unknown-outcome-${crypto.randomUUID().slice(0, 8)}` };
    const p = await fixtures.orgWithPeople();
    const bystander = await fixtures.orgWithPeople();
    const request = await body(await call("/status-levels/upgrade-requests", { method: "POST", token: p.owner.token, json: { organization_id: p.orgId, target_level: "B" } }, env));
    for (const org of [p, bystander]) {
      for (let i = 0; i < 2; i++) await call(`/status-levels/organizations/${org.orgId}`, { token: org.member.token }, env);
    }
    expect((await call(`/status-levels/organizations/${bystander.orgId}`, { token: bystander.member.token }, env)).headers.get("x-cache")).toBe("hit");

    await holdLocks("select 1 from public.upgrade_requests where id = $1 for update", [request.id], lockMs);
    const approve = await call(`/status-levels/upgrade-requests/${request.id}/approve`, { method: "POST", token: p.platformAdmin.token, json: {} }, env);
    await expectProblem(approve, 503, "dependency_unavailable");
    await exec("select 1 from public.upgrade_requests where id = $1 for update", [request.id]);
    expect(await activeLevels(p.orgId)).toEqual(["B"]);

    const read = await call(`/status-levels/organizations/${p.orgId}`, { token: p.member.token }, env);
    expect(read.headers.get("x-cache")).toBe("miss");
    expect(await body(read)).toMatchObject({ current_level: "B", pending_upgrade_request: null });
    expect((await call(`/status-levels/organizations/${bystander.orgId}`, { token: bystander.member.token }, env)).headers.get("x-cache")).toBe("miss");
  });
});

describe("a write the Worker has given up on never starts in the database", () => {
  it("tells the database until when a call may start; one that would start later is refused (503 request_expired) and changes nothing", async () => {
    const p = await fixtures.orgWithPeople();
    // 4.1 s for the Worker and 4 s for a statement leave no time to start one: the database refuses at once.
    const noTimeToStart = { DEPENDENCY_TIMEOUT_MS: "4100", DATABASE_STATEMENT_TIMEOUT_MS: "4000" };
    const refused = await call(`/status-levels/organizations/${p.orgId}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "B" } }, noTimeToStart);
    const problem = await expectProblem(refused, 503, "request_expired");
    expect(problem.detail).toMatch(/nothing was changed/);
    expect(await activeLevels(p.orgId)).toEqual([]);
    // With the defaults there is time, and the same call goes through.
    const granted = await call(`/status-levels/organizations/${p.orgId}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "B" } });
    expect(granted.status).toBe(201);
    expect(await activeLevels(p.orgId)).toEqual(["B"]);
  });
});
