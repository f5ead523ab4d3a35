import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import { invalidateAllOrganizations, invalidateOrganizations } from "./cache.ts";
import type { Database } from "./database.types.ts";
import { ApiError, fromDbError } from "./errors.ts";
import type { Db } from "./supabase.ts";

type Functions = Database["public"]["Functions"];

/** Calls a SQL function through PostgREST; a database error becomes the matching ApiError. */
export async function callRpc<F extends keyof Functions>(db: Db, fn: F, args: Functions[F]["Args"]): Promise<unknown> {
  const { data, error, status } = await (db.rpc as (f: string, a: unknown) => PromiseLike<{ data: unknown; error: unknown; status: number }>)(fn, args);
  if (error) throw fromDbError(error as { code?: string; message?: string; hint?: string }, status);
  return data;
}

/** Which cached statuses a write may change. */
export interface WriteScope<R> {
  /**
   * The organization the write is about, when it is known before the call; null when only the
   * database knows it (a decision on an upgrade request by the request's id).
   */
  organization: string | null;
  /** The organizations a committed result changed (none: nothing to invalidate). */
  changed: (result: R) => readonly string[];
}

/** A write on one organization, which changes its status whenever it commits. */
export const onOrganization = (organizationId: string): WriteScope<unknown> => ({ organization: organizationId, changed: () => [organizationId] });

/**
 * Calls a write RPC, then invalidates the cached status of what it changed - also when its outcome
 * is unknown (the 503 path: the call timed out or the connection failed, and the database may
 * have committed it all the same), before the 503 is answered.
 *
 * When the organization is not known before the call (request-id writes), an unknown outcome
 * bumps the generation of all organizations, which every cache lookup reads in the same MGET.
 * Reading the request's organization first would cost every decision a database round trip to
 * cover a rare failure; this costs nothing until a decision times out, and then one database read
 * per organization read in the next minute.
 *
 * The API roles' statement timeout is shorter than the Worker's (migration
 * 20261122000700_api_statement_timeouts.sql), so a write the Worker gave up on has normally been
 * rolled back by then; the invalidation covers what that cannot: a request that waited for a
 * PostgREST connection, or a connection lost after the commit.
 */
export async function callWriteRpc<F extends keyof Functions, R>(
  c: Context<AppEnv>,
  db: Db,
  fn: F,
  args: Functions[F]["Args"],
  scope: WriteScope<R>,
): Promise<R> {
  let result: R;
  try {
    result = (await callRpc(db, fn, args)) as R;
  } catch (error) {
    if (error instanceof ApiError && error.code === "dependency_unavailable") {
      const log = c.get("log");
      log("warn", "write outcome unknown; invalidating the cached status", { rpc: fn, organization_id: scope.organization ?? "all" });
      if (scope.organization) await invalidateOrganizations(c.env, [scope.organization], log);
      else await invalidateAllOrganizations(c.env, log);
    }
    throw error;
  }
  const changed = scope.changed(result);
  if (changed.length > 0) await invalidateOrganizations(c.env, changed, c.get("log"));
  return result;
}
