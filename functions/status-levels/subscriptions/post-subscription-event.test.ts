import { describe, expect, it } from "vitest";
import { body, call, exec, expectProblem, fixtures, postSignedEvent } from "../../_test/harness.ts";

const day = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

async function state(orgId: string) {
  const [sub] = await exec<Record<string, any>>("select status, current_period_end, grace_until from public.subscriptions where organization_id = $1", [orgId]);
  const levels = await exec<Record<string, any>>(
    "select level, is_active, valid_until from public.organization_status_levels where organization_id = $1 and level = 'A' and is_active",
    [orgId],
  );
  const history = await exec<{ action: string }>("select action from public.status_level_history where organization_id = $1 order by id", [orgId]);
  return { sub, a: levels[0] ?? null, history: history.map((h) => h.action) };
}

function event(orgId: string, sub: string, status: string, occurredAt: number, periodEnd?: number) {
  return {
    id: `evt_${crypto.randomUUID()}`,
    subscription_id: sub,
    organization_id: orgId,
    status,
    occurred_at: iso(occurredAt),
    ...(periodEnd ? { current_period_end: iso(periodEnd) } : {}),
  };
}

describe("POST /status-levels/subscriptions/events: the state machine", () => {
  it("active grants A until the period end; a renewal moves it forward", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    const first = await postSignedEvent(event(orgId, "sub_a", "active", now - 2 * day, now + 28 * day));
    expect(first.status).toBe(200);
    expect(await body(first)).toMatchObject({ outcome: "applied", status: "active", effects: [{ effect: "granted" }] });
    await postSignedEvent(event(orgId, "sub_a", "active", now - day, now + 58 * day));
    const s = await state(orgId);
    expect(Date.parse(s.a!.valid_until)).toBe(Date.parse(iso(now + 58 * day)));
    expect(s.history).toEqual(["granted", "validity_updated"]);
    const status = await body(await call(`/status-levels/organizations/${orgId}`));
    expect(status.current_level).toBe("A");
  });

  it("past_due starts 14 days of grace from occurred_at; a repeat does not extend it; A stays until the later end", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await postSignedEvent(event(orgId, "sub_b", "active", now - 40 * day, now - 5 * day));
    // The period already ended: A was granted until then and has lapsed by time.
    const failed = now - 3 * day;
    await postSignedEvent(event(orgId, "sub_b", "past_due", failed));
    let s = await state(orgId);
    expect(Date.parse(s.sub!.grace_until)).toBe(failed + 14 * day);
    expect(Date.parse(s.a!.valid_until)).toBe(failed + 14 * day);
    await postSignedEvent(event(orgId, "sub_b", "past_due", now - day));
    s = await state(orgId);
    expect(Date.parse(s.sub!.grace_until)).toBe(failed + 14 * day);
  });

  it("recovery: past_due then active before the grace ends keeps A without a gap and clears the grace", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await postSignedEvent(event(orgId, "sub_c", "active", now - 31 * day, now + day));
    const before = (await state(orgId)).a!;
    await postSignedEvent(event(orgId, "sub_c", "past_due", now - 2 * day));
    await postSignedEvent(event(orgId, "sub_c", "active", now - day, now + 30 * day));
    const s = await state(orgId);
    expect(s.sub).toMatchObject({ status: "active", grace_until: null });
    expect(Date.parse(s.a!.valid_until)).toBe(Date.parse(iso(now + 30 * day)));
    const rows = await exec("select count(*)::int as n from public.organization_status_levels where organization_id = $1 and level = 'A'", [orgId]);
    expect(rows[0]!.n).toBe(1);
    expect(s.a).not.toBeNull();
    expect(before).not.toBeNull();
    expect(s.history).toEqual(["granted", "grace_started", "validity_updated"]);
  });

  it("accepts current_period_end null as well as absent (a payments service that writes nulls)", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await postSignedEvent(event(orgId, `sub_${crypto.randomUUID()}`, "active", now - 10 * day, now + 20 * day));
    const sub = (await exec<{ provider_subscription_id: string }>("select provider_subscription_id from public.subscriptions where organization_id = $1", [orgId]))[0]!;
    const res = await postSignedEvent({ ...event(orgId, sub.provider_subscription_id, "canceled", now - 60_000), current_period_end: null });
    expect(res.status).toBe(200);
    expect(await body(res)).toMatchObject({ outcome: "applied", status: "canceled", action: null, status_level_id: null });
  });

  it("canceled with no grace running revokes A now", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await postSignedEvent(event(orgId, "sub_d", "active", now - 10 * day, now + 20 * day));
    const res = await postSignedEvent(event(orgId, "sub_d", "canceled", now - 60_000));
    expect(await body(res)).toMatchObject({ outcome: "applied", status: "canceled", effects: [{ effect: "revoked", reason: "subscription_canceled" }] });
    const s = await state(orgId);
    expect(s.a).toBeNull();
    expect(s.history).toEqual(["granted", "revoked"]);
    const [row] = await exec<Record<string, any>>("select end_reason, revoke_reason, revoked_by from public.organization_status_levels where organization_id = $1", [orgId]);
    expect(row).toMatchObject({ end_reason: "revoked", revoke_reason: "subscription_canceled", revoked_by: null });
  });

  it("canceled or unpaid during a running grace keeps A until the grace ends", async () => {
    for (const status of ["canceled", "unpaid"]) {
      const orgId = await fixtures.organization();
      const now = Date.now();
      await postSignedEvent(event(orgId, `sub_e_${status}`, "active", now - 35 * day, now - 4 * day));
      await postSignedEvent(event(orgId, `sub_e_${status}`, "past_due", now - 4 * day));
      await postSignedEvent(event(orgId, `sub_e_${status}`, status, now - day));
      const s = await state(orgId);
      expect(s.sub!.status).toBe(status);
      expect(Date.parse(s.a!.valid_until)).toBe(now - 4 * day + 14 * day);
    }
  });
});

describe("idempotency and ordering", () => {
  it("the same event delivered 10 times has one effect and one history row", async () => {
    const orgId = await fixtures.organization();
    const e = event(orgId, "sub_f", "active", Date.now() - day, Date.now() + 30 * day);
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) outcomes.push((await body(await postSignedEvent(e))).outcome);
    expect(outcomes).toEqual(["applied", ...Array(9).fill("duplicate")]);
    const s = await state(orgId);
    expect(s.history).toEqual(["granted"]);
    const events = await exec("select count(*)::int as n from public.subscription_events where organization_id = $1", [orgId]);
    expect(events[0]!.n).toBe(1);
  });

  it("the same event in concurrent requests has one effect", async () => {
    const orgId = await fixtures.organization();
    const e = event(orgId, "sub_g", "active", Date.now() - day, Date.now() + 30 * day);
    const results = await Promise.all(Array.from({ length: 8 }, () => postSignedEvent(e).then(body)));
    expect(results.filter((r) => r.outcome === "applied")).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "duplicate")).toHaveLength(7);
    expect((await state(orgId)).history).toEqual(["granted"]);
  });

  it("a replay gets the first answer again (outcome duplicate); the same id with another body is 409 event_id_reused and changes nothing", async () => {
    const orgId = await fixtures.organization();
    const e = event(orgId, `sub_${crypto.randomUUID()}`, "active", Date.now() - day, Date.now() + 30 * day);
    const first = await body(await postSignedEvent(e));
    const replay = await body(await postSignedEvent(e));
    expect(replay).toEqual({ ...first, outcome: "duplicate" });
    const before = await state(orgId);
    const reused = await postSignedEvent({ ...e, subscription_id: `sub_${crypto.randomUUID()}`, status: "canceled", current_period_end: undefined });
    const problem = await expectProblem(reused, 409, "event_id_reused");
    expect(problem.detail).toMatch(/different body/);
    expect(await state(orgId)).toEqual(before);
    const subs = await exec("select count(*)::int as n from public.subscriptions where organization_id = $1", [orgId]);
    expect(subs[0]!.n).toBe(1);
  });

  it("an event older than the newest applied one is stale and does not change the status", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await postSignedEvent(event(orgId, "sub_h", "active", now - day, now + 30 * day));
    const late = await body(await postSignedEvent(event(orgId, "sub_h", "canceled", now - 2 * day)));
    expect(late).toMatchObject({ outcome: "stale", status: "active", effects: [] });
    expect((await state(orgId)).a).not.toBeNull();
  });
});

describe("signatures", () => {
  const ok = async () => {
    const orgId = await fixtures.organization();
    return { orgId, e: event(orgId, `sub_${crypto.randomUUID()}`, "active", Date.now() - day, Date.now() + 30 * day) };
  };
  const unchanged = async (orgId: string) => {
    const rows = await exec("select (select count(*) from public.subscriptions where organization_id = $1)::int + (select count(*) from public.organization_status_levels where organization_id = $1)::int as n", [orgId]);
    expect(rows[0]!.n).toBe(0);
  };

  it("refuses a wrong secret, a stale or future timestamp, a tampered body, and missing headers (401), changing nothing", async () => {
    const { orgId, e } = await ok();
    await expectProblem(await postSignedEvent(e, { secret: "wrong-secret-wrong-secret" }), 401, "unauthorized");
    await expectProblem(await postSignedEvent(e, { timestamp: Math.floor(Date.now() / 1000) - 301 }), 401, "unauthorized");
    await expectProblem(await postSignedEvent(e, { timestamp: Math.floor(Date.now() / 1000) + 301 }), 401, "unauthorized");
    await expectProblem(await postSignedEvent(e, { tamper: (raw) => raw.replace('"active"', '"canceled"') }), 401, "unauthorized");
    await expectProblem(await call("/status-levels/subscriptions/events", { method: "POST", json: e }), 401, "unauthorized");
    await unchanged(orgId);
  });

  it("checks the signature before the body: malformed JSON signed correctly is a 400, unsigned a 401", async () => {
    const { orgId } = await ok();
    await expectProblem(await postSignedEvent("{not json"), 400, "malformed_json");
    await expectProblem(await call("/status-levels/subscriptions/events", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } }), 401, "unauthorized");
    await expectProblem(await postSignedEvent({ id: "x", organization_id: orgId, status: "active" }), 400, "invalid_request");
    await expectProblem(await postSignedEvent({ ...(await ok()).e, extra: 1 }), 400, "invalid_request");
    await expectProblem(await postSignedEvent(event(orgId, "sub_z", "active", Date.now() - day)), 400, "current_period_end_required");
    await unchanged(orgId);
  });

  it("answers 404 for an unknown organization and 503 when the secret is not configured", async () => {
    const e = event(crypto.randomUUID(), "sub_y", "active", Date.now() - day, Date.now() + day);
    await expectProblem(await postSignedEvent(e), 404, "organization_not_found");
    const res = await call("/status-levels/subscriptions/events", { method: "POST", json: e }, { SUBSCRIPTION_WEBHOOK_SECRET: "" });
    await expectProblem(res, 503, "misconfigured");
  });
});
