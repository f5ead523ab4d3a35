import type { LogFn } from "../_shared/app-env.ts";
import { invalidateOrganizations } from "../_shared/cache.ts";
import type { Env } from "../_shared/env.ts";
import type { Json } from "../_shared/database.types.ts";
import { callRpc } from "../_shared/rpc.ts";
import { supabaseAsService, type Db } from "../_shared/supabase.ts";
import { sendEmail, type OutgoingEmail, type SendResult } from "./email-sender.ts";

/**
 * The daily job: expire lapsed levels, end grace periods, enqueue expiry notices, deliver
 * notifications (in-app rows and e-mails). Each step runs in batches of set-based SQL until done
 * or until the deadline (the rest is picked up by the next run). Steps are independent: one
 * failing does not stop the others; after all ran, the run fails if any step failed.
 */
export interface DailyJobOptions {
  /** Act as of this time instead of now (service role only: backfills, tests). */
  asOf?: string;
  /** Limit the run to these organizations. */
  organizationIds?: string[];
  /** Wall-clock budget; whatever is left is done by the next run. */
  deadlineMs?: number;
  batchSize?: number;
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
  steps: Record<"expire" | "end_grace" | "expiry_notices" | "deliver", StepSummary>;
}

export class DailyJobFailed extends Error {
  constructor(readonly summary: DailyJobSummary) {
    super(`daily job failed: ${Object.entries(summary.steps).filter(([, s]) => !s.ok).map(([name, s]) => `${name} (${s.error})`).join("; ")}`);
  }
}

type StepResult = Record<string, unknown> & { more?: boolean };

export async function runDailyJob(env: Env, options: DailyJobOptions): Promise<DailyJobSummary> {
  const started = Date.now();
  const deadline = started + (options.deadlineMs ?? 10 * 60_000);
  const batch = options.batchSize ?? 5000;
  const db = supabaseAsService(env);
  const base = { p_as_of: options.asOf, p_organization_ids: options.organizationIds, p_batch: batch };

  /** Runs batches of a step until it reports no more work (or the deadline passes), adding up the counts. */
  const runStep = async (name: string, body: (totals: Record<string, unknown>) => Promise<boolean>): Promise<StepSummary> => {
    const stepStarted = Date.now();
    const totals: Record<string, unknown> = {};
    let batches = 0;
    try {
      let more = true;
      while (more) {
        if (Date.now() > deadline) {
          options.log("warn", "daily job deadline reached; the next run continues", { step: name });
          return { ok: true, incomplete: true, duration_ms: Date.now() - stepStarted, batches, ...totals };
        }
        more = await body(totals);
        batches++;
      }
      return { ok: true, duration_ms: Date.now() - stepStarted, batches, ...totals };
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
    return result.more === true;
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
    return result.more === true;
  });
  const deliver = await runStep("deliver", async (totals) => {
    // 4a: queued work -> in-app notifications + rendered e-mails, until the queue is empty.
    for (;;) {
      const fanned = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "fan_out" })) as StepResult & { notifications: number; emails: number };
      add(totals, "notifications", fanned.notifications);
      add(totals, "emails_enqueued", fanned.emails);
      if (!fanned.more || Date.now() > deadline) break;
    }
    // 4b: one batch of due e-mails per call; the loop in runStep keeps going while batches are full.
    const claimed = (await callRpc(db, "run_daily_job_step", { ...base, p_step: "claim_emails", p_batch: 200 })) as { emails: OutgoingEmail[] };
    if (claimed.emails.length === 0) return false;
    const results = await sendAll(env, claimed.emails, 8);
    const outcome = (await callRpc(db, "complete_email_deliveries", { p_results: results, p_as_of: options.asOf })) as Record<string, number>;
    add(totals, "sent", outcome.sent ?? 0);
    add(totals, "failed", outcome.failed ?? 0);
    add(totals, "dead", outcome.dead ?? 0);
    const failures = results.filter((r): r is Extract<SendResult, { ok: false }> => !r.ok);
    if (failures.length > 0) {
      options.log("warn", "some e-mails were not sent; they will be retried", { failed: failures.length, first_error: failures[0]!.error });
      // A failing e-mail API fails the step (and so the run) after this batch is recorded.
      throw new Error(`${failures.length} of ${results.length} e-mails failed: ${failures[0]!.error}`);
    }
    return claimed.emails.length >= 200;
  });

  const summary: DailyJobSummary = {
    ok: [expire, endGrace, notices, deliver].every((s) => s.ok),
    as_of: options.asOf ?? new Date(started).toISOString(),
    duration_ms: Date.now() - started,
    steps: { expire, end_grace: endGrace, expiry_notices: notices, deliver },
  };
  options.log(summary.ok ? "info" : "error", "daily job summary", summary as unknown as Record<string, unknown>);
  return summary;
}

function add(totals: Record<string, unknown>, key: string, n: number): void {
  totals[key] = ((totals[key] as number | undefined) ?? 0) + (n ?? 0);
}

async function sendAll(env: Env, emails: OutgoingEmail[], concurrency: number): Promise<SendResult[]> {
  const results: SendResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < emails.length) {
      const email = emails[next++]!;
      results.push(await sendEmail(env, email));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, emails.length) }, worker));
  return results;
}

export type { Db };
