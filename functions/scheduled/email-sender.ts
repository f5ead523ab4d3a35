import { config, type Env } from "../_shared/env.ts";
import { log } from "../_shared/log.ts";

export interface OutgoingEmail {
  id: string;
  recipient: string;
  subject: string;
  body_text: string;
}

export type SendResult = { id: string; ok: true; provider_message_id: string } | { id: string; ok: false; error: string };

/** How long one e-mail may take before it is given up (and retried by a later run). */
export const EMAIL_TIMEOUT_MS = 10_000;

/**
 * Sends one e-mail through the HTTP e-mail API configured by EMAIL_API_URL (JSON
 * `{from, to, subject, text}`, bearer EMAIL_API_TOKEN, the outbox id as Idempotency-Key so a
 * provider can drop a repeat after a lost answer). Without EMAIL_API_URL (local default) the
 * message is logged and counts as sent. `timeoutMs` cuts the wait short (the daily job's time left).
 */
export async function sendEmail(env: Env, email: OutgoingEmail, { timeoutMs = EMAIL_TIMEOUT_MS }: { timeoutMs?: number } = {}): Promise<SendResult> {
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
