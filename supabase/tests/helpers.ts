import { expect } from "vitest";
import type postgres from "postgres";
import type { Database } from "../../functions/_shared/database.types.ts";
import { exec, sql, stack, supabaseWith } from "../../scripts/test/node-harness.ts";

/**
 * Shared helpers of the database tests: calling the SQL functions through the real PostgREST
 * (as a browser or the Worker would), committed transactions as an API role, and reading back
 * what a change wrote (as the superuser, so RLS does not hide anything).
 */

type Functions = Database["public"]["Functions"];
export type RpcName = keyof Functions;

export interface RpcError {
  code: string;
  message: string;
  hint: string | null;
  details: string | null;
}

export interface RpcResult<T> {
  data: T | null;
  error: RpcError | null;
  status: number;
}

/** The service-role key: the "system" (daily job, subscription handler) as PostgREST sees it. */
export const SERVICE_ROLE = stack.serviceRoleKey;

const clients = new Map<string, ReturnType<typeof supabaseWith>>();

/** A supabase-js client per token (null: anonymous), reused across calls. */
export function api(token: string | null): ReturnType<typeof supabaseWith> {
  const key = token ?? "";
  let client = clients.get(key);
  if (!client) {
    client = supabaseWith(token);
    clients.set(key, client);
  }
  return client;
}

/** Calls a SQL function through the gateway and PostgREST with the given token. */
export async function rpc<T = Record<string, any>>(
  token: string | null,
  fn: RpcName,
  args: Record<string, unknown> = {},
): Promise<RpcResult<T>> {
  const client = api(token);
  const call = client.rpc.bind(client) as unknown as (
    f: string,
    a: unknown,
  ) => PromiseLike<{ data: unknown; error: { code?: string; message?: string; hint?: string | null; details?: string | null } | null; status: number }>;
  const res = await call(fn, args);
  return {
    data: (res.data ?? null) as T | null,
    error: res.error
      ? { code: res.error.code ?? "", message: res.error.message ?? "", hint: res.error.hint ?? null, details: res.error.details ?? null }
      : null,
    status: res.status,
  };
}

/** The call must succeed; returns its data. */
export async function rpcOk<T = Record<string, any>>(token: string | null, fn: RpcName, args: Record<string, unknown> = {}): Promise<T> {
  const res = await rpc<T>(token, fn, args);
  if (res.error) {
    throw new Error(`${fn} failed: HTTP ${res.status} ${res.error.code} ${res.error.message}`);
  }
  expect(res.status).toBeLessThan(300);
  return res.data as T;
}

/** The stable error of our SQL: HTTP status xxx, SQLSTATE PTxxx, message "<code>: <text>". */
export function expectApiError(res: RpcResult<unknown>, status: number, code: string): void {
  expect(
    { status: res.status, sqlstate: res.error?.code, code: res.error?.message.split(":")[0] },
    `expected ${status} ${code}, got ${JSON.stringify(res.error ?? res.data)}`,
  ).toEqual({ status, sqlstate: `PT${status}`, code });
  expect(res.error!.message).toMatch(new RegExp(`^${code}: \\S`));
  expect(res.data).toBeNull();
}

/** The same for a call made over postgres.js (the error is a PostgresError). */
export async function expectSqlError(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${status} ${code}, but the statement succeeded`).toBeDefined();
  const err = caught as postgres.PostgresError;
  expect({ sqlstate: err.code, code: err.message.split(":")[0] }, err.message).toEqual({ sqlstate: `PT${status}`, code });
}

export type Who = { role: "anon" } | { role: "service_role" } | { role: "authenticated"; userId: string } | { role: "system" };

/**
 * Runs fn in a transaction that commits, as an API role the way PostgREST does (`set local role`
 * plus the JWT claims); "system" is a plain superuser session without claims.
 */
export async function committedAs<T>(who: Who, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    if (who.role !== "system") {
      const claims = who.role === "authenticated" ? { sub: who.userId, role: who.role, aud: "authenticated" } : { role: who.role };
      await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      await tx.unsafe(`set local role ${who.role}`);
    }
    return fn(tx);
  })) as T;
}

export interface HistoryRow {
  id: string;
  organization_id: string;
  status_level_id: string | null;
  upgrade_request_id: string | null;
  level: string;
  action: string;
  actor_id: string | null;
  reason: string | null;
  notes: string | null;
  old_valid_until: Date | null;
  new_valid_until: Date | null;
  subscription_event_id: string | null;
  created_at: Date;
}

export interface LevelRow {
  id: string;
  organization_id: string;
  level: "A" | "B" | "C";
  is_active: boolean;
  valid_from: Date;
  valid_until: Date | null;
  granted_by: string | null;
  granted_at: Date;
  subscription_id: string | null;
  notes: string | null;
  last_verified_at: Date | null;
  revoked_by: string | null;
  revoked_at: Date | null;
  revoke_reason: string | null;
  ended_at: Date | null;
  end_reason: string | null;
  updated_at: Date;
}

export interface RequestRow {
  id: string;
  organization_id: string;
  target_level: "B" | "C";
  status: "pending" | "approved" | "rejected" | "cancelled";
  message: string | null;
  evidence_urls: string[];
  requested_by: string;
  created_at: Date;
  decided_by: string | null;
  decided_at: Date | null;
  decision_note: string | null;
  granted_status_level_id: string | null;
}

/** Every history row of the organization, oldest first. */
export const historyOf = (orgId: string): Promise<HistoryRow[]> =>
  exec<HistoryRow>("select * from public.status_level_history where organization_id = $1 order by id", [orgId]);

/** Every level row of the organization (active or not), oldest first. */
export const levelsOf = (orgId: string): Promise<LevelRow[]> =>
  exec<LevelRow>("select * from public.organization_status_levels where organization_id = $1 order by granted_at, id", [orgId]);

export const levelById = async (id: string): Promise<LevelRow> => {
  const [row] = await exec<LevelRow>("select * from public.organization_status_levels where id = $1", [id]);
  if (!row) throw new Error(`no level row ${id}`);
  return row;
};

export const requestsOf = (orgId: string): Promise<RequestRow[]> =>
  exec<RequestRow>("select * from public.upgrade_requests where organization_id = $1 order by created_at, id", [orgId]);

export const requestById = async (id: string): Promise<RequestRow> => {
  const [row] = await exec<RequestRow>("select * from public.upgrade_requests where id = $1", [id]);
  if (!row) throw new Error(`no upgrade request ${id}`);
  return row;
};

/** The database's clock (the functions compare against it, not against the test's). */
export async function dbNow(): Promise<Date> {
  const [row] = await exec<{ now: Date }>("select now() as now");
  return row!.now;
}

export const DAY = 86_400_000;
export const HOUR = 3_600_000;

/** A time relative to the database clock. */
export async function fromNow(ms: number): Promise<Date> {
  return new Date((await dbNow()).getTime() + ms);
}

/** Arranges an active level B directly, valid until `validUntil` (no history). */
export async function arrangeB(orgId: string, validUntil: Date): Promise<string> {
  const [row] = await exec<{ id: string }>(
    `insert into public.organization_status_levels (organization_id, level, valid_from, valid_until, last_verified_at)
     values ($1, 'B', now() - interval '30 days', $2, now() - interval '30 days') returning id`,
    [orgId, validUntil.toISOString()],
  );
  return row!.id;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
