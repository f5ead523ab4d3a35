import { describe, expect, it } from "vitest";
import { exec, fixtures } from "../../scripts/test/node-harness.ts";
import { SERVICE_ROLE, arrangeB, fromNow, rpc, type RpcName } from "./helpers.ts";

/**
 * A caller who goes straight to PostgREST (the REST URL and anon key are public) with a value
 * Postgres cannot hold gets a 400 (class 22, data exception), never a 500, and nothing changes.
 * The Worker refuses the same values itself (functions/status-levels/bad-input.test.ts).
 */

async function footprint(orgId: string) {
  const [row] = await exec(
    `select (select count(*)::int from public.status_level_history where organization_id = $1) as history,
            (select count(*)::int from public.organization_status_levels where organization_id = $1) as levels,
            (select count(*)::int from public.upgrade_requests where organization_id = $1) as requests,
            (select count(*)::int from public.subscription_events where organization_id = $1) as events`,
    [orgId],
  );
  return row!;
}

describe("input Postgres cannot hold, sent straight to PostgREST", () => {
  it("is a 400 data exception (22xxx), not a 500, for a NUL in any text argument and for dates out of range", async () => {
    const p = await fixtures.orgWithPeople();
    await arrangeB(p.orgId, await fromNow(30 * 86_400_000));
    const requestOrg = await fixtures.organization();
    const owner = await fixtures.member(requestOrg, "owner");
    const [pending] = await exec<{ id: string }>(
      "insert into public.upgrade_requests (organization_id, target_level, requested_by) values ($1, 'B', $2) returning id",
      [requestOrg, owner.id],
    );
    const nul = "before\u0000after";
    const cases: Array<[string, string, RpcName, Record<string, unknown>]> = [
      ["grant notes", p.platformAdmin.token, "grant_status_level", { p_organization_id: p.orgId, p_level: "C", p_notes: nul }],
      ["grant valid_until year 0000", p.platformAdmin.token, "grant_status_level", { p_organization_id: p.orgId, p_level: "A", p_valid_until: "0000-01-01T00:00:00Z" }],
      ["grant valid_until offset +23:00", p.platformAdmin.token, "grant_status_level", { p_organization_id: p.orgId, p_level: "A", p_valid_until: "2030-01-01T00:00:00+23:00" }],
      ["revoke reason", p.platformAdmin.token, "revoke_status_level", { p_organization_id: p.orgId, p_level: "B", p_reason: nul }],
      ["renew notes", p.platformAdmin.token, "renew_status_level_b", { p_organization_id: p.orgId, p_notes: nul }],
      ["validity reason", p.platformAdmin.token, "update_status_validity", { p_organization_id: p.orgId, p_level: "B", p_valid_until: "2030-01-01T00:00:00Z", p_reason: nul }],
      ["request message", p.owner.token, "create_upgrade_request", { p_organization_id: p.orgId, p_target_level: "C", p_message: nul }],
      ["approve notes", p.platformAdmin.token, "approve_upgrade_request", { p_request_id: pending!.id, p_notes: nul }],
      ["reject note", p.platformAdmin.token, "reject_upgrade_request", { p_request_id: pending!.id, p_note: nul }],
      ["subscription event id", SERVICE_ROLE, "apply_subscription_event", {
        p_event_id: nul,
        p_provider_subscription_id: "sub_direct",
        p_organization_id: p.orgId,
        p_status: "active",
        p_occurred_at: new Date().toISOString(),
        p_current_period_end: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      }],
    ];
    const before = [await footprint(p.orgId), await footprint(requestOrg)];
    for (const [name, token, fn, args] of cases) {
      const res = await rpc(token, fn, args);
      expect({ name, status: res.status, class: res.error?.code.slice(0, 2) }, JSON.stringify(res.error)).toEqual({ name, status: 400, class: "22" });
    }
    expect([await footprint(p.orgId), await footprint(requestOrg)]).toEqual(before);
  });
});
