import type { z } from "@hono/zod-openapi";
import type { Redis } from "@upstash/redis/cloudflare";
import type { Context } from "hono";
import type { AppEnv, LogFn } from "./app-env.ts";
import { config, type Env } from "./env.ts";
import { redisClient } from "./redis.ts";
import type { OrganizationStatus } from "../status-levels/organizations/schemas.ts";

/**
 * The organization status cache (Upstash Redis).
 *
 * What is cached is organization-wide, never "what this caller may see": the full view
 * (`…:full`, what members see) and the public projection (`…:public`) separately. Whether a caller
 * gets the full view is decided per request from their role in the organization, cached per
 * (user, organization) for the same TTL, so a hit needs no database call. A removed member can
 * therefore keep reading for up to one TTL (60 s); writes always re-check in the database.
 * A platform admin's role is never cached: the platform changes `platform_admins` itself and
 * Postgres cannot reach Redis, so an admin's read always asks the database, and an admin who
 * loses the right stops seeing full views on the next read.
 *
 * No view outlives the earliest `valid_until` among its levels: it is stored for at most the time
 * left until then (milliseconds), not at all once that instant has passed, and the instant is
 * checked again on read.
 *
 * Invalidation bumps a generation counter per organization, plus one for all organizations (for
 * a write whose organization is not known, see `invalidateAllOrganizations`). Every cached value
 * carries the generations it was read under, and a read ignores values of older ones, so a slow
 * cache-miss that read the database before a write can never put the old state back.
 */
export interface ViewerRole {
  role: "owner" | "admin" | "manager" | "member" | null;
  platform_admin: boolean;
}

/** What is cached: the organization-wide view, without what depends on the caller. */
export type StatusView = Omit<z.infer<typeof OrganizationStatus>, "can_manage">;

/** The generations a value was read under: `<organization>.<all organizations>`. */
type Generation = string;

interface Cached<T> {
  gen: Generation;
  value: T;
}

/**
 * A cached view is stored as the response body it becomes, so a hit sends it without parsing or
 * serialising it again: `<generation>\n<until>\n<the view's JSON>`, where `until` is the epoch ms
 * from which it must not be used (the earliest valid_until in it), empty when none ends. JSON
 * text never holds a raw line break, so the first two split the header off. (The keys end in
 * `:json`: the entries of the format before, JSON objects under `:full` and `:public`, are never
 * read and age out.)
 */
function encodeView(gen: Generation, until: number | null, body: string): string {
  return `${gen}\n${until ?? ""}\n${body}`;
}

function decodeView(stored: unknown, gen: Generation, now: number): string | null {
  if (typeof stored !== "string") return null;
  const first = stored.indexOf("\n");
  const second = stored.indexOf("\n", first + 1);
  if (first < 0 || second < 0 || stored.slice(0, first) !== gen) return null;
  const until = stored.slice(first + 1, second);
  if (until !== "" && !(Number(until) > now)) return null;
  return stored.slice(second + 1);
}

const keys = (prefix: string, orgId: string) => ({
  gen: `${prefix}:status:${orgId}:gen`,
  allGen: `${prefix}:status:all:gen`,
  full: `${prefix}:status:${orgId}:full:json`,
  public: `${prefix}:status:${orgId}:public:json`,
  role: (userId: string) => `${prefix}:role:${orgId}:${userId}`,
});

export interface CacheLookup {
  /** The view this caller may see (its JSON, as cached), when the cache could answer alone. */
  hit: { body: string; role: ViewerRole } | null;
  /** Generations seen at lookup: a miss stores what it reads under them. null: cache unusable. */
  gen: Generation | null;
}

export function cacheEnabled(c: Context<AppEnv>): boolean {
  return config(c.env).STATUS_CACHE_ENABLED;
}

function cachedRole(stored: unknown, gen: Generation): ViewerRole | null {
  if (typeof stored !== "string") return null;
  try {
    const cached = JSON.parse(stored) as Cached<ViewerRole>;
    return cached.gen === gen && typeof cached.value === "object" && cached.value !== null ? cached.value : null;
  } catch {
    return null;
  }
}

/** The earliest `valid_until` among the view's levels (epoch ms), or null when none ends. */
export function viewExpiresAt(view: Pick<StatusView, "active_levels">): number | null {
  let earliest: number | null = null;
  for (const level of Array.isArray(view.active_levels) ? view.active_levels : []) {
    const until = (level as { valid_until?: unknown }).valid_until;
    if (typeof until !== "string") continue;
    const at = Date.parse(until);
    if (Number.isNaN(at)) return Date.now(); // cannot tell when it ends: treat it as ending now
    if (earliest === null || at < earliest) earliest = at;
  }
  return earliest;
}

/** One Redis round trip (MGET). Redis errors are logged and turn into a miss, never a failure. */
export async function lookupStatus(c: Context<AppEnv>, redis: Redis, orgId: string, userId: string | null): Promise<CacheLookup> {
  const k = keys(config(c.env).CACHE_KEY_PREFIX, orgId);
  try {
    const wanted = userId ? [k.gen, k.allGen, k.full, k.public, k.role(userId)] : [k.gen, k.allGen, k.full, k.public];
    const [orgGen, allGen, full, pub, role] = await redis.mget<unknown[]>(...wanted);
    const gen = `${Number(orgGen ?? 0)}.${Number(allGen ?? 0)}`;
    const viewer: ViewerRole | null = !userId ? { role: null, platform_admin: false } : cachedRole(role, gen);
    if (!viewer || viewer.platform_admin) return { hit: null, gen };
    const body = decodeView(viewer.role !== null ? full : pub, gen, Date.now());
    if (body === null) return { hit: null, gen };
    return { hit: { body, role: viewer }, gen };
  } catch (error) {
    c.get("log")("warn", "cache read failed; reading from the database", { error: (error as Error).message });
    c.get("logFields").cache_error = true;
    return { hit: null, gen: null };
  }
}

/**
 * The two SETs of a store (each only when its time to live is positive) as one command: one
 * round trip, like a pipeline, without building @upstash/redis's Pipeline, whose constructor
 * creates a function per Redis command (160 of them) each time.
 * KEYS: the view's, the role's (when stored). ARGV: the view's value and ms, the role's value and ms.
 */
const storeScript = `if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
return 1`;

/**
 * Stores a view read from the database (its JSON, `body`, as it will be sent) and the caller's
 * role, tagged with the lookup's generations; the view for at most the time left until its
 * earliest `valid_until`. A platform admin's role is not stored (see above).
 */
export async function storeStatus(
  c: Context<AppEnv>,
  redis: Redis,
  orgId: string,
  userId: string | null,
  gen: Generation,
  view: StatusView,
  body: string,
  role: ViewerRole,
): Promise<void> {
  const cfg = config(c.env);
  const k = keys(cfg.CACHE_KEY_PREFIX, orgId);
  const ttlMs = cfg.STATUS_CACHE_TTL_SECONDS * 1000;
  const until = viewExpiresAt(view);
  const viewTtlMs = until === null ? ttlMs : Math.min(ttlMs, until - Date.now());
  const storeRole = userId !== null && !role.platform_admin;
  if (viewTtlMs <= 0 && !storeRole) return;
  try {
    const viewKey = view.visibility === "full" ? k.full : k.public;
    const viewArgs = [encodeView(gen, until, body), Math.max(0, viewTtlMs)];
    if (storeRole) {
      await redis.eval(storeScript, [viewKey, k.role(userId)], [...viewArgs, JSON.stringify({ gen, value: role } satisfies Cached<ViewerRole>), ttlMs]);
    } else {
      await redis.eval(storeScript, [viewKey], viewArgs);
    }
  } catch (error) {
    c.get("log")("warn", "cache write failed", { error: (error as Error).message });
  }
}

/**
 * Makes every cached view and role of every organization stale: for a write whose outcome is
 * unknown (it timed out) and whose organization the Worker does not know (a decision on an
 * upgrade request by its id). The price is one extra key in the lookup's MGET and, after such a
 * rare failure, one database read per organization being read.
 */
export async function invalidateAllOrganizations(env: Env, log: LogFn): Promise<void> {
  const cfg = config(env);
  const k = keys(cfg.CACHE_KEY_PREFIX, "");
  try {
    const p = redisClient(env).pipeline();
    p.incr(k.allGen);
    p.expire(k.allGen, 7 * 24 * 3600);
    await p.exec();
  } catch (error) {
    log("error", "cache invalidation of all organizations failed; cached status may be stale for up to the TTL", {
      ttl_seconds: cfg.STATUS_CACHE_TTL_SECONDS,
      error: (error as Error).message,
    });
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
