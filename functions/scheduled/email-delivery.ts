import { emailSettings, emailsPerCall, hasProvider, isDeferred, sendEmails, type Deferred, type EmailEnv, type OutgoingEmail, type SendResult } from "./email-sender.ts";

/**
 * Delivering a claimed batch of e-mails within the run's budget: calls of `perCall` e-mails,
 * `concurrency` at a time, started no faster than the provider's rate limit; every outcome
 * recorded, what was not tried released.
 */

/** E-mails one claim may lease at most (the SQL step's cap). */
export const EMAIL_CLAIM_MAX = 2000;
/**
 * How long a claim leases its e-mails (private.job_claim_emails, 600 s; the claim's answer says
 * it and a batch refuses to send under a shorter one). A batch is over, its outcomes recorded,
 * well before: claims are sized so that `worstCaseMs` plus the recording call stay under it.
 */
export const EMAIL_LEASE_MS = 600_000;
/** Within a batch, sends are recorded at least this often, so little is unrecorded if the run dies anyway. */
export const RECORD_EVERY_MS = 15_000;

export interface DeliveryPlan {
  /** E-mails per provider call. */
  perCall: number;
  /** Provider calls in flight at once. */
  concurrency: number;
  /** Provider calls started per second at most; 0: no limit. */
  ratePerSecond: number;
  /** The longest one call may take. */
  timeoutMs: number;
  /** Whether sending calls a provider (without one, e-mails are logged: no call, no subrequest). */
  provider: boolean;
}

export function deliveryPlan(env: EmailEnv, timeoutMs: number): DeliveryPlan {
  const s = emailSettings(env);
  // Without a provider nothing is called: no pacing, and "sending" is a log line.
  if (!hasProvider(s)) return { perCall: 1, concurrency: 64, ratePerSecond: 0, timeoutMs, provider: false };
  return { perCall: emailsPerCall(s), concurrency: s.concurrency, ratePerSecond: s.ratePerSecond, timeoutMs, provider: true };
}

/**
 * The longest a batch of `emails` can take if every call takes its whole timeout: the calls go
 * `concurrency` at a time, and their starts are spaced by the rate limit, which at worst adds up
 * on top (a bound, not an estimate).
 */
export function worstCaseMs(plan: DeliveryPlan, emails: number): number {
  const calls = Math.ceil(emails / plan.perCall);
  // The first call starts at once; each later one at most a rate interval after the one before.
  const pacing = plan.ratePerSecond > 0 ? (Math.max(0, calls - 1) * 1000) / plan.ratePerSecond : 0;
  return Math.ceil(calls / plan.concurrency) * plan.timeoutMs + pacing;
}

/** The most e-mails (whole calls, at most EMAIL_CLAIM_MAX) whose worst case fits in `ms`. */
export function emailsThatFit(plan: DeliveryPlan, ms: number): number {
  let calls = 0;
  while ((calls + 1) * plan.perCall <= EMAIL_CLAIM_MAX && worstCaseMs(plan, (calls + 1) * plan.perCall) <= ms) calls++;
  return Math.min(EMAIL_CLAIM_MAX, calls * plan.perCall);
}

/**
 * How many e-mails the next claim may take: as many as fit before the sends must end if every call
 * took its whole timeout (at least one round of calls: their timeouts are cut to the time left),
 * within the lease with the recording call after them, and with a subrequest left for each call
 * and for recording.
 */
export function claimSize(plan: DeliveryPlan, { windowMs, recordMs, subrequestsLeft }: { windowMs: number; recordMs: number; subrequestsLeft: number }): number {
  const oneRound = Math.min(EMAIL_CLAIM_MAX, plan.concurrency * plan.perCall);
  const byTime = Math.max(emailsThatFit(plan, windowMs), oneRound);
  const byLease = emailsThatFit(plan, EMAIL_LEASE_MS - recordMs);
  let emails = Math.min(byTime, byLease);
  // The claim, the calls, a recording every RECORD_EVERY_MS and the last one, then what the run
  // still says at its end (what is left, the run's record).
  const subrequests = (n: number) => 1 + Math.ceil(n / plan.perCall) + Math.ceil(worstCaseMs(plan, n) / RECORD_EVERY_MS) + 1 + 2;
  while (emails > 0 && subrequests(emails) > subrequestsLeft) emails -= plan.perCall;
  return Math.max(0, emails);
}

/**
 * Starts of provider calls, spaced so that no more than `perSecond` start in any second, and none
 * while the provider asked to wait (a 429's Retry-After). Shared by a run's batches.
 */
export class CallPacer {
  private next = 0;
  private pausedUntil = 0;
  constructor(private readonly perSecond: number) {}

  /** No call starts before `ms` from now (the provider said it is over its limit). */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + ms);
  }

  /** How long from now calls are paused for (0: not paused). */
  pausedForMs(): number {
    return Math.max(0, this.pausedUntil - Date.now());
  }

  /**
   * Waits for the next start the limit allows; false, without waiting further, when it would come
   * after `latest`. A slot is taken only when it has come, so a pause that arrives while callers
   * wait (another call's 429) holds them too.
   */
  async slot(latest: number): Promise<boolean> {
    for (;;) {
      const now = Date.now();
      const at = Math.max(now, this.pausedUntil, this.perSecond > 0 ? this.next : 0);
      if (at > latest) return false;
      if (at <= now) {
        if (this.perSecond > 0) this.next = now + 1000 / this.perSecond;
        return true;
      }
      await new Promise((resolve) => setTimeout(resolve, at - now));
    }
  }
}

/**
 * When a claimed batch's calls must be over: by the run's `sendsEnd`, and early enough that its
 * last recording (up to `recordMs`) ends inside the lease the claim took at `claimedAt`; after the
 * lease another run may claim the same e-mails and send them again.
 */
export function batchEnd({ claimedAt, leaseSeconds, recordMs, sendsEnd }: { claimedAt: number; leaseSeconds: number; recordMs: number; sendsEnd: number }): number {
  return Math.min(sendsEnd, claimedAt + leaseSeconds * 1000 - recordMs);
}

/** An e-mail claimed by a batch that ran out of time before trying it: released, no attempt counted. */
export type NotAttempted = { id: string; attempted: false };

export interface BatchOutcome {
  sent: number;
  failed: number;
  dead: number;
  released: number;
  /** E-mails tried (sent or failed). */
  attempted: number;
  /** Provider calls made. */
  calls: number;
  /** E-mails the provider deferred (429): released untried, for the next claim. */
  deferred: number;
  /** Subrequests made: calls and recordings. */
  subrequests: number;
  failures: string[];
}

/**
 * Sends a claimed batch in calls of `plan.perCall` e-mails, `plan.concurrency` at a time, paced
 * by `pacer`, and records the outcome of every e-mail. No call starts with less than `minSendMs`
 * before `sendsEnd`, and each one's timeout is cut to the time left; what was not tried is
 * released. Outcomes are recorded as calls complete (every RECORD_EVERY_MS, while there is time
 * for a recording call) and the rest, releases included, at the end.
 */
export async function deliverBatch(
  env: EmailEnv,
  emails: OutgoingEmail[],
  { plan, pacer, sendsEnd, minSendMs, recordMs, record }: {
    plan: DeliveryPlan;
    pacer: CallPacer;
    sendsEnd: number;
    minSendMs: number;
    recordMs: number;
    record: (entries: Array<SendResult | NotAttempted | Deferred>) => Promise<Record<string, number>>;
  },
): Promise<BatchOutcome> {
  const totals = { sent: 0, failed: 0, dead: 0, released: 0 };
  const count = (outcome: Record<string, number>) => {
    for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += outcome[key] ?? 0;
  };
  const failures: string[] = [];
  let calls = 0;
  let deferred = 0;
  let recordings = 0;
  let unrecorded: Array<SendResult | NotAttempted | Deferred> = [];
  let oldestUnrecorded = 0;
  // One recording call at a time; a chunk whose call failed goes back into the final one.
  let recording: Promise<void> = Promise.resolve();
  const recordSoFar = () => {
    recording = recording.then(async () => {
      const chunk = unrecorded;
      unrecorded = [];
      if (chunk.length === 0) return;
      recordings++;
      try {
        count(await record(chunk));
      } catch {
        unrecorded = [...chunk, ...unrecorded];
      }
    });
  };

  const chunks: OutgoingEmail[][] = [];
  for (let i = 0; i < emails.length; i += plan.perCall) chunks.push(emails.slice(i, i + plan.perCall));
  let next = 0;
  let attempted = 0;
  const worker = async () => {
    while (next < chunks.length) {
      if (!(await pacer.slot(sendsEnd - minSendMs))) return;
      const left = sendsEnd - Date.now();
      if (left < minSendMs || next >= chunks.length) return;
      const chunk = chunks[next++]!;
      if (plan.provider) calls++;
      attempted += chunk.length;
      const results = await sendEmails(env, chunk, { timeoutMs: Math.min(plan.timeoutMs, left) });
      for (const result of results) {
        if (isDeferred(result)) {
          deferred++;
          attempted--;
          pacer.pause(result.retry_after_ms);
        } else if (!result.ok) failures.push(result.error);
      }
      if (unrecorded.length === 0) oldestUnrecorded = Date.now();
      unrecorded.push(...results);
      if (Date.now() - oldestUnrecorded >= RECORD_EVERY_MS && sendsEnd - Date.now() > recordMs) recordSoFar();
    }
  };
  await Promise.all(Array.from({ length: Math.min(plan.concurrency, chunks.length) }, worker));
  await recording;
  const rest = [...unrecorded, ...chunks.slice(next).flat().map((e): NotAttempted => ({ id: e.id, attempted: false }))];
  if (rest.length > 0) {
    recordings++;
    count(await record(rest));
  }
  return { ...totals, attempted, calls, deferred, subrequests: calls + recordings, failures };
}
