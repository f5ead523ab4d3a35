import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import type { Database } from "./database.types.ts";
import { config, type Env } from "./env.ts";

export type Db = SupabaseClient<Database>;

/** fetch with the dependency time limit, so a stuck PostgREST gives a 503 instead of a hang. */
function timedFetch(timeoutMs: number): typeof fetch {
  return (input, init) => fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) });
}

function client(env: Env, bearer: string): Db {
  const cfg = config(env);
  return createClient<Database>(cfg.SUPABASE_URL, cfg.SUPABASE_ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { headers: { Authorization: `Bearer ${bearer}` }, fetch: timedFetch(cfg.DEPENDENCY_TIMEOUT_MS) },
  });
}

/** Supabase as the caller: their token goes along, so Postgres RLS decides what they see and do. */
export function supabaseAsCaller(env: Env, token: string | null): Db {
  return client(env, token ?? config(env).SUPABASE_ANON_KEY);
}

/** Supabase as the service role. Only for the daily job and the signed subscription events. */
export function supabaseAsService(env: Env): Db {
  return client(env, config(env).SUPABASE_SERVICE_ROLE_KEY);
}
