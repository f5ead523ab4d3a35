import type { Database } from "./database.types.ts";
import { fromDbError } from "./errors.ts";
import type { Db } from "./supabase.ts";

type Functions = Database["public"]["Functions"];

/** Calls a SQL function through PostgREST; a database error becomes the matching ApiError. */
export async function callRpc<F extends keyof Functions>(db: Db, fn: F, args: Functions[F]["Args"]): Promise<unknown> {
  const { data, error, status } = await (db.rpc as (f: string, a: unknown) => PromiseLike<{ data: unknown; error: unknown; status: number }>)(fn, args);
  if (error) throw fromDbError(error as { code?: string; message?: string; hint?: string }, status);
  return data;
}
