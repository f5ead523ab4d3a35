import type { LogFn } from "../_shared/app-env.ts";
import { invalidateOrganizations } from "../_shared/cache.ts";
import { config, ConfigError, type Env } from "../_shared/env.ts";
import type { Json } from "../_shared/database.types.ts";
import { callRpc, type RpcArgs, type RpcName, type RpcResult } from "../_shared/rpc.ts";
import { supabaseAsService, type Db } from "../_shared/supabase.ts";
import { batchEnd, CallPacer, claimSize, deliverBatch, deliveryPlan, EMAIL_LEASE_MS, type NotAttempted } from "./email-delivery.ts";
import { EMAIL_TIMEOUT_MS, emailSettings, type Deferred, type EmailEnv, type OutgoingEmail, type SendResult } from "./email-sender.ts";

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
 * but did not try. E-mails go out in calls of one or (with a batch endpoint) many, a bounded
 * number at a time, under the provider's rate limit (email-delivery.ts), and the run stops
 * sending before it would run out of subrequests, so every send it makes can be recorded.
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
  /** Longest wait for one call to the e-mail API (EMAIL_TIMEOUT_MS); tests shorten it. */
  emailTimeoutMs?: number;
  batchSize?: number;
  /**
   * Fan-out calls at a time (JOB_FAN_OUT_CONCURRENCY, default 2): the fan-out is the heaviest write
   * of the run, and two batches at once use two of the database's cores.
   */
  fanOutConcurrency?: number;
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

/**
 * What a batch leaves: more work, none, work that no longer fits before the hard end, or work
 * whose sends could no longer all be recorded within the invocation's subrequests.
 */
type BatchOutcome = "more" | "done" | "out_of_time" | "out_of_subrequests";

export async function runDailyJob(env: EmailEnv, options: DailyJobOptions): Promise<DailyJobSummary> {
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
  const plan = deliveryPlan(env, emailTimeoutMs);
  const { subrequestLimit } = emailSettings(env);
  const fanOutConcurrency = options.fanOutConcurrency ?? Number(env.JOB_FAN_OUT_CONCURRENCY || 2);
  if (!Number.isInteger(fanOutConcurrency) || fanOutConcurrency < 1 || fanOutConcurrency > 8) {
    throw new ConfigError(`the Worker is misconfigured (JOB_FAN_OUT_CONCURRENCY: an integer from 1 to 8, got "${env.JOB_FAN_OUT_CONCURRENCY}")`);
  }
  const db = supabaseAsService(env);
  // Every call the run makes is a subrequest of its invocation (the platform's limit per invocation).
  let subrequests = 0;
  const rpc = <F extends RpcName, T = RpcResult<F>>(fn: F, args: RpcArgs<F>) => {
    subrequests++;
    return callRpc<F, T>(db, fn, args);
  };
  const base = { p_as_of: options.asOf, p_organization_ids: options.organizationIds, p_batch: batch };
  const run = {
    p_run_id: crypto.randomUUID(),
    p_trigger: options.trigger ?? "service",
    p_started_at: new Date(started).toISOString(),
    p_as_of: options.asOf ?? new Date(started).toISOString(),
  };
  // The record of the run is for the health check: failing to write it must not stop the job.
  const record = (fields: { p_finished_at?: string; p_ok?: boolean; p_summary?: Json }) =>
    rpc("record_daily_job_run", { ...run, ...fields }).catch((error: Error) =>
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
    const stopEarly = async (reason: "deadline" | "hard_end" | "subrequests"): Promise<StepSummary> => {
      Object.assign(totals, await leftover?.().catch((error: Error) => ({ leftover_error: error.message })));
      options.log("warn", "daily job deadline reached; the next run continues", {
        step: name,
        reason,
        batches,
        ...totals,
        ms_to_hard_end: hardEnd - Date.now(),
        subrequests,
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
        if (outcome === "out_of_subrequests") return await stopEarly("subrequests");
      }
    } catch (error) {
      options.log("error", "daily job step failed", { step: name, error: (error as Error).message });
      return { ok: false, error: (error as Error).message, duration_ms: Date.now() - stepStarted, batches, ...totals };
    }
  };

  const endLapsed = (step: "expire" | "end_grace") => async (totals: Record<string, unknown>) => {
    const result = (await rpc("run_daily_job_step", { ...base, p_step: step })) as StepResult & { count: number; organization_ids: string[] };
    add(totals, step === "expire" ? "expired" : "graces_ended", result.count);
    // Only after the batch committed: readers must not see a level that just ended.
    subrequests += Math.ceil(result.organization_ids.length / 500);
    await invalidateOrganizations(env, result.organization_ids, options.log);
    return result.more === true ? "more" : "done";
  };

  const expire = await runStep("expire", endLapsed("expire"));
  const endGrace = await runStep("end_grace", endLapsed("end_grace"));
  let noticeCursor: unknown = null;
  const notices = await runStep("expiry_notices", async (totals) => {
    const result = (await rpc("run_daily_job_step", { ...base, p_step: "expiry_notices", p_after: noticeCursor as Json })) as StepResult & {
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
    const result = (await rpc("run_daily_job_step", { ...base, p_step: "level_c_notices", p_after: levelCCursor as Json })) as StepResult & {
      cursor: unknown;
    };
    levelCCursor = result.cursor;
    for (const key of ["evaluated", "at_risk_notices", "eligible_notices", "skipped", "recovered", "no_longer_met", "episodes_ended"]) {
      add(totals, key, result[key] as number);
    }
    return result.more === true ? "more" : "done";
  });
  const pacer = new CallPacer(plan.ratePerSecond);
  let queueEmptied = false;
  const deliver = await runStep("deliver", async (totals) => {
    // 4a: queued work -> in-app notifications + rendered e-mails, until the queue is empty, in
    // JOB_FAN_OUT_CONCURRENCY calls at a time (each batch locks its own queue rows); every call is
    // awaited before a failure fails the step, so none is left running.
    // Once the queue was found empty, later batches of this step do not ask again (every ask is a
    // subrequest, and the claims are sized to the ones left).
    if (!queueEmptied) {
      const outcomes = await Promise.allSettled(
        Array.from({ length: fanOutConcurrency }, async () => {
          for (;;) {
            const fanned = (await rpc("run_daily_job_step", { ...base, p_step: "fan_out" })) as StepResult & { notifications: number; emails: number };
            add(totals, "notifications", fanned.notifications);
            add(totals, "emails_enqueued", fanned.emails);
            if (!fanned.more) return true;
            if (Date.now() > deadline) return false;
          }
        }),
      );
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
      if (failed) throw failed.reason;
      queueEmptied = outcomes.every((o) => o.status === "fulfilled" && o.value);
    }
    // 4b: one claim of due e-mails per call, as many as fit before the hard end if every call took
    // its whole timeout (and within the lease and the subrequests left); the loop in runStep keeps
    // going while claims are full.
    // A pause the provider asked for (429) comes out of the window: the claim waits it out first.
    const window = sendsEnd - Date.now() - pacer.pausedForMs();
    if (window < minSendMs) return "out_of_time";
    const limit = claimSize(plan, { windowMs: window, recordMs, subrequestsLeft: subrequestLimit - subrequests });
    if (limit === 0) return "out_of_subrequests";
    const claimedAt = Date.now();
    const claimed = (await rpc("run_daily_job_step", { ...base, p_step: "claim_emails", p_batch: limit })) as {
      emails: OutgoingEmail[];
      lease_seconds: number;
    };
    if (claimed.emails.length === 0) return "done";
    // Counted by deliverBatch (and below), not by rpc: a batch's subrequests come back in its outcome.
    const record = async (entries: Array<SendResult | NotAttempted | Deferred>) =>
      (await callRpc(db, "complete_email_deliveries", { p_results: entries, p_as_of: options.asOf })) as Record<string, number>;
    // The lease must outlast the batch: a database whose lease is shorter than the one the claim was
    // sized for (a migration out of step with this Worker) gets its e-mails back untried.
    if (claimed.lease_seconds * 1000 < EMAIL_LEASE_MS) {
      subrequests++;
      await record(claimed.emails.map((e): NotAttempted => ({ id: e.id, attempted: false })));
      throw new Error(`the e-mail lease is ${claimed.lease_seconds} s, shorter than the ${EMAIL_LEASE_MS / 1000} s the batches are sized for`);
    }
    // The batch ends by the run's sendsEnd and inside its lease (429 pauses can stretch it past what
    // its size was planned for): what it has not tried by then is released for the next claim.
    const end = batchEnd({ claimedAt, leaseSeconds: claimed.lease_seconds, recordMs, sendsEnd });
    const sent = await deliverBatch(env, claimed.emails, { plan, pacer, sendsEnd: end, minSendMs, recordMs, record });
    subrequests += sent.subrequests;
    for (const key of ["sent", "failed", "dead", "released", "calls", "deferred"] as const) add(totals, key === "calls" ? "provider_calls" : key, sent[key]);
    if (sent.deferred > 0) options.log("warn", "the e-mail provider is over its rate limit (429): e-mails deferred, calls paused", { deferred: sent.deferred });
    if (sent.failures.length > 0) {
      options.log("warn", "some e-mails were not sent; they will be retried", { failed: sent.failures.length, first_error: sent.failures[0] });
      // A failing e-mail API fails the step (and so the run) after this batch is recorded.
      throw new Error(`${sent.failures.length} of ${sent.attempted} e-mails failed: ${sent.failures[0]}`);
    }
    // Released beyond the deferred ones: claimed e-mails the batch had no time left to try (the
    // run's, or only its lease's: then the next claim goes on).
    if (sent.released > sent.deferred) return end < sendsEnd ? "more" : "out_of_time";
    // A full claim may leave more; deferred e-mails (429) were released and go in the next claim,
    // once the provider's Retry-After has passed (the pacer waits; the deadline still applies).
    return claimed.emails.length >= limit || sent.deferred > 0 ? "more" : "done";
  }, async () => {
    // What the next run finds, if there is still time to ask (one call, bounded by recordMs).
    if (hardEnd - Date.now() < recordMs || subrequests >= subrequestLimit - 1) return {};
    const left = (await rpc("run_daily_job_step", { ...base, p_step: "emails_due" })) as { due: number };
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

export type { Db };
