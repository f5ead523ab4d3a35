import { PostgrestClient } from "@supabase/postgrest-js";
import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import type { Database } from "./database.types.ts";
import { config, type Env } from "./env.ts";

/**
 * The Worker's database client: PostgREST's own (what `supabase.from()` and `.rpc()` are), not
 * supabase-js. The Worker uses nothing else of Supabase's client, and supabase-js brings along
 * its auth, storage, realtime and functions clients: half the bundle's parsing at a cold start,
 * and on every call an `auth.getSession()` (a lock and a storage read) before the fetch.
 * The requests are the same: `apikey`, the caller's bearer token, `Content-Profile: public`.
 */
export type Db = PostgrestClient<Database>;

/** Time between the last moment a statement may start and the Worker's own time limit, beyond the statement timeout. */
const startMarginMs = 250;

/**
 * fetch with the dependency time limit, so a stuck PostgREST gives a 503 instead of a hang. Each
 * call also says until when the database may start it (`x-status-levels-not-after`, epoch ms):
 * after that, a statement could still be running, and commit, when this call has given up; the
 * write functions refuse it (`private.refuse_expired_request`), so a 503 from a timeout never
 * hides a write that commits later.
 */
function timedFetch(timeoutMs: number, statementTimeoutMs: number): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("x-status-levels-not-after", String(Date.now() + timeoutMs - statementTimeoutMs - startMarginMs));
    return fetch(input, { ...init, headers, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) });
  };
}

/**
 * Clients by (project, key, timeout, bearer), per isolate. A client holds nothing but its settings
 * and calls fetch when used, so one per token can serve that token's requests. Bounded: the least
 * recently used goes first.
 */
const clients = new Map<string, Db>();
const maxClients = 256;

function client(env: Env, bearer: string): Db {
  const cfg = config(env);
  const key = `${cfg.SUPABASE_URL}\n${cfg.SUPABASE_ANON_KEY}\n${cfg.DEPENDENCY_TIMEOUT_MS}\n${cfg.DATABASE_STATEMENT_TIMEOUT_MS}\n${bearer}`;
  const known = clients.get(key);
  if (known) {
    clients.delete(key);
    clients.set(key, known);
    return known;
  }
  const created = new PostgrestClient<Database>(`${cfg.SUPABASE_URL.replace(/\/+$/, "")}/rest/v1`, {
    headers: { apikey: cfg.SUPABASE_ANON_KEY, Authorization: `Bearer ${bearer}`, "X-Client-Info": "status-levels-worker" },
    schema: "public",
    fetch: timedFetch(cfg.DEPENDENCY_TIMEOUT_MS, cfg.DATABASE_STATEMENT_TIMEOUT_MS),
  });
  clients.set(key, created);
  if (clients.size > maxClients) clients.delete(clients.keys().next().value!);
  return created;
}

/** Supabase as the caller: their token goes along, so Postgres RLS decides what they see and do. */
export function supabaseAsCaller(env: Env, token: string | null): Db {
  return client(env, token ?? config(env).SUPABASE_ANON_KEY);
}

/** Supabase as this request's caller (anonymous when no one signed in). */
export function supabaseForRequest(c: Context<AppEnv>): Db {
  return supabaseAsCaller(c.env, c.get("caller")?.token ?? null);
}

/** Supabase as the service role. Only for the daily job and the signed subscription events. */
export function supabaseAsService(env: Env): Db {
  return client(env, config(env).SUPABASE_SERVICE_ROLE_KEY);
}
