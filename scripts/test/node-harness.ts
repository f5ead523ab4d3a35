import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { inject } from "vitest";
import WebSocket from "ws";
import type { Database } from "../../functions/_shared/database.types.ts";
import { makeFixtures, type Exec } from "./fixtures.ts";

/** Node-side test harness: the stack's URLs, superuser SQL, fixtures, and supabase-js clients. */
export const stack = inject("stack");

export const sql = postgres(stack.databaseUrl, { max: 20, onnotice: () => {} });

export const exec: Exec = async <T>(query: string, params: unknown[] = []) =>
  [...(await sql.unsafe(query, params as never[]))] as T[];

export const fixtures = makeFixtures(exec, stack.keys);

/** supabase-js through the gateway, as a browser or the Worker would call it. */
export function supabaseWith(token: string | null) {
  return createClient<Database>(stack.supabaseUrl, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
    // Node 20 has no global WebSocket; supabase-js insists on one even when realtime is unused.
    realtime: { transport: WebSocket as never },
  });
}

/**
 * Runs `fn` in a transaction as an API role, the way PostgREST does (basejump's
 * `authenticate_as`): `set local role` plus the JWT claims. Rolled back afterwards.
 */
export async function asRole<T>(
  who: { role: "anon" } | { role: "service_role" } | { role: "authenticated"; userId: string },
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  const claims = who.role === "authenticated" ? { sub: who.userId, role: who.role, aud: "authenticated" } : { role: who.role };
  let result: T | undefined;
  await sql
    .begin(async (tx) => {
      await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      await tx.unsafe(`set local role ${who.role}`);
      result = await fn(tx);
      throw new Rollback();
    })
    .catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
  return result as T;
}

class Rollback extends Error {}
