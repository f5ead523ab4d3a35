import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fixtures, sql } from "../../scripts/test/node-harness.ts";
import { sleep } from "./helpers.ts";

/**
 * Subscription events at the SQL level (the superuser session counts as the system, as the
 * service role does through PostgREST).
 */
const day = 86_400_000;
const statuses = ["active", "past_due", "canceled", "unpaid"] as const;

interface Ev {
  id: string;
  status: (typeof statuses)[number];
  occurredAt: Date;
  periodEnd: Date | null;
}

async function apply(orgId: string, sub: string, e: Ev): Promise<Record<string, any>> {
  const [row] = await sql`select public.apply_subscription_event(${e.id}, ${sub}, ${orgId}, ${e.status}, ${e.occurredAt}, ${e.periodEnd}) as r`;
  return row!.r as Record<string, any>;
}

/**
 * What the organization and its subscriptions end up with, as readers see it (time predicate, not
 * the flag). Subscriptions are named by the caller's label for them, so two organizations fed the
 * same events under different provider ids compare equal.
 */
async function finalState(orgId: string, label: (providerId: string) => string = (id) => id) {
  const subs = await sql`
    select provider_subscription_id, status, current_period_end, grace_started_at, grace_until
    from public.subscriptions where organization_id = ${orgId} order by provider_subscription_id`;
  const [a] = await sql`
    select l.valid_until, l.in_grace, s.provider_subscription_id from public.organization_status_levels l
    left join public.subscriptions s on s.id = l.subscription_id
    where l.organization_id = ${orgId} and l.level = 'A' and l.is_active and l.valid_until > now()`;
  const [current] = await sql`select public.get_current_status_level(${orgId}) as level`;
  return {
    subscriptions: Object.fromEntries(
      subs.map((s) => [
        label(s.provider_subscription_id),
        {
          status: s.status,
          current_period_end: s.current_period_end?.toISOString() ?? null,
          grace_started_at: s.grace_started_at?.toISOString() ?? null,
          grace_until: s.grace_until?.toISOString() ?? null,
        },
      ]),
    ),
    a: a ? { valid_until: a.valid_until.toISOString(), in_grace: a.in_grace, entitled_by: label(a.provider_subscription_id) } : null,
    current_level: current!.level as string,
  };
}

const eventSequence = fc
  .array(
    fc.record({
      // Two subscriptions of one organization (an upgrade, a new checkout beside an old one).
      sub: fc.constantFrom(0, 1),
      status: fc.constantFrom(...statuses),
      // Whole minutes in the last 40 days: distinct times, so provider order is total.
      minutesAgo: fc.integer({ min: 1, max: 40 * 24 * 60 }),
      periodDays: fc.integer({ min: 1, max: 45 }),
    }),
    { minLength: 1, maxLength: 10 },
  )
  .map((raw) => {
    const seen = new Set<number>();
    const now = Date.now();
    return raw
      .filter((r) => !seen.has(r.minutesAgo) && seen.add(r.minutesAgo))
      .map((r, i): Ev & { sub: number } => {
        const occurredAt = new Date(Math.floor((now - r.minutesAgo * 60_000) / 60_000) * 60_000);
        return {
          id: `evt_${i}_${r.minutesAgo}`,
          sub: r.sub,
          status: r.status,
          occurredAt,
          periodEnd: r.status === "active" ? new Date(occurredAt.getTime() + r.periodDays * day) : null,
        };
      })
      .sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime());
  });

describe("subscription events: replays and reordering converge", () => {
  it("the state is computed from each subscription's events in provider time order: any arrival order, with replays, ends in the same state (grace start and the subscription level A comes from included)", async () => {
    await fc.assert(
      fc.asyncProperty(eventSequence, fc.infiniteStream(fc.nat()), async (events, randomness) => {
        const [ordered, shuffled] = [await fixtures.organization(), await fixtures.organization()];
        const prefix = crypto.randomUUID();
        const subOf = (run: string, e: { sub: number }) => `sub_${run}_${prefix}_${e.sub}`;
        const label = (providerId: string) => providerId.slice(-1);
        for (const e of events) await apply(ordered, subOf("o", e), { ...e, id: `o_${prefix}_${e.id}` });

        // Shuffle, and deliver some events twice (at-least-once delivery).
        const rand = randomness[Symbol.iterator]();
        const deliveries = [...events, ...events.filter(() => rand.next().value % 3 === 0)];
        for (let i = deliveries.length - 1; i > 0; i--) {
          const j = rand.next().value % (i + 1);
          [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
        }
        for (const e of deliveries) await apply(shuffled, subOf("s", e), { ...e, id: `s_${prefix}_${e.id}` });

        expect(await finalState(shuffled, label)).toEqual(await finalState(ordered, label));
      }),
      { numRuns: 40 },
    );
  }, 120_000);
});

describe("subscription events at the SQL level", () => {
  it("the same event applied concurrently on 10 connections has one effect", async () => {
    const orgId = await fixtures.organization();
    const e: Ev = { id: `evt_${crypto.randomUUID()}`, status: "active", occurredAt: new Date(Date.now() - day), periodEnd: new Date(Date.now() + 30 * day) };
    const results = await Promise.all(Array.from({ length: 10 }, () => apply(orgId, `sub_${orgId}`, e)));
    expect(results.map((r) => r.outcome).sort()).toEqual(["applied", ...Array(9).fill("duplicate")]);
    const history = await sql`select action from public.status_level_history where organization_id = ${orgId}`;
    expect(history.map((h) => h.action)).toEqual(["granted"]);
  });

  it("lost webhooks: with no renewal event, A lapses at the period end through the daily job", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await apply(orgId, `sub_${orgId}`, { id: `e1_${orgId}`, status: "active", occurredAt: new Date(now - 29 * day), periodEnd: new Date(now + day) });
    const asOf = new Date(now + 2 * day);
    const [run] = await sql`select public.run_daily_job_step('expire', ${asOf}, 100, ${[orgId]}::uuid[]) as r`;
    expect(run!.r).toMatchObject({ count: 1, organization_ids: [orgId] });
    const [row] = await sql`select is_active, end_reason from public.organization_status_levels where organization_id = ${orgId}`;
    expect(row).toMatchObject({ is_active: false, end_reason: "expired" });
  });

  it("lost webhooks after a failed payment: A ends when the grace ends, as grace_ended", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await apply(orgId, `sub_${orgId}`, { id: `e1_${orgId}`, status: "active", occurredAt: new Date(now - 31 * day), periodEnd: new Date(now - day) });
    await apply(orgId, `sub_${orgId}`, { id: `e2_${orgId}`, status: "past_due", occurredAt: new Date(now - day), periodEnd: null });
    const early = await sql`select public.run_daily_job_step('end_grace', ${new Date(now + 12 * day)}, 100, ${[orgId]}::uuid[]) as r`;
    expect(early[0]!.r.count).toBe(0);
    const [run] = await sql`select public.run_daily_job_step('end_grace', ${new Date(now + 14 * day)}, 100, ${[orgId]}::uuid[]) as r`;
    expect(run!.r.count).toBe(1);
    const [expired] = await sql`select public.run_daily_job_step('expire', ${new Date(now + 14 * day)}, 100, ${[orgId]}::uuid[]) as r`;
    expect(expired!.r.count).toBe(0);
    const history = await sql`select action, actor_id from public.status_level_history where organization_id = ${orgId} order by id`;
    expect(history.map((h) => h.action)).toEqual(["granted", "grace_ended"]);
    expect(history.every((h) => h.actor_id === null)).toBe(true);
  });

  it("the service-layer calls: ensure_level_a, start_grace_period, is_grace_period_ended, handle_subscription_status_change", async () => {
    const orgId = await fixtures.organization();
    const sub = await fixtures.subscription(orgId, { status: "active", currentPeriodEnd: new Date(Date.now() + 10 * day) });
    expect((await sql`select public.ensure_level_a(${orgId}, ${sub.id}) as r`)[0]!.r).toBe("granted");
    expect((await sql`select public.ensure_level_a(${orgId}, ${sub.id}) as r`)[0]!.r).toBe("already_active");
    const [grace] = await sql`select public.start_grace_period(${orgId}, 3) as until`;
    expect(grace!.until.getTime()).toBeGreaterThan(Date.now() + 2.9 * day);
    expect((await sql`select public.is_grace_period_ended(${orgId}) as r`)[0]!.r).toBe(false);
    const changed = await sql`select public.handle_subscription_status_change(${sub.id}, 'canceled') as r`;
    expect(changed[0]!.r).toMatchObject({ outcome: "applied", status: "canceled" });
    // Cancelled during the grace: A stays until the grace ends (the later of period end and grace end).
    const [a] = await sql`select valid_until from public.organization_status_levels where organization_id = ${orgId} and level = 'A' and is_active`;
    expect(a!.valid_until.getTime()).toBe(grace!.until.getTime());
  });

  it("refuses an API user: only the system applies events", async () => {
    const orgId = await fixtures.organization();
    const admin = await fixtures.platformAdmin();
    const error = await sql
      .begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: admin.id, role: "authenticated" })}, true)`;
        await tx`set local role authenticated`;
        await tx`select public.apply_subscription_event('x', 'sub_x', ${orgId}, 'active', now(), now() + interval '1 day')`;
      })
      .catch((e: { code: string }) => e);
    expect((error as { code: string }).code).toBe("42501");
  });
});

describe("several subscriptions of one organization", () => {
  const sub = (orgId: string, name: string) => `sub_${name}_${orgId}`;
  const ev = (status: Ev["status"], occurredAt: number, periodEnd?: number): Omit<Ev, "id"> => ({
    status,
    occurredAt: new Date(occurredAt),
    periodEnd: periodEnd === undefined ? null : new Date(periodEnd),
  });
  const applyTo = (orgId: string, name: string, e: Omit<Ev, "id">) => apply(orgId, sub(orgId, name), { ...e, id: `${name}_${crypto.randomUUID()}` });
  const activeA = async (orgId: string) =>
    (await sql`
      select l.valid_until, s.provider_subscription_id from public.organization_status_levels l
      join public.subscriptions s on s.id = l.subscription_id
      where l.organization_id = ${orgId} and l.level = 'A' and l.is_active and l.valid_until > now()`)[0];

  it("level A stays while any subscription entitles it: an event for another subscription (incomplete, canceled, a shorter period) never ends or shortens it", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await applyTo(orgId, "s1", ev("active", now - 5 * day, now + 30 * day));
    await sql`insert into public.subscriptions (organization_id, provider_subscription_id, status) values (${orgId}, ${sub(orgId, "s2")}, 'incomplete')`;
    for (const e of [
      ev("incomplete" as Ev["status"], now - 3 * day),
      ev("canceled", now - 2 * day),
      ev("unpaid", now - 2 * day + 1000),
      ev("active", now - day, now + 10 * day),
    ]) {
      const r = await applyTo(orgId, "s2", e);
      expect(r.effects, `${e.status} of s2`).toEqual([]);
      expect(await activeA(orgId)).toMatchObject({ valid_until: new Date(now + 30 * day), provider_subscription_id: sub(orgId, "s1") });
    }
    const history = await sql`select action from public.status_level_history where organization_id = ${orgId} order by id`;
    expect(history.map((h) => h.action)).toEqual(["granted"]);
  });

  it("A's valid_until is the latest entitlement end among the subscriptions; when one ends, A goes on with the other, and history names the subscription that caused each change", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await applyTo(orgId, "s1", ev("active", now - 5 * day, now + 30 * day));
    await applyTo(orgId, "s2", ev("active", now - 4 * day, now + 10 * day));
    const s1Canceled = await applyTo(orgId, "s1", ev("canceled", now - day));
    expect(s1Canceled.effects.map((e: Record<string, string>) => ({ ...e, valid_until: Date.parse(e.valid_until!), old_valid_until: Date.parse(e.old_valid_until!) }))).toEqual([
      { effect: "validity_updated", old_valid_until: now + 30 * day, valid_until: now + 10 * day, entitled_by: sub(orgId, "s2") },
    ]);
    expect(await activeA(orgId)).toMatchObject({ valid_until: new Date(now + 10 * day), provider_subscription_id: sub(orgId, "s2") });
    const s2Canceled = await applyTo(orgId, "s2", ev("canceled", now - 60_000));
    expect(s2Canceled.effects).toEqual([expect.objectContaining({ effect: "revoked", reason: "subscription_canceled" })]);
    expect(await activeA(orgId)).toBeUndefined();
    const history = await sql`
      select h.action, s.provider_subscription_id as caused_by, e.subscription_id = h.subscription_id as event_of_that_subscription
      from public.status_level_history h
      left join public.subscriptions s on s.id = h.subscription_id
      left join public.subscription_events e on e.event_id = h.subscription_event_id
      where h.organization_id = ${orgId} order by h.id`;
    expect(history.map((h) => [h.action, h.caused_by, h.event_of_that_subscription])).toEqual([
      ["granted", sub(orgId, "s1"), true],
      ["validity_updated", sub(orgId, "s1"), true],
      ["revoked", sub(orgId, "s2"), true],
    ]);
  });

  it("a past_due of one subscription does not put level A in grace while another pays", async () => {
    const orgId = await fixtures.organization();
    const now = Date.now();
    await applyTo(orgId, "s1", ev("active", now - 5 * day, now + 30 * day));
    await applyTo(orgId, "s2", ev("active", now - 40 * day, now - 10 * day));
    const r = await applyTo(orgId, "s2", ev("past_due", now - 10 * day));
    expect(r.effects).toEqual([]);
    const [a] = await sql`select in_grace, valid_until from public.organization_status_levels where organization_id = ${orgId} and is_active`;
    expect(a).toMatchObject({ in_grace: false, valid_until: new Date(now + 30 * day) });
  });
});

describe("grace periods", () => {
  const ev = (id: string, status: Ev["status"], occurredAt: number, periodEnd?: number): Ev => ({
    id: `${id}_${crypto.randomUUID()}`,
    status,
    occurredAt: new Date(occurredAt),
    periodEnd: periodEnd === undefined ? null : new Date(periodEnd),
  });

  it("a grace period is one episode: unpaid or canceled between two past_due events does not restart it; only active ends it", async () => {
    for (const between of ["unpaid", "canceled"] as const) {
      const orgId = await fixtures.organization();
      const subId = `sub_${orgId}`;
      const now = Date.now();
      const firstFailure = now - 6 * day;
      await apply(orgId, subId, ev("e1", "active", now - 36 * day, now - 6 * day));
      await apply(orgId, subId, ev("e2", "past_due", firstFailure));
      await apply(orgId, subId, ev("e3", between, now - 4 * day));
      await apply(orgId, subId, ev("e4", "past_due", now - 2 * day));
      const [s] = await sql`select grace_started_at, grace_until from public.subscriptions where provider_subscription_id = ${subId}`;
      expect({ between, started: s!.grace_started_at.getTime(), until: s!.grace_until.getTime() }).toEqual({
        between,
        started: firstFailure,
        until: firstFailure + 14 * day,
      });
      // A payment ends the episode; the next failure starts a new one.
      await apply(orgId, subId, ev("e5", "active", now - day, now + 29 * day));
      await apply(orgId, subId, ev("e6", "past_due", now - 60_000));
      const [next] = await sql`select grace_started_at from public.subscriptions where provider_subscription_id = ${subId}`;
      expect(next!.grace_started_at.getTime()).toBe(now - 60_000);
    }
  });

  it("A that ends because its grace ran out ends as grace_ended on every path: a payment arriving after the grace, the job's expire step run first, a writer's inline lapse", async () => {
    /** An organization in a grace period that runs out 2 s from now, with no event or job in between. */
    const graceRunningOut = async () => {
      const orgId = await fixtures.organization();
      const subId = `sub_${orgId}`;
      const now = Date.now();
      await apply(orgId, subId, ev("e1", "active", now - 44 * day, now - 14 * day + 1000));
      await apply(orgId, subId, ev("e2", "past_due", now - 14 * day + 2000));
      return { orgId, subId };
    };
    const endedAs = async (orgId: string) => {
      const rows = await sql`
        select h.action, q.kind from public.status_level_history h
        left join public.notification_queue q on q.status_level_id = h.status_level_id
        where h.organization_id = ${orgId} and h.action in ('expired', 'grace_ended')`;
      return rows.map((r) => `${r.action}/${r.kind}`);
    };
    const [late, job, inline] = [await graceRunningOut(), await graceRunningOut(), await graceRunningOut()];
    for (const { orgId } of [late, job, inline]) {
      expect((await sql`select in_grace from public.organization_status_levels where organization_id = ${orgId} and is_active`)[0]).toEqual({ in_grace: true });
    }
    await sleep(2500);
    const now = Date.now();

    // The renewal payment arrives after the grace ran out: the old row ends as grace_ended, a new A starts.
    await apply(late.orgId, late.subId, ev("e3", "active", now - 60_000, now + 30 * day));
    expect(await endedAs(late.orgId)).toEqual(["grace_ended/grace_ended"]);

    // The job's expire step runs before its end-grace step.
    const [expired] = await sql`select public.run_daily_job_step('expire', now(), 100, ${[job.orgId]}::uuid[]) as r`;
    const [ended] = await sql`select public.run_daily_job_step('end_grace', now(), 100, ${[job.orgId]}::uuid[]) as r`;
    expect([expired!.r.count, ended!.r.count]).toEqual([0, 1]);
    expect(await endedAs(job.orgId)).toEqual(["grace_ended/grace_ended"]);

    // A writer (an admin granting B) lapses the organization's rows inline first.
    await sql`select private.grant_level(${inline.orgId}, 'B', null, null, null, null)`;
    expect(await endedAs(inline.orgId)).toEqual(["grace_ended/grace_ended"]);
  });
});

describe("event ids", () => {
  const counts = async (orgId: string) =>
    (
      await sql`
        select (select count(*) from public.subscriptions where organization_id = ${orgId})::int as subscriptions,
               (select count(*) from public.subscription_events where organization_id = ${orgId})::int as events,
               (select count(*) from public.status_level_history where organization_id = ${orgId})::int as history,
               (select count(*) from public.organization_status_levels where organization_id = ${orgId})::int as levels`
    )[0];

  it("a replay changes nothing at all (no row, no history) and gets the first delivery's answer again, marked duplicate", async () => {
    const orgId = await fixtures.organization();
    const e: Ev = { id: `evt_${crypto.randomUUID()}`, status: "active", occurredAt: new Date(Date.now() - day), periodEnd: new Date(Date.now() + 30 * day) };
    const first = await apply(orgId, `sub_${orgId}`, e);
    const before = await counts(orgId);
    const replays = [await apply(orgId, `sub_${orgId}`, e), await apply(orgId, `sub_${orgId}`, e)];
    expect(await counts(orgId)).toEqual(before);
    for (const replay of replays) expect(replay).toEqual({ ...first, outcome: "duplicate" });
    expect(first.effects).toEqual([expect.objectContaining({ effect: "granted" })]);
  });

  it("the same event id with a different body is refused (409 event_id_reused) and changes nothing, not even a subscriptions row", async () => {
    const orgId = await fixtures.organization();
    const other = await fixtures.organization();
    const e: Ev = { id: `evt_${crypto.randomUUID()}`, status: "active", occurredAt: new Date(Date.now() - day), periodEnd: new Date(Date.now() + 30 * day) };
    await apply(orgId, `sub_${orgId}`, e);
    const before = [await counts(orgId), await counts(other)];
    const variants: Array<[string, string, Ev]> = [
      ["another subscription", orgId, e],
      ["another organization", other, e],
      ["another status", orgId, { ...e, status: "canceled", periodEnd: null }],
      ["another time", orgId, { ...e, occurredAt: new Date(e.occurredAt.getTime() - 1000) }],
      ["another period end", orgId, { ...e, periodEnd: new Date(e.periodEnd!.getTime() + day) }],
    ];
    for (const [what, org, variant] of variants) {
      const subId = what === "another subscription" ? `sub_new_${orgId}` : `sub_${org === other ? "o" : ""}${orgId}`;
      const error = await apply(org, subId, variant).then(
        () => null,
        (err: { code: string; message: string }) => err,
      );
      expect({ what, code: error?.code, message: error?.message.split(":")[0] }).toEqual({ what, code: "PT409", message: "event_id_reused" });
    }
    expect([await counts(orgId), await counts(other)]).toEqual(before);
  });
});

describe("subscriptions the platform had before their first event", () => {
  it("a first past_due keeps level A to the paid period's end and keeps the period end on the subscription (the platform's record is the fold's baseline)", async () => {
    const orgId = await fixtures.organization();
    const periodEnd = new Date(Date.now() + 25 * day);
    const sub = await fixtures.subscription(orgId, { status: "active", currentPeriodEnd: periodEnd });
    expect((await sql`select public.ensure_level_a(${orgId}, ${sub.id}) as r`)[0]!.r).toBe("granted");
    const failedAt = new Date(Date.now() - 60_000);
    const r = await apply(orgId, sub.providerId, { id: `evt_${crypto.randomUUID()}`, status: "past_due", occurredAt: failedAt, periodEnd: null });
    expect(r).toMatchObject({ outcome: "applied", status: "past_due" });
    const [row] = await sql`select status, current_period_end, grace_until from public.subscriptions where id = ${sub.id}`;
    expect(row!.current_period_end.getTime()).toBe(periodEnd.getTime());
    expect(row!.grace_until.getTime()).toBe(failedAt.getTime() + 14 * day);
    const [a] = await sql`select valid_until, in_grace from public.organization_status_levels where organization_id = ${orgId} and level = 'A' and is_active`;
    expect(a).toMatchObject({ valid_until: periodEnd, in_grace: true });
  });

  it("a subscription that never paid gets no grace period from a past_due, so no level A; incomplete during a running grace keeps A like canceled and unpaid", async () => {
    const neverPaid = await fixtures.organization();
    for (const first of ["past_due", "incomplete"] as const) {
      await apply(neverPaid, `sub_np_${first}_${neverPaid}`, { id: `evt_${crypto.randomUUID()}`, status: first as Ev["status"], occurredAt: new Date(Date.now() - 2 * day), periodEnd: null });
    }
    await apply(neverPaid, `sub_np_incomplete_${neverPaid}`, { id: `evt_${crypto.randomUUID()}`, status: "past_due", occurredAt: new Date(Date.now() - day), periodEnd: null });
    const subs = await sql`select grace_until from public.subscriptions where organization_id = ${neverPaid}`;
    expect(subs.map((s) => s.grace_until)).toEqual([null, null]);
    expect((await sql`select public.get_current_status_level(${neverPaid}) as l`)[0]!.l).toBe("0");

    const inGrace = await fixtures.organization();
    const subId = `sub_${inGrace}`;
    const now = Date.now();
    await apply(inGrace, subId, { id: `e1_${inGrace}`, status: "active", occurredAt: new Date(now - 35 * day), periodEnd: new Date(now - 5 * day) });
    await apply(inGrace, subId, { id: `e2_${inGrace}`, status: "past_due", occurredAt: new Date(now - 5 * day), periodEnd: null });
    await apply(inGrace, subId, { id: `e3_${inGrace}`, status: "incomplete" as Ev["status"], occurredAt: new Date(now - day), periodEnd: null });
    const [a] = await sql`select valid_until from public.organization_status_levels where organization_id = ${inGrace} and level = 'A' and is_active and valid_until > now()`;
    expect(a!.valid_until.getTime()).toBe(now - 5 * day + 14 * day);
  });
});
