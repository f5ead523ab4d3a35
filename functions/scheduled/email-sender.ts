import { z } from "zod";
import { config, ConfigError, type Env } from "../_shared/env.ts";
import { log } from "../_shared/log.ts";

export interface OutgoingEmail {
  id: string;
  recipient: string;
  subject: string;
  body_text: string;
}

export type SendResult = { id: string; ok: true; provider_message_id: string } | { id: string; ok: false; error: string };

/**
 * An e-mail the provider refused to take yet (429: over its rate limit): not an attempt. It is
 * released for the next claim, and no call starts before `retry_after_ms` (the answer's
 * Retry-After, or a second) has passed.
 */
export type Deferred = { id: string; attempted: false; retry_after_ms: number };

export const isDeferred = (r: SendResult | Deferred): r is Deferred => "attempted" in r && r.attempted === false;

/** Retry-After as milliseconds (seconds or an HTTP date), one second when absent or unreadable, at most a minute. */
function retryAfterMs(res: Response): number {
  const header = res.headers.get("retry-after");
  let ms = 1000;
  if (header && /^\d+(\.\d+)?$/.test(header.trim())) ms = Number(header) * 1000;
  else if (header && !Number.isNaN(Date.parse(header))) ms = Date.parse(header) - Date.now();
  return Math.min(60_000, Math.max(100, ms));
}

/** How long one call to the e-mail API may take before it is given up (its e-mails are retried by a later run). */
export const EMAIL_TIMEOUT_MS = 10_000;

/**
 * How the daily job delivers e-mails (README, "The daily job"): the provider's endpoints and how
 * hard it may be pushed. Bindings, all optional:
 * - EMAIL_API_URL: one e-mail per call, JSON `{from, to, subject, text}`.
 * - EMAIL_BATCH_API_URL: the provider's batch endpoint (up to EMAIL_BATCH_SIZE e-mails per call,
 *   results per e-mail; the contract is in the README). When set, every e-mail goes through it.
 * - EMAIL_BATCH_SIZE: e-mails per batch call (default 100, Resend's largest batch).
 * - EMAIL_CONCURRENCY: calls in flight at once (default 6: a Worker invocation has at most six
 *   outgoing connections waiting for an answer; a seventh would wait inside the platform with its
 *   timeout running, so 6 is also the most it accepts).
 * - EMAIL_RATE_LIMIT_PER_SECOND: calls started per second at most (default 5, Resend's default
 *   per account; 0: no limit). Two runs at once each keep to it.
 * - WORKER_SUBREQUEST_LIMIT: subrequests one invocation may make (default 10,000, Workers Paid;
 *   raise it with `[limits] subrequests` in wrangler.toml). Delivery stops short of it, since a
 *   send whose outcome could not be recorded would be sent again.
 * Without either URL (the local default) e-mails are logged and count as sent.
 */
export interface EmailSettings {
  apiUrl?: string;
  batchApiUrl?: string;
  batchSize: number;
  concurrency: number;
  ratePerSecond: number;
  subrequestLimit: number;
}

/** The Worker's bindings, the delivery ones (wrangler.toml's vars) included. */
export type EmailEnv = Env;

const settingsSchema = z.object({
  EMAIL_BATCH_API_URL: z.url().optional(),
  EMAIL_BATCH_SIZE: z.coerce.number().int().min(1).max(1000).default(100),
  EMAIL_CONCURRENCY: z.coerce.number().int().min(1).max(6).default(6),
  // 0 is no limit; below one call every 10 s a claim of even one call would not fit in its lease.
  EMAIL_RATE_LIMIT_PER_SECOND: z.coerce
    .number()
    .max(10_000)
    .refine((v) => v === 0 || v >= 0.1, "0 (no limit) or at least 0.1 calls per second")
    .default(5),
  WORKER_SUBREQUEST_LIMIT: z.coerce.number().int().min(50).max(10_000_000).default(10_000),
});

const parsed = new WeakMap<object, EmailSettings>();

/** Reads and checks the delivery bindings once per env object; names every bad one. */
export function emailSettings(env: EmailEnv): EmailSettings {
  const cached = parsed.get(env);
  if (cached) return cached;
  const given = Object.fromEntries(
    Object.keys(settingsSchema.shape)
      .map((key) => [key, (env as unknown as Record<string, unknown>)[key]])
      .filter(([, v]) => v !== undefined && v !== ""),
  );
  const result = settingsSchema.safeParse(given);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`the Worker is misconfigured (${problems})`);
  }
  const s = result.data;
  const settings: EmailSettings = {
    ...(config(env).EMAIL_API_URL ? { apiUrl: config(env).EMAIL_API_URL } : {}),
    ...(s.EMAIL_BATCH_API_URL ? { batchApiUrl: s.EMAIL_BATCH_API_URL } : {}),
    batchSize: s.EMAIL_BATCH_SIZE,
    concurrency: s.EMAIL_CONCURRENCY,
    ratePerSecond: s.EMAIL_RATE_LIMIT_PER_SECOND,
    subrequestLimit: s.WORKER_SUBREQUEST_LIMIT,
  };
  parsed.set(env, settings);
  return settings;
}

/** E-mails per provider call: the batch size with a batch endpoint, else one. */
export const emailsPerCall = (s: EmailSettings): number => (s.batchApiUrl ? s.batchSize : 1);

/** Whether e-mails go to a provider at all (without one they are logged: no call, no limit applies). */
export const hasProvider = (s: EmailSettings): boolean => Boolean(s.batchApiUrl ?? s.apiUrl);

/**
 * One call to the e-mail API for these e-mails (one of them, or up to the batch size with the batch
 * endpoint), with the outcome of each. Never throws: a call that fails fails each of its e-mails,
 * which later runs retry. `timeoutMs` cuts the wait short (the daily job's time left).
 */
export async function sendEmails(env: EmailEnv, emails: OutgoingEmail[], { timeoutMs = EMAIL_TIMEOUT_MS }: { timeoutMs?: number } = {}): Promise<Array<SendResult | Deferred>> {
  const settings = emailSettings(env);
  if (settings.batchApiUrl) return sendBatch(env, settings.batchApiUrl, emails, timeoutMs);
  return Promise.all(emails.map((email) => sendOne(env, email, timeoutMs)));
}

/**
 * Sends one e-mail through EMAIL_API_URL (JSON `{from, to, subject, text}`, bearer
 * EMAIL_API_TOKEN, the outbox id as Idempotency-Key so a provider can drop a repeat after a lost
 * answer). Without EMAIL_API_URL the message is logged and counts as sent.
 */
async function sendOne(env: Env, email: OutgoingEmail, timeoutMs: number): Promise<SendResult | Deferred> {
  const cfg = config(env);
  if (!cfg.EMAIL_API_URL) {
    log("info", "email (no EMAIL_API_URL: logged, not sent)", { outbox_id: email.id, to: email.recipient, subject: email.subject, text: email.body_text });
    return { id: email.id, ok: true, provider_message_id: `logged:${email.id}` };
  }
  try {
    const res = await fetch(cfg.EMAIL_API_URL, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": email.id,
        ...(cfg.EMAIL_API_TOKEN ? { authorization: `Bearer ${cfg.EMAIL_API_TOKEN}` } : {}),
      },
      body: JSON.stringify({ from: cfg.EMAIL_FROM, to: email.recipient, subject: email.subject, text: email.body_text }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status === 429) return { id: email.id, attempted: false, retry_after_ms: retryAfterMs(res) };
    if (!res.ok) return { id: email.id, ok: false, error: `HTTP ${res.status}: ${text.slice(0, 300)}` };
    let providerId = "";
    try {
      providerId = String((JSON.parse(text) as { id?: unknown }).id ?? "");
    } catch {
      // a 2xx without a JSON id is still accepted
    }
    return { id: email.id, ok: true, provider_message_id: providerId || `accepted:${email.id}` };
  } catch (error) {
    return { id: email.id, ok: false, error: (error as Error).message || String(error) };
  }
}

const batchAnswer = z.object({
  results: z.array(z.object({ id: z.string().optional(), error: z.unknown().optional() })),
});

/**
 * The outcome of each e-mail from a 2xx batch answer's text, or null when it is not one result per
 * e-mail. A result is a send only with a non-empty `id` and no `error` (a result with both, or
 * with neither, fails its e-mail: retried with backoff rather than taken as sent).
 */
export function readBatchAnswer(text: string, emails: Array<{ id: string }>): SendResult[] | null {
  let answer: z.infer<typeof batchAnswer>;
  try {
    answer = batchAnswer.parse(JSON.parse(text));
  } catch {
    return null;
  }
  if (answer.results.length !== emails.length) return null;
  return emails.map((e, i): SendResult => {
    const r = answer.results[i]!;
    if (r.error !== undefined) return { id: e.id, ok: false, error: `provider: ${String(typeof r.error === "string" ? r.error : JSON.stringify(r.error)).slice(0, 300)}` };
    if (!r.id) return { id: e.id, ok: false, error: "provider: a result without an id or an error" };
    return { id: e.id, ok: true, provider_message_id: r.id };
  });
}

/**
 * The batch contract: `POST EMAIL_BATCH_API_URL` `{emails: [{from, to, subject, text,
 * idempotency_key}]}` (the outbox id as each e-mail's key, a digest of them as the call's
 * Idempotency-Key), answered 2xx `{results: [{id} | {error}]}`, one per e-mail in order. An
 * `{error}` fails that e-mail alone; a 429 defers every e-mail of the call (no attempt counted);
 * any other answer (non-2xx, a timeout, results that do not match) fails every e-mail of the call.
 */
async function sendBatch(env: Env, url: string, emails: OutgoingEmail[], timeoutMs: number): Promise<Array<SendResult | Deferred>> {
  const cfg = config(env);
  const failAll = (error: string): SendResult[] => emails.map((e) => ({ id: e.id, ok: false, error }));
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": await batchKey(emails),
        ...(cfg.EMAIL_API_TOKEN ? { authorization: `Bearer ${cfg.EMAIL_API_TOKEN}` } : {}),
      },
      body: JSON.stringify({
        emails: emails.map((e) => ({ from: cfg.EMAIL_FROM, to: e.recipient, subject: e.subject, text: e.body_text, idempotency_key: e.id })),
      }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status === 429) {
      const wait = retryAfterMs(res);
      return emails.map((e): Deferred => ({ id: e.id, attempted: false, retry_after_ms: wait }));
    }
    if (!res.ok) return failAll(`HTTP ${res.status}: ${text.slice(0, 300)}`);
    const results = readBatchAnswer(text, emails);
    return results ?? failAll(`HTTP ${res.status} without one result per e-mail: ${text.slice(0, 300)}`);
  } catch (error) {
    return failAll((error as Error).message || String(error));
  }
}

/** The same e-mails in the same call get the same key (a retried call the provider may drop). */
async function batchKey(emails: OutgoingEmail[]): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(emails.map((e) => e.id).join(",")));
  return `batch-${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
