import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import { invalidateAllOrganizations, invalidateOrganizations } from "./cache.ts";
import type { Database, Json } from "./database.types.ts";
import { ApiError, fromDbError } from "./errors.ts";
import { supabaseForRequest, type Db } from "./supabase.ts";

type Functions = Database["public"]["Functions"];
export type RpcName = keyof Functions;
export type RpcArgs<F extends RpcName> = Functions[F]["Args"];
/**
 * What a SQL function returns, from the generated database types: `boolean`, `number`, ... as
 * declared; `Json` for a function that returns jsonb, which a caller narrows to the shape the
 * route declares (that shape is checked against every response in the tests).
 */
export type RpcResult<F extends RpcName> = Functions[F]["Returns"];
/** Only a jsonb result can be narrowed (to T); any other is the generated type. */
type Narrowed<F extends RpcName, T> = Json extends RpcResult<F> ? T : RpcResult<F>;

/** Calls a SQL function through PostgREST as the client's role; a database error becomes the matching ApiError. */
export async function callRpc<F extends RpcName, T = RpcResult<F>>(db: Db, fn: F, args: RpcArgs<F>): Promise<Narrowed<F, T>> {
  const { data, error, status } = await db.rpc(fn, args as never);
  if (error) throw fromDbError(error, status);
  return data as Narrowed<F, T>;
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
 * Calls a write RPC (as this request's caller unless another client is given), then invalidates the cached status of what it changed - also when its outcome
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
 * 20261122000000_platform_contract.sql), so a write the Worker gave up on has normally been
 * rolled back by then; the invalidation covers what that cannot: a request that waited for a
 * PostgREST connection, or a connection lost after the commit.
 */
export async function callWriteRpc<F extends RpcName, T = RpcResult<F>>(
  c: Context<AppEnv>,
  fn: F,
  args: RpcArgs<F>,
  scope: WriteScope<Narrowed<F, T>>,
  db: Db = supabaseForRequest(c),
): Promise<Narrowed<F, T>> {
  let result: Narrowed<F, T>;
  try {
    result = await callRpc<F, T>(db, fn, args);
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
