import http from "node:http";
import { freePort } from "../stack/net.ts";

/**
 * Test-only: a real HTTP e-mail API that records every request and can be told to fail. The
 * daily job's e-mail sender POSTs `{from, to, subject, text}` to it (EMAIL_API_URL). Handler tests
 * run inside workerd, which cannot listen on sockets, so this runs on the Node side (started by
 * scripts/test/email-server-setup.ts) and tests steer it over HTTP:
 *
 * - `POST <url>` (any path not starting with `/__`): an e-mail. Answers 200 `{id}`, or 500 when a
 *   failure rule matches the recipient.
 * - `POST /__control` `{to?: string | string[], fail?: boolean, failNext?: number, status?: number, delayMs?: number}`:
 *   with `to`, the rule applies to those recipients only (tests run in parallel: always pass `to`);
 *   without, to every recipient. `fail: true` fails until `fail: false`; `failNext: n` fails the
 *   next n requests; `status` is the failing HTTP status (default 500); `delayMs` makes it a slow
 *   API: each request is recorded when it arrives and answered that much later (0 to stop).
 * - `GET /__requests?to=a@x&to=b@y` (or `?contains=part-of-the-address`): the recorded requests.
 */

export interface RecordedEmailRequest {
  seq: number;
  received_at: string;
  method: string;
  path: string;
  /** Request headers, lower-case names. */
  headers: Record<string, string>;
  idempotency_key: string | null;
  authorization: string | null;
  /** The parsed JSON body, or null when it was not JSON. */
  body: { from?: string; to?: string; subject?: string; text?: string; [key: string]: unknown } | null;
  raw: string;
  /** What the recorder answered. */
  status: number;
  /** The provider message id it answered with (successful requests only). */
  message_id: string | null;
}

export interface EmailServerControl {
  to?: string | string[];
  fail?: boolean;
  failNext?: number;
  status?: number;
  delayMs?: number;
}

export interface EmailServer {
  /** The e-mail API endpoint: use it as EMAIL_API_URL. */
  url: string;
  /** Base URL of the control endpoints (`/__control`, `/__requests`). */
  controlUrl: string;
  requests(filter?: { to?: string | string[]; contains?: string }): RecordedEmailRequest[];
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
}

const ANYONE = "*";

export async function startEmailServer(): Promise<EmailServer> {
  const recorded: RecordedEmailRequest[] = [];
  const rules = new Map<string, Rule>();
  let seq = 0;

  const recipients = (to: string | string[] | undefined): string[] =>
    to === undefined ? [ANYONE] : (Array.isArray(to) ? to : [to]).map((t) => t.toLowerCase());

  const control = ({ to, fail, failNext, status, delayMs }: EmailServerControl) => {
    for (const key of recipients(to)) {
      const rule = rules.get(key) ?? { failing: false, failNext: 0, status: 500, delayMs: 0 };
      if (fail !== undefined) rule.failing = fail;
      if (failNext !== undefined) rule.failNext = failNext;
      if (status !== undefined) rule.status = status;
      if (delayMs !== undefined) rule.delayMs = delayMs;
      rules.set(key, rule);
    }
  };

  /** The failing status for this recipient, or null to accept. Consumes a failNext. */
  const failureFor = (to: string | undefined): number | null => {
    for (const key of [to?.toLowerCase() ?? "", ANYONE]) {
      const rule = rules.get(key);
      if (!rule) continue;
      if (rule.failNext > 0) {
        rule.failNext--;
        return rule.status;
      }
      if (rule.failing) return rule.status;
    }
    return null;
  };

  const delayFor = (to: string | undefined): number =>
    Math.max(0, ...[to?.toLowerCase() ?? "", ANYONE].map((key) => rules.get(key)?.delayMs ?? 0));

  const select = (filter: { to?: string | string[]; contains?: string } = {}) => {
    const wanted = filter.to === undefined ? null : new Set(recipients(filter.to));
    const contains = filter.contains?.toLowerCase();
    return recorded.filter((r) => {
      const to = String(r.body?.to ?? "").toLowerCase();
      if (wanted && !wanted.has(to)) return false;
      if (contains && !to.includes(contains)) return false;
      return true;
    });
  };

  const server = http.createServer(async (req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
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
      if (url.pathname.startsWith("/__")) return reply(404, { error: "unknown control endpoint" });

      let body: RecordedEmailRequest["body"] = null;
      try {
        body = JSON.parse(raw) as RecordedEmailRequest["body"];
      } catch {
        body = null;
      }
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(", ") : String(v ?? "")]));
      const failure = failureFor(typeof body?.to === "string" ? body.to : undefined);
      const n = ++seq;
      const messageId = failure === null ? `rec_${n}` : null;
      recorded.push({
        seq: n,
        received_at: new Date().toISOString(),
        method: req.method ?? "",
        path: url.pathname,
        headers,
        idempotency_key: headers["idempotency-key"] ?? null,
        authorization: headers["authorization"] ?? null,
        body,
        raw,
        status: failure ?? 200,
        message_id: messageId,
      });
      const delay = delayFor(typeof body?.to === "string" ? body.to : undefined);
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      if (failure !== null) return reply(failure, { error: "the recorder was told to fail" });
      return reply(200, { id: messageId });
    } catch (error) {
      return reply(400, { error: (error as Error).message });
    }
  });

  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/v1/email`,
    controlUrl: base,
    requests: (filter) => select(filter),
    failNext: (n, to) => control({ failNext: n, ...(to === undefined ? {} : { to }) }),
    setFailing: (failing, to) => control({ fail: failing, ...(to === undefined ? {} : { to }) }),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
