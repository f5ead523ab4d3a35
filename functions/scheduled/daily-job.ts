import type { LogFn } from "../_shared/app-env.ts";
import { invalidateOrganizations } from "../_shared/cache.ts";
import { config, type Env } from "../_shared/env.ts";
import type { Json } from "../_shared/database.types.ts";
import { callRpc } from "../_shared/rpc.ts";
import { supabaseAsService, type Db } from "../_shared/supabase.ts";
import { EMAIL_TIMEOUT_MS, sendEmail, type OutgoingEmail, type SendResult } from "./email-sender.ts";

/**
 * The daily job: expire lapsed levels, end grace periods, enqueue expiry notices, enqueue level C
 * notices (at risk, newly eligible), deliver notifications (in-app rows and e-mails). Each step runs in batches of set-based SQL until done
 * or until the deadline (the rest is picked up by the next run). Steps are independent: one
 * failing does not stop the others; after all ran, the run fails if any step failed.
 *
 * Time budget: no batch starts after `deadlineMs`, and everything the run started is over and
 * recorded by `hardDeadlineMs` (the platform's limit minus a margin). An e-mail batch is the one
 * that waits on someone else, so it is bounded by the hard end: it claims only as many e-mails as
 * fit in the time left, never starts a send that could outlast it, and releases what it claimed
 * but did not try.
 */
export interface DailyJobOptions {
  /** Act as of this time instead of now (service role only: backfills, tests). */
  asOf?: string;
  /** Limit the run to these organizations. */
  organizationIds?: string[];
  /** From the start of the run: no batch starts after this; whatever is left is done by the next run. */
  deadlineMs?: number;
  /**
   * From the start of the run: every e-mail sent is recorded and the run is over by then (the
   * platform's limit minus a safety margin). Defaults to the deadline plus two minutes.
   */
  hardDeadlineMs?: number;
  /** Longest wait for one e-mail (EMAIL_TIMEOUT_MS); tests shorten it. */
  emailTimeoutMs?: number;
  batchSize?: number;
  /** What started the run, recorded with it (the health check reports the last one). */
  trigger?: "cron" | "admin" | "service";
  log: LogFn;
}

export interface StepSummary {
  ok: boolean;
  duration_ms: number;
  batches: number;
  incomplete?: boolean;
  error?: string;
  [count: string]: unknown;
}

export interface DailyJobSummary {
  ok: boolean;
  as_of: string;
  duration_ms: number;
  steps: Record<"expire" | "end_grace" | "expiry_notices" | "level_c_notices" | "deliver", StepSummary>;
}

export class DailyJobFailed extends Error {
  constructor(readonly summary: DailyJobSummary) {
    super(`daily job failed: ${Object.entries(summary.steps).filter(([, s]) => !s.ok).map(([name, s]) => `${name} (${s.error})`).join("; ")}`);
  }
}

type StepResult = Record<string, unknown> & { more?: boolean };

/** What a batch leaves: more work, none, or work that no longer fits before the hard end. */
type BatchOutcome = "more" | "done" | "out_of_time";

/** E-mails claimed per batch at most (the SQL lease of 600 s covers 200 × 10 s / 8) and sent at a time. */
const EMAIL_BATCH = 200;
const EMAIL_CONCURRENCY = 8;
/** Within a batch, sends are recorded at least this often, so little is unrecorded if the run dies anyway. */
const RECORD_EVERY_MS = 15_000;

/** An e-mail claimed by a batch that ran out of time before trying it: released, no attempt counted. */
type NotAttempted = { id: string; attempted: false };

export async function runDailyJob(env: Env, options: DailyJobOptions): Promise<DailyJobSummary> {
  const started = Date.now();
  const softMs = options.deadlineMs ?? 10 * 60_000;
  const hardEnd = started + (options.hardDeadlineMs ?? softMs + 2 * 60_000);
  const deadline = Math.min(started + softMs, hardEnd);
  // Recording a batch is one call that gives up after DEPENDENCY_TIMEOUT_MS: sends end that much
  // before the hard end. A send starts only with at least half its usual timeout left, and its
  // timeout is cut to the time left, so no send outlasts the budget.
  const recordMs = config(env).DEPENDENCY_TIMEOUT_MS;
  const sendsEnd = hardEnd - recordMs;
  const emailTimeoutMs = options.emailTimeoutMs ?? EMAIL_TIMEOUT_MS;
  const minSendMs = emailTimeoutMs / 2;
  const batch = options.batchSize ?? 5000;
  const db = supabaseAsService(env);
  const base = { p_as_of: options.asOf, p_organization_ids: options.organizationIds, p_batch: batch };
  const run = {
    p_run_id: crypto.randomUUID(),
    p_trigger: options.trigger ?? "service",
    p_started_at: new Date(started).toISOString(),
    p_as_of: options.asOf ?? new Date(started).toISOString(),
  };
  // The record of the run is for the health check: failing to write it must not stop the job.
  const record = (fields: { p_finished_at?: string; p_ok?: boolean; p_summary?: Json }) =>
    callRpc(db, "record_daily_job_run", { ...run, ...fields }).catch((error: Error) =>
      options.log("warn", "could not record the daily job run; the health check will not see it", { error: error.message }),
    );
  await record({});

  /**
   * Runs batches of a step until it reports no more work, the deadline passes or its work no longer
   * fits before the hard end, adding up the counts. A step cut short says what it left (`leftover`).
   */
  const runStep = async (
    name: string,
    body: (totals: Record<string, unknown>) => Promise<BatchOutcome>,
    leftover?: () => Promise<Record<string, unknown>>,
  ): Promise<StepSummary> => {
    const stepStarted = Date.now();
    const totals: Record<string, unknown> = {};
    let batches = 0;
    const stopEarly = async (reason: "deadline" | "hard_end"): Promise<StepSummary> => {
      Object.assign(totals, await leftover?.().catch((error: Error) => ({ leftover_error: error.message })));
      options.log("warn", "daily job deadline reached; the next run continues", {
        step: name,
        reason,
        batches,
        ...totals,
        ms_to_hard_end: hardEnd - Date.now(),
      });
      return { ok: true, incomplete: true, duration_ms: Date.now() - stepStarted, batches, ...totals };
    };
    try {
      for (;;) {
        if (Date.now() > deadline) return await stopEarly("deadline");
        const outcome = await body(totals);
        batches++;
        if (outcome === "done") return { ok: true, duration_ms: Date.now() - stepStarted, batches, ...totals };
        if (outcome === "out_of_time") return await stopEarly("hard_end");
      }
    } catch (error) {
      options.log("error", "daily job step failed", { step: name, error: (error as Error).message });
      return { ok: false, error: (error as Error).message, duration_ms: Date.now() - stepStarted, batches, ...totals };
    }
  };

  const endLapsed = (step: "expire" | "end_grace") => async (totals: Record<string, unknown>) => {
    const result = (await callRpc(db, "run_daily_job_step", { ...base, p_step: step })) as StepResult & { count: number; organization_ids: string[] };
    add(totals, step === "expire" ? "expired" : "graces_ended", result.count);
    // Only after the batch committed: readers must not see a level that just ended.
    await invalidateOrganizations(env, result.organization_ids, options.log);
    return result.more === true ? "more" : "done";
  };

  const expire = await runStep("expire", endLapsed("expire"));
  const endGrace = await runStep("end_grace", endLapsed("end_grace"));
  let noticeCursor: unknown = null;
  const notices = await runStep("expiry_notices", async (totals) => {
    const result = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "expiry_notices", p_after: noticeCursor as Json })) as StepResult & {
      sent: number;
      skipped: number;
      sent_by_threshold: Record<string, number>;
      cursor: unknown;
    };
    // The next batch starts after this one's last row (keyset), not from the beginning.
    noticeCursor = result.cursor;
    add(totals, "notices", result.sent);
    add(totals, "skipped", result.skipped);
    const byThreshold = (totals.by_threshold ??= { "60": 0, "30": 0, "7": 0, "1": 0 }) as Record<string, number>;
    for (const [days, n] of Object.entries(result.sent_by_threshold)) byThreshold[days] = (byThreshold[days] ?? 0) + n;
    return result.more === true ? "more" : "done";
  });
  // Level C holders whose 30-day projection fails (at risk) and organizations without C that now
  // meet the criteria (eligible): one notice per episode, queued for the deliver step.
  let levelCCursor: unknown = null;
  const levelCNotices = await runStep("level_c_notices", async (totals) => {
    const result = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "level_c_notices", p_after: levelCCursor as Json })) as StepResult & {
      cursor: unknown;
    };
    levelCCursor = result.cursor;
    for (const key of ["evaluated", "at_risk_notices", "eligible_notices", "skipped", "recovered", "no_longer_met", "episodes_ended"]) {
      add(totals, key, result[key] as number);
    }
    return result.more === true ? "more" : "done";
  });
  const deliver = await runStep("deliver", async (totals) => {
    // 4a: queued work -> in-app notifications + rendered e-mails, until the queue is empty.
    for (;;) {
      const fanned = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "fan_out" })) as StepResult & { notifications: number; emails: number };
      add(totals, "notifications", fanned.notifications);
      add(totals, "emails_enqueued", fanned.emails);
      if (!fanned.more || Date.now() > deadline) break;
    }
    // 4b: one batch of due e-mails per call, as many as fit before the hard end if every send took
    // its whole timeout; the loop in runStep keeps going while batches are full.
    const window = sendsEnd - Date.now();
    if (window < minSendMs) return "out_of_time";
    const limit = Math.min(EMAIL_BATCH, Math.max(1, Math.floor(window / emailTimeoutMs)) * EMAIL_CONCURRENCY);
    const claimed = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "claim_emails", p_batch: limit })) as { emails: OutgoingEmail[] };
    if (claimed.emails.length === 0) return "done";
    const sent = await sendBatch(env, claimed.emails, {
      sendsEnd,
      emailTimeoutMs,
      minSendMs,
      recordMs,
      record: async (entries) =>
        (await callRpc(db, "complete_email_deliveries", { p_results: entries, p_as_of: options.asOf })) as Record<string, number>,
    });
    for (const key of ["sent", "failed", "dead", "released"] as const) add(totals, key, sent[key]);
    if (sent.failures.length > 0) {
      options.log("warn", "some e-mails were not sent; they will be retried", { failed: sent.failures.length, first_error: sent.failures[0] });
      // A failing e-mail API fails the step (and so the run) after this batch is recorded.
      throw new Error(`${sent.failures.length} of ${sent.attempted} e-mails failed: ${sent.failures[0]}`);
    }
    if (sent.released > 0) return "out_of_time";
    return claimed.emails.length >= limit ? "more" : "done";
  }, async () => {
    // What the next run finds, if there is still time to ask (one call, bounded by recordMs).
    if (hardEnd - Date.now() < recordMs) return {};
    const left = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "emails_due" })) as { due: number };
    return { emails_left: left.due };
  });

  const summary: DailyJobSummary = {
    ok: [expire, endGrace, notices, levelCNotices, deliver].every((s) => s.ok),
    as_of: options.asOf ?? new Date(started).toISOString(),
    duration_ms: Date.now() - started,
    steps: { expire, end_grace: endGrace, expiry_notices: notices, level_c_notices: levelCNotices, deliver },
  };
  options.log(summary.ok ? "info" : "error", "daily job summary", summary as unknown as Record<string, unknown>);
  await record({ p_finished_at: new Date().toISOString(), p_ok: summary.ok, p_summary: summary as unknown as Json });
  return summary;
}

function add(totals: Record<string, unknown>, key: string, n: number): void {
  totals[key] = ((totals[key] as number | undefined) ?? 0) + (n ?? 0);
}

/**
 * Sends a claimed batch, EMAIL_CONCURRENCY at a time, and records the outcome of every send. No
 * send starts with less than `minSendMs` before `sendsEnd`, and each one's timeout is cut to the
 * time left; what was not tried is released. Outcomes are recorded as sends complete (every
 * RECORD_EVERY_MS, while there is time for a call) and the rest, releases included, at the end.
 */
async function sendBatch(
  env: Env,
  emails: OutgoingEmail[],
  { sendsEnd, emailTimeoutMs, minSendMs, recordMs, record }: {
    sendsEnd: number;
    emailTimeoutMs: number;
    minSendMs: number;
    recordMs: number;
    record: (entries: Array<SendResult | NotAttempted>) => Promise<Record<string, number>>;
  },
): Promise<{ sent: number; failed: number; dead: number; released: number; attempted: number; failures: string[] }> {
  const totals = { sent: 0, failed: 0, dead: 0, released: 0 };
  const count = (outcome: Record<string, number>) => {
    for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += outcome[key] ?? 0;
  };
  const failures: string[] = [];
  let unrecorded: Array<SendResult | NotAttempted> = [];
  let oldestUnrecorded = 0;
  // One recording call at a time; a chunk whose call failed goes back into the final one.
  let recording: Promise<void> = Promise.resolve();
  const recordSoFar = () => {
    recording = recording.then(async () => {
      const chunk = unrecorded;
      unrecorded = [];
      if (chunk.length === 0) return;
      try {
        count(await record(chunk));
      } catch {
        unrecorded = [...chunk, ...unrecorded];
      }
    });
  };

  let next = 0;
  const worker = async () => {
    while (next < emails.length) {
      const left = sendsEnd - Date.now();
      if (left < minSendMs) return;
      const result = await sendEmail(env, emails[next++]!, { timeoutMs: Math.min(emailTimeoutMs, left) });
      if (!result.ok) failures.push(result.error);
      if (unrecorded.length === 0) oldestUnrecorded = Date.now();
      unrecorded.push(result);
      if (Date.now() - oldestUnrecorded >= RECORD_EVERY_MS && sendsEnd - Date.now() > recordMs) recordSoFar();
    }
  };
  await Promise.all(Array.from({ length: Math.min(EMAIL_CONCURRENCY, emails.length) }, worker));
  await recording;
  const rest = [...unrecorded, ...emails.slice(next).map((e): NotAttempted => ({ id: e.id, attempted: false }))];
  if (rest.length > 0) count(await record(rest));
  return { ...totals, attempted: next, failures };
}

export type { Db };
