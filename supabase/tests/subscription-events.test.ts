import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fixtures, sql } from "../../scripts/test/node-harness.ts";

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

/** What the organization and the subscription end up with, as readers see it (time predicate, not the flag). */
async function finalState(orgId: string) {
  const [sub] = await sql`select status, current_period_end, grace_until from public.subscriptions where organization_id = ${orgId}`;
  const [a] = await sql`
    select valid_until from public.organization_status_levels
    where organization_id = ${orgId} and level = 'A' and is_active and valid_until > now()`;
  const [current] = await sql`select public.get_current_status_level(${orgId}) as level`;
  return {
    status: sub?.status ?? null,
    current_period_end: sub?.current_period_end?.toISOString() ?? null,
    grace_until: sub?.grace_until?.toISOString() ?? null,
    a_valid_until: a?.valid_until?.toISOString() ?? null,
    current_level: current!.level as string,
  };
}

const eventSequence = fc
  .array(
    fc.record({
      status: fc.constantFrom(...statuses),
      // Whole minutes in the last 40 days: distinct times, so provider order is total.
      minutesAgo: fc.integer({ min: 1, max: 40 * 24 * 60 }),
      periodDays: fc.integer({ min: 1, max: 45 }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((raw) => {
    const seen = new Set<number>();
    const now = Date.now();
    return raw
      .filter((r) => !seen.has(r.minutesAgo) && seen.add(r.minutesAgo))
      .map((r, i): Ev => {
        const occurredAt = new Date(Math.floor((now - r.minutesAgo * 60_000) / 60_000) * 60_000);
        return {
          id: `evt_${i}_${r.minutesAgo}`,
          status: r.status,
          occurredAt,
          periodEnd: r.status === "active" ? new Date(occurredAt.getTime() + r.periodDays * day) : null,
        };
      })
      .sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime());
  });

describe("subscription events: replays and reordering converge", () => {
  it("a shuffled sequence with replays ends in the same state as the ordered sequence", async () => {
    await fc.assert(
      fc.asyncProperty(eventSequence, fc.infiniteStream(fc.nat()), async (events, randomness) => {
        const [ordered, shuffled] = [await fixtures.organization(), await fixtures.organization()];
        const prefix = crypto.randomUUID();
        for (const e of events) await apply(ordered, `sub_o_${prefix}`, { ...e, id: `o_${prefix}_${e.id}` });

        // Shuffle, and deliver some events twice (at-least-once delivery).
        const rand = randomness[Symbol.iterator]();
        const deliveries = [...events, ...events.filter(() => rand.next().value % 3 === 0)];
        for (let i = deliveries.length - 1; i > 0; i--) {
          const j = rand.next().value % (i + 1);
          [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
        }
        for (const e of deliveries) await apply(shuffled, `sub_s_${prefix}`, { ...e, id: `s_${prefix}_${e.id}` });

        expect(await finalState(shuffled)).toEqual(await finalState(ordered));
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
