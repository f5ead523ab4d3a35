import postgres from "postgres";
import type { Env } from "../../functions/_shared/env.ts";
import { runDailyJob, type DailyJobSummary } from "../../functions/scheduled/daily-job.ts";
import type { StackInfo } from "../stack/stack-info.ts";
import { workerVars } from "../stack/worker.ts";
import { startEmailServer } from "../test/email-server.ts";
import { format, progress, table, timed } from "./report.ts";

/**
 * Issue 5's measure: a database with 1,000,000 level rows, 100,000 of them due an expiry notice
 * today, plus rows to expire and grace periods that ended. The expire / grace / notice steps run
 * through PostgREST with the service role in batches, exactly as the Worker runs them; then the
 * same run again (nothing new to do). Baseline: the original system's documented figure,
 * 10,000 expiring statuses in under 60 s.
 * Issue 14's: every step in the target, the fan-out (queued notices into in-app rows and rendered
 * e-mails) included, run as the Worker runs it (JOB_FAN_OUT_CONCURRENCY calls at a time; one at a
 * time is its baseline); and the delivery of every e-mail it made by the daily job's own code
 * (runDailyJob, in Node) to the recording e-mail API answering each call after 100 ms, as a real
 * provider would: through the batch endpoint (100 e-mails a call, 6 calls at a time, 5 calls a
 * second: the defaults), and, for a sample, one e-mail per call (its rate says how long 100,000 take).
 * Issue 15's: the level C notices step over 10,000 C holders and 10,000 organizations with B and a
 * published case study (the candidates for "you now meet level C's criteria"), each with about 100
 * reviews of the db benchmark's C holders' shape, in four time zones; baseline: the projection of
 * the same organizations in one statement, without the step's bookkeeping.
 */
export interface JobBenchOptions {
  levelRows: number;
  dueNotices: number;
  levelCHolders: number;
  levelCCandidates: number;
  batch: number;
}

export const defaultJobBench: JobBenchOptions = { levelRows: 1_000_000, dueNotices: 100_000, levelCHolders: 10_000, levelCCandidates: 10_000, batch: 5000 };

/** The e-mail API's answer time the delivery is measured at (a real provider's ~100 ms per call). */
const PROVIDER_DELAY_MS = Number(process.env.BENCH_EMAIL_DELAY_MS ?? 100);
/** Fan-out calls at a time, as the Worker's default JOB_FAN_OUT_CONCURRENCY. */
const FAN_OUT_CONCURRENCY = 2;

export async function runJobBench(stack: StackInfo, options: JobBenchOptions): Promise<string> {
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {}, idle_timeout: 0 });
  const shape = layout(options);
  try {
    const generation = await timed(`generating ${format(options.levelRows)} level rows`, () => generate(sql, shape));
    const [{ rows }] = (await sql`select count(*)::int as rows from public.organization_status_levels`) as unknown as [{ rows: number }];

    const step = async (
      name: string,
      batch = options.batch,
      maxBatches = Infinity,
      concurrency = 1,
    ): Promise<{ count: number; ms: number; batches: number; extra: Record<string, number> }> => {
      const started = performance.now();
      let count = 0;
      let batches = 0;
      let cursor: unknown = null;
      const extra: Record<string, number> = {};
      // Cursor-less steps (the fan-out) can run several calls at a time, as the Worker does.
      const loop = async () => {
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
        } else if (name === "level_c_notices") {
          count += r.evaluated;
          for (const key of ["at_risk_notices", "eligible_notices", "skipped", "recovered", "no_longer_met"]) extra[key] = (extra[key] ?? 0) + r[key];
        } else if (name === "fan_out") {
          count += r.processed;
          extra.notifications = (extra.notifications ?? 0) + r.notifications;
          extra.emails = (extra.emails ?? 0) + r.emails;
        } else {
          count += r.count;
        }
        if (!r.more || batches >= maxBatches) break;
      }
      };
      await Promise.all(Array.from({ length: concurrency }, loop));
      return { count, ms: performance.now() - started, batches, extra };
    };

    const runSteps = async (label: string) => {
      progress(`${label}: expire, end_grace, expiry_notices, level_c_notices`);
      const expire = await step("expire");
      const grace = await step("end_grace");
      const notices = await step("expiry_notices");
      const levelC = await step("level_c_notices");
      return { expire, grace, notices, levelC };
    };
    // The baseline, measured in this run: the same notice step one row per call (a round trip and a
    // statement per notice, as a job looping over rows would do). It takes the first (most urgent)
    // extra due rows, so the set-based run below still has exactly the due rows it is sized for.
    progress(`baseline: ${format(shape.baselineRows)} expiry notices one row per call`);
    const rowAtATime = await step("expiry_notices", 1, shape.baselineRows);
    // The level C step's baseline: the projection alone of the organizations it evaluates (C
    // holders and those with B and a published case study), one statement, direct SQL.
    progress(`baseline: the 30-day projection of ${format(shape.cRows + shape.candidates)} organizations in one statement`);
    const projectionAlone = await timed("projection alone", () =>
      sql`select count(*) from private.level_c_projection_for(array(select distinct organization_id from public.case_studies where is_published), 30)`,
    );
    const first = await runSteps("first run");
    const again = await runSteps("second run (idempotent)");
    // The fan-out's baseline, measured in this run: one call at a time over the first fifth of the
    // queue; then the rest as the Worker runs it.
    const [{ queued }] = (await sql`select count(*)::int as queued from public.notification_queue where processed_at is null`) as unknown as [{ queued: number }];
    const baselineBatches = Math.max(1, Math.round(queued / 5 / options.batch));
    progress(`fan-out baseline: ${format(baselineBatches)} batches of ${format(options.batch)}, one call at a time`);
    const fanOutOneAtATime = await step("fan_out", options.batch, baselineBatches, 1);
    progress(`fan-out of the rest of the ${format(queued)} queued notices, ${FAN_OUT_CONCURRENCY} calls at a time (in-app rows and rendered e-mails)`);
    const fanOut = await step("fan_out", options.batch, Infinity, FAN_OUT_CONCURRENCY);
    const fanOutRate = fanOut.count / (fanOut.ms / 1000);
    const delivery = await measureDelivery(stack, sql);
    const floors = await fanOutFloors(sql, options.batch);

    const levelCPlan = await stepPlan(stack);
    const [{ sent, skipped }] = (await sql`
      select count(*) filter (where state = 'sent')::int as sent, count(*) filter (where state = 'skipped')::int as skipped
      from public.expiry_notices`) as unknown as [{ sent: number; skipped: number }];
    const threeSteps = first.expire.ms + first.grace.ms + first.notices.ms;
    // The fan-out of all the queued rows at the rate the Worker's way reached (the baseline took a fifth).
    const fanOutAllMs = (queued / fanOutRate) * 1000;
    const fourSteps = threeSteps + fanOutAllMs;
    const baselineRate = 10_000 / 60;
    const rate = (s: { count: number; ms: number }) => (s.count > 0 ? s.count / (s.ms / 1000) : 0);
    const levelCRow = (label: string, st: { count: number; ms: number; batches: number; extra: Record<string, number> }, target = "") => [
      label, st.count, st.extra.at_risk_notices ?? 0, st.extra.eligible_notices ?? 0, st.extra.skipped ?? 0, st.ms / 1000, st.batches,
      `${format(st.ms / projectionAlone.ms)}x`, target,
    ];
    const [{ reviewCount }] = (await sql`select count(*)::int as "reviewCount" from public.reviews`) as unknown as [{ reviewCount: number }];
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
          row("fan-out baseline: one call at a time (queue rows)", fanOutOneAtATime),
          [
            `fan-out: ${FAN_OUT_CONCURRENCY} calls at a time (queue rows)`, fanOut.count, fanOut.ms / 1000, fanOutRate, fanOut.batches,
            `${format(fanOutRate / rate(fanOutOneAtATime))}x one at a time`, `${format(fanOutRate / baselineRate)}x`, ">= 30,000/s",
          ],
          ["expire + grace + notices + fan-out (all queued rows at that rate)", first.expire.count + first.grace.count + first.notices.count + queued, fourSteps / 1000, "", "", "", "", "< 5 s"],
          [
            "fan-out floor: writing the same rows only, one statement at a time (direct SQL)", floors.withKeys.count, floors.withKeys.ms / 1000, rate(floors.withKeys), floors.withKeys.batches,
            `${format(rate(fanOutOneAtATime) / rate(floors.withKeys))}x of it one at a time`, "", "",
          ],
          [
            "fan-out floor, without the four foreign keys", floors.withoutKeys.count, floors.withoutKeys.ms / 1000, rate(floors.withoutKeys), floors.withoutKeys.batches,
            `${format(rate(floors.withKeys) / rate(floors.withoutKeys))}x of it with them`, "", "",
          ],
        ],
      ),
      "",
      `Fan-out floors: the in-app rows and e-mails the fan-out made (${format(floors.rows)} of each kind, texts as rendered), written again by one INSERT per table and the queue rows' UPDATE per batch of ${format(options.batch)} queue rows, nothing rendered, nothing looked up, in a transaction rolled back afterwards; then the same with the foreign keys to organizations and users dropped inside that transaction. What the fan-out costs beyond its floor is rendering and the lookups; what the floor costs is the writes themselves.`,
      "",
      `Notices recorded: ${format(sent)} sent, ${format(skipped)} skipped (catch-up of thresholds already passed). The fan-out took ${format(queued)} queued notices (level C notices included; an organization without an owner or admin has none to make) and made ${format((fanOut.extra.notifications ?? 0) + (fanOutOneAtATime.extra.notifications ?? 0))} in-app notifications and ${format((fanOut.extra.emails ?? 0) + (fanOutOneAtATime.extra.emails ?? 0))} e-mails.`,
      "",
      delivery,
      "",
      `Level C notices: ${format(shape.cRows)} C holders and ${format(shape.candidates)} organizations with B and a published case study, about 100 reviews each (${format(reviewCount)} reviews) in four time zones. Batches of at most 2,000 organizations (the step's cap) through PostgREST.`,
      "",
      table(
        ["level C notices", "organizations", "at risk (notices)", "eligible (notices)", "skipped (C asked)", "seconds", "batches", "vs the projection alone", "target"],
        [
          ["baseline: the projection alone, one statement (direct SQL)", shape.cRows + shape.candidates, "", "", "", projectionAlone.ms / 1000, 1, "1x", ""],
          levelCRow("first run", first.levelC, "< 10 s"),
          levelCRow("repeat (nothing new)", again.levelC),
        ],
      ),
      "",
      levelCPlan,
    ].join("\n");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * The fan-out's floor: the rows it wrote (in-app notifications and e-mails, texts as rendered),
 * written again in the same batches of queue rows with the queue's UPDATE, by plain INSERTs from a
 * copy (nothing rendered, no organizations, members or users read), inside a transaction that is
 * rolled back; then once more with the four foreign keys of the two tables dropped inside such a
 * transaction (their checks lock the referenced organization and user rows).
 */
async function fanOutFloors(sql: postgres.Sql, batch: number): Promise<{ rows: number; withKeys: Floor; withoutKeys: Floor }> {
  await sql`drop table if exists bench_fan_out_rows`;
  await sql`
    create table bench_fan_out_rows as
    select n.user_id, n.organization_id, n.kind, n.title, n.body, n.data, n.dedupe_key, e.recipient, e.subject, e.body_text,
           split_part(n.dedupe_key, ':', 2)::bigint as queue_id
    from public.notifications n
    left join public.email_outbox e on e.dedupe_key = n.dedupe_key || ':' || n.user_id
    where n.dedupe_key like 'queue:%'`;
  await sql`create index on bench_fan_out_rows (queue_id)`;
  await sql`analyze bench_fan_out_rows`;
  const [{ rows, low, high }] = (await sql`select count(*)::int as rows, min(queue_id)::bigint as low, max(queue_id)::bigint as high from bench_fan_out_rows`) as unknown as [
    { rows: number; low: string; high: string },
  ];
  const rollback = new Error("rollback");
  const measure = async (label: string, dropKeys: boolean): Promise<Floor> => {
    progress(`fan-out floor: ${label}`);
    let result: Floor | undefined;
    await sql
      .begin(async (tx) => {
        if (dropKeys) {
          const keys = await tx`
            select conrelid::regclass::text as tbl, conname from pg_constraint
            where contype = 'f' and conrelid in ('public.notifications'::regclass, 'public.email_outbox'::regclass)`;
          for (const k of keys) await tx.unsafe(`alter table ${k.tbl} drop constraint ${k.conname}`);
        }
        const started = performance.now();
        let count = 0;
        let batches = 0;
        for (let from = BigInt(low); from <= BigInt(high); from += BigInt(batch)) {
          const to = from + BigInt(batch);
          const [r] = await tx`
            with n as (
              insert into public.notifications (user_id, organization_id, kind, title, body, data, dedupe_key)
              select user_id, organization_id, kind, title, body, data, 'floor:' || dedupe_key
              from bench_fan_out_rows where queue_id >= ${String(from)} and queue_id < ${String(to)}
              returning 1
            ), e as (
              insert into public.email_outbox (organization_id, user_id, recipient, kind, subject, body_text, dedupe_key)
              select organization_id, user_id, recipient, kind, subject, body_text, 'floor:' || dedupe_key || ':' || user_id
              from bench_fan_out_rows where recipient is not null and queue_id >= ${String(from)} and queue_id < ${String(to)}
              returning 1
            ), q as (
              update public.notification_queue set processed_at = now() where id >= ${String(from)} and id < ${String(to)}
              returning 1
            )
            select (select count(*) from q)::int as queued, (select count(*) from n)::int as notifications, (select count(*) from e)::int as emails`;
          count += r!.queued;
          batches++;
        }
        result = { count, ms: performance.now() - started, batches };
        throw rollback;
      })
      .catch((error) => {
        if (error !== rollback) throw error;
      });
    return result!;
  };
  const withKeys = await measure("the same rows written again, one statement per batch", false);
  const withoutKeys = await measure("the same without the foreign keys", true);
  await sql`drop table bench_fan_out_rows`;
  return { rows, withKeys, withoutKeys };
}

interface Floor {
  count: number;
  ms: number;
  batches: number;
}

/**
 * Delivers every e-mail in the outbox with the daily job itself (runDailyJob in Node: the same
 * code the Worker runs, its concurrency and rate limit enforced by that code) against the
 * recording e-mail API answering each call after PROVIDER_DELAY_MS: first a sample through the
 * single-e-mail endpoint (a run cut short after 20 s: its rate), then the rest through the batch
 * endpoint with the defaults (100 a call, 6 calls at a time, 5 calls a second).
 */
async function measureDelivery(stack: StackInfo, sql: postgres.Sql): Promise<string> {
  const server = await startEmailServer();
  try {
    server.control({ delayMs: PROVIDER_DELAY_MS, keepBodies: false, batchMax: 100 });
    const [{ due }] = (await sql`select count(*)::int as due from public.email_outbox where state = 'pending'`) as unknown as [{ due: number }];
    const env = (extra: Record<string, string>) =>
      workerVars(stack, { EMAIL_API_URL: server.url, EMAIL_API_TOKEN: "bench", LOG_LEVEL: "warn", CACHE_KEY_PREFIX: "bench", ...extra }) as unknown as Env;
    const quiet = () => {};
    const run = async (label: string, extra: Record<string, string>, budget: { deadlineMs: number; hardDeadlineMs: number; emailTimeoutMs?: number }) => {
      server.control({ resetStats: true });
      progress(`delivery: ${label}`);
      const started = performance.now();
      const summary: DailyJobSummary = await runDailyJob(env(extra), { ...budget, log: quiet, trigger: "service" });
      const ms = performance.now() - started;
      const deliver = summary.steps.deliver as Record<string, number | boolean | string>;
      if (!deliver.ok) throw new Error(`delivery failed: ${String(deliver.error)}`);
      return { deliver, ms, stats: server.stats() };
    };
    // Sample: one e-mail per call, 6 at a time, no rate limit (the provider's own would only slow
    // it), each call given 2 s at most, so that claims near the end of this short run are not
    // sized for 10 s calls.
    const single = await run("sample through the single-e-mail endpoint (25 s)", { EMAIL_CONCURRENCY: "6", EMAIL_RATE_LIMIT_PER_SECOND: "0" }, {
      deadlineMs: 20_000,
      hardDeadlineMs: 25_000,
      emailTimeoutMs: 2_000,
    });
    const singleSent = Number(single.deliver.sent ?? 0);
    const singleRate = singleSent / (Number(single.deliver.duration_ms) / 1000);
    // The rest: the batch endpoint with the defaults, in one run of at most 13 minutes (a cron
    // invocation may take 15).
    const batched = await run("the rest through the batch endpoint (100 a call, 6 at a time, 5 calls/s)", { EMAIL_BATCH_API_URL: server.batchUrl }, {
      deadlineMs: 12 * 60_000,
      hardDeadlineMs: 13 * 60_000,
    });
    const batchSent = Number(batched.deliver.sent ?? 0);
    const batchSeconds = Number(batched.deliver.duration_ms) / 1000;
    const batchRate = batchSent / batchSeconds;
    const [{ left }] = (await sql`select count(*)::int as left from public.email_outbox where state <> 'sent'`) as unknown as [{ left: number }];
    const hundredK = (perSecond: number) => (perSecond > 0 ? 100_000 / perSecond : Infinity);
    return [
      `E-mail delivery: ${format(due)} e-mails due after the fan-out, sent by the daily job's own code (runDailyJob in Node) to the recording e-mail API answering every call after ${PROVIDER_DELAY_MS} ms. Each row is one run of the job; its deliver step's time.`,
      "",
      table(
        ["delivery", "e-mails sent", "provider calls", "most calls in flight", "seconds", "e-mails/s", "100,000 e-mails take (min)", "target"],
        [
          ["baseline: one e-mail per call, 6 at a time (a run cut at 25 s)", singleSent, single.stats.calls, single.stats.max_in_flight, Number(single.deliver.duration_ms) / 1000, singleRate, hundredK(singleRate) / 60, ""],
          ["batch endpoint: 100 a call, 6 at a time, at most 5 calls/s (the defaults)", batchSent, batched.stats.calls, batched.stats.max_in_flight, batchSeconds, batchRate, hundredK(batchRate) / 60, "< 10 min"],
        ],
      ),
      "",
      `Left unsent after both runs: ${format(left)}. The batch run's rate is ${format(batchRate / singleRate)}x the single endpoint's; its bound is the rate limit (5 calls/s x 100 = 500 e-mails/s), not the 6 connections (6 / ${PROVIDER_DELAY_MS} ms x 100 = ${format((6 * 100 * 1000) / PROVIDER_DELAY_MS)}/s).`,
    ].join("\n");
  } finally {
    await server.stop();
  }
}

export function layout(o: JobBenchOptions) {
  // 40 % active B rows (one per organization), 40 % ended B rows, 1 % C, the rest A.
  const orgs = Math.round(o.levelRows * 0.4);
  const baselineRows = Math.max(10, Math.round(o.dueNotices * 0.01));
  const dueB = Math.min(o.dueNotices + baselineRows, orgs);
  const lapsedB = Math.round(orgs * 0.025);
  // C holders, then the candidates, among the organizations whose B ends after the horizon (so
  // the expiry notice figures do not depend on them): numbers firstC .. lastCandidate.
  const cRows = o.levelCHolders;
  const candidates = o.levelCCandidates;
  const firstC = dueB + lapsedB + 1;
  const lastC = firstC + cRows - 1;
  const lastCandidate = lastC + candidates;
  if (lastCandidate > orgs) throw new Error(`the job bench has ${orgs} organizations, too few for ${cRows} C holders and ${candidates} candidates after the due and lapsed ones`);
  const aRows = o.levelRows - 2 * orgs - cRows;
  const graceEnded = Math.round(aRows * 0.05);
  return { orgs, dueB, lapsedB, cRows, candidates, firstC, lastC, lastCandidate, aRows, graceEnded, baselineRows };
}

export async function generate(sql: postgres.Sql, s: ReturnType<typeof layout>): Promise<void> {
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
      select id, 'C', null from bench_orgs where n between ${s.firstC} and ${s.lastC};
    -- C holders and candidates: owners (their notices are rendered), a published case study, four time zones.
    insert into auth.users (id, email) select id, 'owner-' || n || '@example.test' from bench_orgs where n between ${s.firstC} and ${s.lastCandidate};
    insert into public.organization_members (organization_id, user_id, role) select id, id, 'owner' from bench_orgs where n between ${s.firstC} and ${s.lastCandidate};
    insert into public.case_studies (organization_id, title, is_published) select id, 'Case', true from bench_orgs where n between ${s.firstC} and ${s.lastCandidate};
    update public.organizations o set time_zone = (array['UTC', 'Europe/Berlin', 'America/Los_Angeles', 'Asia/Kolkata'])[b.n % 4 + 1]
      from bench_orgs b where b.id = o.id and b.n between ${s.firstC} and ${s.lastCandidate};
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
  // Reviews of the C holders and candidates, shaped as the db benchmark's C holders': 100 each, one
  // every 40 to 640 hours, up to a quarter unanswered, answered within a day or three, one in
  // twenty hidden; so some meet the criteria, some fail now and some will within 30 days.
  const chunk = 2000;
  for (let from = s.firstC; from <= s.lastCandidate; from += chunk) {
    const to = Math.min(s.lastCandidate, from + chunk - 1);
    await sql.unsafe(`
      insert into public.reviews (organization_id, status, published_at, responded_at)
      select b.id, case when k % 20 = 0 then 'hidden' else 'published' end, x.p, case when x.answered then x.p + x.hours * interval '1 hour' end
      from bench_orgs b
      cross join generate_series(0, 99) k
      cross join lateral (
        select now() - (k * (40 + b.n % 600) + b.n % 24) * interval '1 hour' as p,
               (k * 37 + b.n) % 100 >= b.n % 25 as answered,
               (k * 13 + b.n) % (24 + b.n % 60) as hours
      ) x
      where b.n between ${from} and ${to}`);
    progress(`  reviews of organizations ${format(from - s.firstC + 1)}-${format(to - s.firstC + 1)} of ${format(s.lastCandidate - s.firstC + 1)}`);
  }
  await sql.unsafe(
    "vacuum analyze public.organization_status_levels, public.subscriptions, public.organizations, public.organization_members, public.case_studies, public.reviews, private.review_daily_stats",
  );
}

/**
 * The plans of one batch of the level C notices step (auto_explain, analyze, nested statements;
 * rolled back): choosing the batch's organizations and the statement that evaluates and records
 * them (the projection's own plan is in the db benchmark).
 */
async function stepPlan(stack: StackInfo): Promise<string> {
  const notices: string[] = [];
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
  try {
    await sql
      .begin(async (tx) => {
        await tx.unsafe(`load 'auto_explain'`);
        await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
        await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
        await tx.unsafe(`set local auto_explain.log_analyze = on`);
        await tx.unsafe(`set local client_min_messages = log`);
        await tx`select private.job_level_c_notices(now(), 2000, null, null)`;
        throw new Error("rollback");
      })
      .catch((e) => {
        if ((e as Error).message !== "rollback") throw e;
      });
  } finally {
    await sql.end({ timeout: 2 });
  }
  const out: string[] = [];
  for (const [label, marker] of [
    ["choosing a batch of 2,000 organizations", "Query Text: select coalesce(array_agg(u.id"],
    ["evaluating and recording them", "Query Text: with projected as"],
  ] as const) {
    const work = notices.find((n) => n.includes(marker));
    const lines = (work ?? "(no plan logged)").split("\n");
    const start = lines.findIndex((l) => /\(cost=[\d.]+\.\.[\d.]+ rows=/.test(l));
    out.push(`Plan of the level C notices step, ${label} (auto_explain, analyze; ${/duration: [\d.]+ ms/.exec(work ?? "")?.[0] ?? ""}):`);
    out.push(...lines.slice(Math.max(0, start)).map((l) => `  ${l.length > 200 ? `${l.slice(0, 199)}…` : l}`));
    out.push("");
  }
  return out.join("\n");
}
