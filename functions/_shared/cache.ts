import type { Redis } from "@upstash/redis/cloudflare";
import type { Context } from "hono";
import type { AppEnv, LogFn } from "./app-env.ts";
import { config, type Env } from "./env.ts";
import { redisClient } from "./redis.ts";

/**
 * The organization status cache (Upstash Redis).
 *
 * What is cached is organization-wide, never "what this caller may see": the full view
 * (`…:full`, what members see) and the public projection (`…:public`) separately. Whether a caller
 * gets the full view is decided per request from their role in the organization, cached per
 * (user, organization) for the same TTL, so a hit needs no database call. A removed member can
 * therefore keep reading for up to one TTL (60 s); writes always re-check in the database.
 *
 * Invalidation bumps a generation counter per organization. Every cached value carries the
 * generation it was read under, and a read ignores values of an older generation, so a slow
 * cache-miss that read the database before a write can never put the old state back.
 */

export interface ViewerRole {
  role: "owner" | "admin" | "manager" | "member" | null;
  platform_admin: boolean;
}

export type StatusView = Record<string, unknown> & { visibility: "full" | "public" };

interface Cached<T> {
  gen: number;
  value: T;
}

const keys = (prefix: string, orgId: string) => ({
  gen: `${prefix}:status:${orgId}:gen`,
  full: `${prefix}:status:${orgId}:full`,
  public: `${prefix}:status:${orgId}:public`,
  role: (userId: string) => `${prefix}:role:${orgId}:${userId}`,
});

export interface CacheLookup {
  /** The view this caller may see, when the cache could answer alone. */
  hit: { view: StatusView; role: ViewerRole } | null;
  /** Generation seen at lookup: a miss stores what it reads under it. null: cache unusable. */
  gen: number | null;
}

export function cacheEnabled(c: Context<AppEnv>): boolean {
  return config(c.env).STATUS_CACHE_ENABLED;
}

function isCached<T>(value: unknown, gen: number): value is Cached<T> {
  return typeof value === "object" && value !== null && (value as Cached<T>).gen === gen && "value" in value;
}

/** One Redis round trip (MGET). Redis errors are logged and turn into a miss, never a failure. */
export async function lookupStatus(c: Context<AppEnv>, redis: Redis, orgId: string, userId: string | null): Promise<CacheLookup> {
  const k = keys(config(c.env).CACHE_KEY_PREFIX, orgId);
  try {
    const wanted = userId ? [k.gen, k.full, k.public, k.role(userId)] : [k.gen, k.full, k.public];
    const [genValue, full, pub, role] = await redis.mget<unknown[]>(...wanted);
    const gen = Number(genValue ?? 0);
    const viewer: ViewerRole | null = !userId
      ? { role: null, platform_admin: false }
      : isCached<ViewerRole>(role, gen)
        ? role.value
        : null;
    if (!viewer) return { hit: null, gen };
    const needsFull = viewer.role !== null || viewer.platform_admin;
    const entry = needsFull ? full : pub;
    if (!isCached<StatusView>(entry, gen)) return { hit: null, gen };
    return { hit: { view: entry.value, role: viewer }, gen };
  } catch (error) {
    c.get("log")("warn", "cache read failed; reading from the database", { error: (error as Error).message });
    c.get("logFields").cache_error = true;
    return { hit: null, gen: null };
  }
}

/** Stores a view read from the database (and the caller's role), tagged with the lookup's generation. */
export async function storeStatus(
  c: Context<AppEnv>,
  redis: Redis,
  orgId: string,
  userId: string | null,
  gen: number,
  view: StatusView,
  role: ViewerRole,
): Promise<void> {
  const cfg = config(c.env);
  const k = keys(cfg.CACHE_KEY_PREFIX, orgId);
  const ttl = cfg.STATUS_CACHE_TTL_SECONDS;
  try {
    const p = redis.pipeline();
    p.set(view.visibility === "full" ? k.full : k.public, { gen, value: view } satisfies Cached<StatusView>, { ex: ttl });
    if (userId) p.set(k.role(userId), { gen, value: role } satisfies Cached<ViewerRole>, { ex: ttl });
    await p.exec();
  } catch (error) {
    c.get("log")("warn", "cache write failed", { error: (error as Error).message });
  }
}

/**
 * Makes every cached view and role of these organizations stale. Called after a write committed
 * (handlers, the daily job, subscription events). If Redis is down the entries age out within one
 * TTL; the failure is logged as an error, never raised: the write itself has succeeded.
 */
export async function invalidateOrganizations(env: Env, orgIds: readonly string[], log: LogFn): Promise<void> {
  if (orgIds.length === 0) return;
  const cfg = config(env);
  const redis = redisClient(env);
  try {
    for (let i = 0; i < orgIds.length; i += 500) {
      const p = redis.pipeline();
      for (const orgId of orgIds.slice(i, i + 500)) {
        const k = keys(cfg.CACHE_KEY_PREFIX, orgId);
        p.incr(k.gen);
        p.expire(k.gen, 7 * 24 * 3600);
      }
      await p.exec();
    }
  } catch (error) {
    log("error", "cache invalidation failed; cached status may be stale for up to the TTL", {
      organizations: orgIds.length,
      first_organization_id: orgIds[0],
      ttl_seconds: cfg.STATUS_CACHE_TTL_SECONDS,
      error: (error as Error).message,
    });
  }
}
