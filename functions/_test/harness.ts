import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { makeFixtures, type Exec } from "../../scripts/test/fixtures.ts";
import "../../scripts/test/provided-context.ts";
import type { Env } from "../_shared/env.ts";
import worker from "../index.ts";

/** Handler-test harness: runs inside workerd against the real local stack. */
export const stack = inject("stack");
const sqlServer = inject("sqlServer");

/** The Worker's bindings for tests (the stack's URLs and keys, see scripts/test/vitest.config.ts). */
export const testEnv = env as unknown as Env;

/** Superuser SQL through the test SQL server (workerd has no Postgres driver). */
export const exec: Exec = async <T>(query: string, params: unknown[] = []) => {
  const res = await fetch(sqlServer.url, {
    method: "POST",
    headers: { authorization: `Bearer ${sqlServer.token}`, "content-type": "application/json" },
    body: JSON.stringify({ query, params }),
  });
  const body = (await res.json()) as { rows?: T[]; error?: string };
  if (!res.ok) throw new Error(`SQL failed: ${body.error}\n${query}`);
  return body.rows!;
};

/**
 * A database made slow on purpose: runs `query` (e.g. `select ... for update`) in a transaction
 * that stays open for `ms` after this resolves, so whatever it locked stays locked that long.
 */
export async function holdLocks(query: string, params: unknown[], ms: number): Promise<void> {
  const res = await fetch(sqlServer.url, {
    method: "POST",
    headers: { authorization: `Bearer ${sqlServer.token}`, "content-type": "application/json" },
    body: JSON.stringify({ query, params, holdMs: ms }),
  });
  if (!res.ok) throw new Error(`SQL failed: ${((await res.json()) as { error?: string }).error}\n${query}`);
}

export const fixtures = makeFixtures(exec, stack.keys);

/** A port nothing listens on: a dependency that is down. */
export const deadUrl = "http://127.0.0.1:9";

/** Calls the Worker's fetch handler as the runtime would, with optional binding overrides. */
export async function call(
  path: string,
  init: RequestInit & { token?: string | null; json?: unknown } = {},
  envOverrides: Partial<Env> = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  const request = new Request(`http://status-levels.test${path}`, { ...init, headers, body: body ?? null });
  const ctx = createExecutionContext();
  const response = await worker.fetch(request as never, { ...testEnv, ...envOverrides }, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** Number of PostgREST requests the gateway saw for a token subject (a user id, or a role). */
export async function restRequestsFor(subject: string): Promise<number> {
  const res = await fetch(`${stack.supabaseUrl}/__gateway/stats?subject=${encodeURIComponent(subject)}`);
  return ((await res.json()) as { total: number }).total;
}

/** The response body as JSON (typed loosely: tests assert on it). */
export async function body(res: Response): Promise<Record<string, any>> {
  return (await res.json()) as Record<string, any>;
}

/** A list response: the JSON array it is, and the total from `X-Total-Count`. */
export async function listBody(res: Response): Promise<{ total: number; items: Array<Record<string, any>> }> {
  const items = (await res.json()) as Array<Record<string, any>>;
  if (!Array.isArray(items)) throw new Error(`expected a JSON array, got ${JSON.stringify(items).slice(0, 300)}`);
  return { total: Number(res.headers.get("x-total-count")), items };
}

/** Asserts a problem document with this status and code, and returns it. */
export async function expectProblem(res: Response, status: number, code: string): Promise<Record<string, any>> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${res.status}: ${text}`);
  if (!(res.headers.get("content-type") ?? "").includes("application/problem+json")) {
    throw new Error(`expected a problem+json body, got ${res.headers.get("content-type")}: ${text}`);
  }
  const problem = JSON.parse(text) as Record<string, any>;
  if (problem.code !== code) throw new Error(`expected code ${code}, got ${problem.code}: ${text}`);
  if (problem.status !== status) throw new Error(`problem.status ${problem.status} does not match HTTP ${status}`);
  return problem;
}

/** How many times the JWKS was fetched from the gateway so far. */
export async function jwksFetches(): Promise<number> {
  const res = await fetch(`${stack.supabaseUrl}/__gateway/stats`);
  return ((await res.json()) as { jwks: number }).jwks;
}

export const webhookSecret = "test-webhook-secret-0123456789";

/** Posts a subscription event signed the way the payments service signs it. */
export async function postSignedEvent(
  event: Record<string, unknown> | string,
  { secret = webhookSecret, timestamp = Math.floor(Date.now() / 1000), tamper }: { secret?: string; timestamp?: number; tamper?: (raw: string) => string } = {},
): Promise<Response> {
  const raw = typeof event === "string" ? event : JSON.stringify(event);
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${timestamp}.${raw}`));
  const signature = [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return call("/status-levels/subscriptions/events", {
    method: "POST",
    headers: { "content-type": "application/json", "x-status-levels-timestamp": String(timestamp), "x-status-levels-signature": `v1=${signature}` },
    body: tamper ? tamper(raw) : raw,
  });
}
