import postgres from "postgres";
import type { StackInfo } from "../stack/stack-info.ts";
import { format, progress, table, timed } from "./report.ts";

/**
 * Issue 5's measure: a database with 1,000,000 level rows, 100,000 of them due an expiry notice
 * today, plus rows to expire and grace periods that ended. The expire / grace / notice steps run
 * through PostgREST with the service role in batches, exactly as the Worker runs them; then the
 * same run again (nothing new to do). Baseline: the original system's documented figure,
 * 10,000 expiring statuses in under 60 s.
 */
export interface JobBenchOptions {
  levelRows: number;
  dueNotices: number;
  batch: number;
}

export const defaultJobBench: JobBenchOptions = { levelRows: 1_000_000, dueNotices: 100_000, batch: 5000 };

export async function runJobBench(stack: StackInfo, options: JobBenchOptions): Promise<string> {
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {}, idle_timeout: 0 });
  const shape = layout(options);
  try {
    const generation = await timed(`generating ${format(options.levelRows)} level rows`, () => generate(sql, shape));
    const [{ rows }] = (await sql`select count(*)::int as rows from public.organization_status_levels`) as unknown as [{ rows: number }];

    const step = async (name: string, batch = options.batch, maxBatches = Infinity): Promise<{ count: number; ms: number; batches: number; extra: Record<string, number> }> => {
      const started = performance.now();
      let count = 0;
      let batches = 0;
      let cursor: unknown = null;
      const extra: Record<string, number> = {};
      for (;;) {
        const res = await fetch(`${stack.supabaseUrl}/rest/v1/rpc/run_daily_job_step`, {
          method: "POST",
          headers: { apikey: stack.anonKey, authorization: `Bearer ${stack.serviceRoleKey}`, "content-type": "application/json" },
          body: JSON.stringify({ p_step: name, p_batch: batch, p_after: cursor }),
        });
        if (!res.ok) throw new Error(`${name}: HTTP ${res.status} ${await res.text()}`);
        const r = (await res.json()) as Record<string, any>;
        batches++;
        cursor = r.cursor ?? null;
        if (name === "expiry_notices") {
          count += r.sent;
          extra.skipped = (extra.skipped ?? 0) + r.skipped;
        } else if (name === "fan_out") {
          count += r.processed;
          extra.notifications = (extra.notifications ?? 0) + r.notifications;
          extra.emails = (extra.emails ?? 0) + r.emails;
        } else {
          count += r.count;
        }
        if (!r.more || batches >= maxBatches) break;
      }
      return { count, ms: performance.now() - started, batches, extra };
    };

    const runSteps = async (label: string) => {
      progress(`${label}: expire, end_grace, expiry_notices`);
      const expire = await step("expire");
      const grace = await step("end_grace");
      const notices = await step("expiry_notices");
      return { expire, grace, notices };
    };
    // The baseline, measured in this run: the same notice step one row per call (a round trip and a
    // statement per notice, as a job looping over rows would do). It takes the first (most urgent)
    // extra due rows, so the set-based run below still has exactly the due rows it is sized for.
    progress(`baseline: ${format(shape.baselineRows)} expiry notices one row per call`);
    const rowAtATime = await step("expiry_notices", 1, shape.baselineRows);
    const first = await runSteps("first run");
    const again = await runSteps("second run (idempotent)");
    progress("fan-out of the queued notices (in-app rows and rendered e-mails)");
    const fanOut = await step("fan_out");

    const [{ sent, skipped }] = (await sql`
      select count(*) filter (where state = 'sent')::int as sent, count(*) filter (where state = 'skipped')::int as skipped
      from public.expiry_notices`) as unknown as [{ sent: number; skipped: number }];
    const threeSteps = first.expire.ms + first.grace.ms + first.notices.ms;
    const baselineRate = 10_000 / 60;
    const rate = (s: { count: number; ms: number }) => (s.count > 0 ? s.count / (s.ms / 1000) : 0);
    // "vs row at a time" only where it is the same work: the notice step.
    const row = (label: string, s: { count: number; ms: number; batches: number }, target = "", sameWork = false) => [
      label,
      s.count,
      s.ms / 1000,
      rate(s),
      s.batches,
      sameWork && s.count > 0 ? `${format(rate(s) / rate(rowAtATime))}x` : "",
      s.count > 0 ? `${format(rate(s) / baselineRate)}x` : "",
      target,
    ];
    return [
      `Data: ${format(rows)} level rows (${format(shape.dueB - shape.baselineRows)} B rows due a notice plus ${format(shape.baselineRows)} for the row-at-a-time baseline, ${format(shape.lapsedB)} lapsed, ${format(shape.graceEnded)} A rows whose grace ended), generated set-based in ${format(generation.ms / 1000)} s. Batches of ${format(options.batch)} through PostgREST, as the Worker runs them.`,
      "",
      table(
        ["step", "rows", "seconds", "rows/s", "batches", "vs row at a time", "vs original (10,000 in 60 s)", "target"],
        [
          row("baseline: expiry notices, one row per call", rowAtATime, "", true),
          row("expire", first.expire),
          row("end grace", first.grace),
          row("expiry notices (sent)", first.notices, ">= 20,000/s", true),
          ["expire + grace + notices", first.expire.count + first.grace.count + first.notices.count, threeSteps / 1000, "", "", "", "", "< 10 s"],
          row("repeat: expire", again.expire),
          row("repeat: end grace", again.grace),
          row("repeat: expiry notices", again.notices),
          row("fan-out (not in the target)", fanOut),
        ],
      ),
      "",
      `Notices recorded: ${format(sent)} sent, ${format(skipped)} skipped (catch-up of thresholds already passed). Fan-out made ${format(fanOut.extra.notifications ?? 0)} in-app notifications and ${format(fanOut.extra.emails ?? 0)} e-mails.`,
    ].join("\n");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function layout(o: JobBenchOptions) {
  // 40 % active B rows (one per organization), 40 % ended B rows, 10 % C, 10 % A.
  const orgs = Math.round(o.levelRows * 0.4);
  const baselineRows = Math.max(10, Math.round(o.dueNotices * 0.01));
  const dueB = Math.min(o.dueNotices + baselineRows, orgs);
  const lapsedB = Math.round(orgs * 0.025);
  const cRows = Math.round(o.levelRows * 0.1);
  const aRows = o.levelRows - 2 * orgs - cRows;
  const graceEnded = Math.round(aRows * 0.05);
  return { orgs, dueB, lapsedB, cRows, aRows, graceEnded, baselineRows };
}

async function generate(sql: postgres.Sql, s: ReturnType<typeof layout>): Promise<void> {
  await sql.unsafe(`
    create temp table bench_orgs as
      select gen_random_uuid() as id, g as n from generate_series(1, ${s.orgs}) g;
    insert into public.organizations (id, name, time_zone) select id, 'Organization ' || n, 'Europe/Berlin' from bench_orgs;
    -- Owners for the organizations that will get a notice (the fan-out needs recipients).
    insert into auth.users (id, email) select id, 'owner-' || n || '@example.test' from bench_orgs where n <= ${s.dueB};
    insert into public.organization_members (organization_id, user_id, role) select id, id, 'owner' from bench_orgs where n <= ${s.dueB};
    -- Active B: the first ${s.dueB} end within 60 days (a notice is due), the next ${s.lapsedB} ended already, the rest later.
    insert into public.organization_status_levels (organization_id, level, valid_from, valid_until)
      select id, 'B', now() - interval '500 days',
             case when n <= ${s.dueB} then now() + (1 + (n % 59)) * interval '1 day' - interval '1 hour'
                  when n <= ${s.dueB + s.lapsedB} then now() - (n % 30 + 1) * interval '1 hour'
                  else now() + (61 + n % 400) * interval '1 day' end
      from bench_orgs;
    -- Ended B rows of earlier cycles.
    insert into public.organization_status_levels (organization_id, level, is_active, valid_from, valid_until, ended_at, end_reason)
      select id, 'B', false, now() - interval '1100 days', now() - interval '560 days', now() - interval '560 days', 'expired' from bench_orgs;
    insert into public.organization_status_levels (organization_id, level, valid_until)
      select id, 'C', null from bench_orgs where n <= ${s.cRows};
    -- A from subscriptions: most active (they renew by themselves: no notice), some whose grace ended.
    insert into public.subscriptions (id, organization_id, provider_subscription_id, status, current_period_end, grace_started_at, grace_until)
      select id, id, 'sub_' || n,
             case when n <= ${s.graceEnded} then 'past_due' else 'active' end,
             case when n <= ${s.graceEnded} then now() - interval '20 days' else now() + (10 + n % 30) * interval '1 day' end,
             case when n <= ${s.graceEnded} then now() - interval '16 days' end,
             case when n <= ${s.graceEnded} then now() - interval '2 days' end
      from bench_orgs where n <= ${s.aRows};
    insert into public.organization_status_levels (organization_id, level, valid_until, subscription_id, in_grace)
      select s.organization_id, 'A', greatest(s.current_period_end, s.grace_until), s.id, s.grace_until is not null
      from public.subscriptions s;
  `);
  await sql.unsafe("vacuum analyze public.organization_status_levels, public.subscriptions, public.organizations, public.organization_members");
}
