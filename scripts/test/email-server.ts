import http from "node:http";
import { freePort } from "../stack/net.ts";

/**
 * Test-only: a real HTTP e-mail API that records every request and can be told to fail or to be
 * slow. The daily job's e-mail sender calls it as a provider (EMAIL_API_URL, EMAIL_BATCH_API_URL).
 * Handler tests run inside workerd, which cannot listen on sockets, so this runs on the Node side
 * (started by scripts/test/email-server-setup.ts, or by the job benchmark) and tests steer it over HTTP:
 *
 * - `POST <url>` (any path not starting with `/__` nor ending in `/batch`): one e-mail
 *   `{from, to, subject, text}`. Answers 200 `{id}`, or the failing status when a rule matches.
 * - `POST <url>/batch`: the batch contract (README, "The daily job"): `{emails: [{from, to,
 *   subject, text, idempotency_key}, ...]}` (1 to `batchMax` of them, 100 unless told otherwise:
 *   more is a 422). Answers 200 `{results: [...]}`, one per e-mail in order: `{id}` when sent,
 *   `{error}` when a failure rule matches that e-mail's recipient; or, when a matching rule says
 *   `wholeCall`, fails the whole call with its status.
 * - `POST /__control` `{to?, fail?, failNext?, status?, delayMs?, wholeCall?, batchMax?, keepBodies?, resetStats?}`:
 *   with `to` (a string or a list), the rule applies to those recipients only (tests run in
 *   parallel: always pass `to`); without, to every recipient. `fail: true` fails until
 *   `fail: false`; `failNext: n` fails the next n e-mails; `status` is the failing HTTP status
 *   (default 500; a 429 comes with Retry-After: 1); `delayMs` makes it a slow API: a call is recorded when it arrives and answered
 *   that much later (the longest delay among its recipients; 0 to stop). `batchMax`,
 *   `keepBodies` (false: keep counts and times, not the texts: the benchmark's 100,000 e-mails) and
 *   `resetStats` apply to the whole server.
 * - `GET /__requests?to=a@x&to=b@y` (or `?contains=part-of-the-address`): the recorded calls with
 *   at least one e-mail to those recipients, each with its e-mails and what was answered per e-mail.
 * - `GET /__stats`: calls, e-mails, calls in flight now and at most so far (since `resetStats`).
 */

export interface RecordedEmail {
  from?: string;
  to?: string;
  subject?: string;
  text?: string;
  idempotency_key?: string | null;
  /** What the recorder answered for this e-mail: 200, or the failing status. */
  status: number;
  /** The provider message id it answered with (sent e-mails only). */
  message_id: string | null;
}

export interface RecordedEmailRequest {
  seq: number;
  /** `single` (EMAIL_API_URL, one e-mail) or `batch` (EMAIL_BATCH_API_URL). */
  kind: "single" | "batch";
  received_at: string;
  /** Milliseconds (Date.now()) when the call arrived and when it was answered (null: not yet). */
  received_ms: number;
  answered_ms: number | null;
  /** Calls in flight when this one arrived, itself included. */
  in_flight_at_arrival: number;
  method: string;
  path: string;
  /** Request headers, lower-case names. */
  headers: Record<string, string>;
  idempotency_key: string | null;
  authorization: string | null;
  /** The parsed JSON body, or null when it was not JSON (or bodies are not kept). */
  body: { from?: string; to?: string; subject?: string; text?: string; emails?: unknown[]; [key: string]: unknown } | null;
  raw: string;
  /** The call's HTTP status. */
  status: number;
  /** Single calls: the provider message id it answered with (successful requests only). */
  message_id: string | null;
  /** The e-mails of the call, with what was answered for each (one for a single call). */
  emails: RecordedEmail[];
}

export interface EmailServerControl {
  to?: string | string[];
  fail?: boolean;
  failNext?: number;
  status?: number;
  delayMs?: number;
  wholeCall?: boolean;
  batchMax?: number;
  keepBodies?: boolean;
  resetStats?: boolean;
}

export interface EmailServerStats {
  calls: number;
  emails: number;
  in_flight: number;
  max_in_flight: number;
}

export interface EmailServer {
  /** The single e-mail endpoint: use it as EMAIL_API_URL. */
  url: string;
  /** The batch endpoint: use it as EMAIL_BATCH_API_URL. */
  batchUrl: string;
  /** Base URL of the control endpoints (`/__control`, `/__requests`, `/__stats`). */
  controlUrl: string;
  requests(filter?: { to?: string | string[]; contains?: string }): RecordedEmailRequest[];
  control(rule: EmailServerControl): void;
  stats(): EmailServerStats;
  /** Fails the next n requests (for these recipients, or anyone). */
  failNext(n: number, to?: string | string[]): void;
  /** Fails every request (for these recipients, or anyone) until called with false. */
  setFailing(failing: boolean, to?: string | string[]): void;
  stop(): Promise<void>;
}

interface Rule {
  failing: boolean;
  failNext: number;
  status: number;
  delayMs: number;
  wholeCall: boolean;
}

const ANYONE = "*";

export async function startEmailServer(): Promise<EmailServer> {
  const recorded: RecordedEmailRequest[] = [];
  const rules = new Map<string, Rule>();
  let seq = 0;
  let messages = 0;
  let batchMax = 100;
  let keepBodies = true;
  const stats: EmailServerStats = { calls: 0, emails: 0, in_flight: 0, max_in_flight: 0 };

  const recipients = (to: string | string[] | undefined): string[] =>
    to === undefined ? [ANYONE] : (Array.isArray(to) ? to : [to]).map((t) => t.toLowerCase());

  const control = ({ to, fail, failNext, status, delayMs, wholeCall, batchMax: max, keepBodies: keep, resetStats }: EmailServerControl) => {
    if (max !== undefined) batchMax = max;
    if (keep !== undefined) keepBodies = keep;
    if (resetStats) Object.assign(stats, { calls: 0, emails: 0, max_in_flight: stats.in_flight });
    if ([fail, failNext, status, delayMs, wholeCall].every((v) => v === undefined)) return;
    for (const key of recipients(to)) {
      const rule = rules.get(key) ?? { failing: false, failNext: 0, status: 500, delayMs: 0, wholeCall: false };
      if (fail !== undefined) rule.failing = fail;
      if (failNext !== undefined) rule.failNext = failNext;
      if (status !== undefined) rule.status = status;
      if (delayMs !== undefined) rule.delayMs = delayMs;
      if (wholeCall !== undefined) rule.wholeCall = wholeCall;
      rules.set(key, rule);
    }
  };

  /** The failing rule for this recipient, or null to accept. Consumes a failNext. */
  const failureFor = (to: string | undefined): Rule | null => {
    for (const key of [to?.toLowerCase() ?? "", ANYONE]) {
      const rule = rules.get(key);
      if (!rule) continue;
      if (rule.failNext > 0) {
        rule.failNext--;
        return rule;
      }
      if (rule.failing) return rule;
    }
    return null;
  };

  const delayFor = (to: string | undefined): number =>
    Math.max(0, ...[to?.toLowerCase() ?? "", ANYONE].map((key) => rules.get(key)?.delayMs ?? 0));

  const select = (filter: { to?: string | string[]; contains?: string } = {}) => {
    const wanted = filter.to === undefined ? null : new Set(recipients(filter.to));
    const contains = filter.contains?.toLowerCase();
    return recorded.filter((r) =>
      r.emails.some((e) => {
        const to = String(e.to ?? "").toLowerCase();
        if (wanted && !wanted.has(to)) return false;
        if (contains && !to.includes(contains)) return false;
        return true;
      }),
    );
  };

  const server = http.createServer(async (req, res) => {
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? "/", "http://recorder.local");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    try {
      if (url.pathname === "/__control" && req.method === "POST") {
        control(JSON.parse(raw || "{}") as EmailServerControl);
        return reply(200, { ok: true });
      }
      if (url.pathname === "/__requests" && req.method === "GET") {
        const to = url.searchParams.getAll("to");
        const contains = url.searchParams.get("contains") ?? undefined;
        return reply(200, { requests: select({ ...(to.length ? { to } : {}), ...(contains ? { contains } : {}) }) });
      }
      if (url.pathname === "/__stats" && req.method === "GET") return reply(200, stats);
      if (url.pathname.startsWith("/__")) return reply(404, { error: "unknown control endpoint" });

      stats.in_flight++;
      stats.max_in_flight = Math.max(stats.max_in_flight, stats.in_flight);
      stats.calls++;
      const inFlightAtArrival = stats.in_flight;
      const receivedMs = Date.now();
      try {
        let body: RecordedEmailRequest["body"] = null;
        try {
          body = JSON.parse(raw) as RecordedEmailRequest["body"];
        } catch {
          body = null;
        }
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(", ") : String(v ?? "")]));
        const batch = url.pathname.endsWith("/batch");
        const entry: RecordedEmailRequest = {
          seq: ++seq,
          kind: batch ? "batch" : "single",
          received_at: new Date(receivedMs).toISOString(),
          received_ms: receivedMs,
          answered_ms: null,
          in_flight_at_arrival: inFlightAtArrival,
          method: req.method ?? "",
          path: url.pathname,
          headers,
          idempotency_key: headers["idempotency-key"] ?? null,
          authorization: headers["authorization"] ?? null,
          body: keepBodies ? body : null,
          raw: keepBodies ? raw : "",
          status: 200,
          message_id: null,
          emails: [],
        };
        recorded.push(entry);
        const incoming = (batch ? (Array.isArray(body?.emails) ? body.emails : null) : body ? [body] : null) as Array<Record<string, unknown>> | null;
        if (!incoming || incoming.length === 0 || (batch && incoming.length > batchMax)) {
          entry.status = incoming && incoming.length > batchMax ? 422 : 400;
          entry.answered_ms = Date.now();
          return reply(entry.status, { error: batch ? `emails must be an array of 1 to ${batchMax} e-mails` : "the body must be a JSON e-mail" });
        }
        stats.emails += incoming.length;
        const outcomes = incoming.map((e) => ({ email: e, failure: failureFor(typeof e.to === "string" ? e.to : undefined) }));
        const wholeCall = outcomes.find((o) => o.failure && (!batch || o.failure.wholeCall))?.failure ?? null;
        for (const { email, failure } of outcomes) {
          const failed = wholeCall ?? failure;
          entry.emails.push({
            ...(keepBodies ? { from: email.from as string, subject: email.subject as string, text: email.text as string } : {}),
            to: email.to as string,
            idempotency_key: batch ? ((email.idempotency_key as string | undefined) ?? null) : entry.idempotency_key,
            status: failed ? failed.status : 200,
            message_id: failed ? null : `rec_${++messages}`,
          });
        }
        const delay = Math.max(...incoming.map((e) => delayFor(typeof e.to === "string" ? e.to : undefined)));
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        entry.answered_ms = Date.now();
        if (wholeCall) {
          entry.status = wholeCall.status;
          return reply(wholeCall.status, { error: "the recorder was told to fail" }, wholeCall.status === 429 ? { "retry-after": "1" } : {});
        }
        if (!batch) {
          entry.message_id = entry.emails[0]!.message_id;
          return reply(200, { id: entry.message_id });
        }
        return reply(200, {
          results: entry.emails.map((e) => (e.message_id ? { id: e.message_id } : { error: `the recorder was told to fail (${e.status})` })),
        });
      } finally {
        stats.in_flight--;
      }
    } catch (error) {
      return reply(400, { error: (error as Error).message });
    }
  });

  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/v1/email`,
    batchUrl: `${base}/v1/email/batch`,
    controlUrl: base,
    requests: (filter) => select(filter),
    control,
    stats: () => ({ ...stats }),
    failNext: (n, to) => control({ failNext: n, ...(to === undefined ? {} : { to }) }),
    setFailing: (failing, to) => control({ fail: failing, ...(to === undefined ? {} : { to }) }),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
