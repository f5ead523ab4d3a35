import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { OrganizationStatus } from "../status-levels/organizations/schemas.ts";
import type { AppEnv } from "./app-env.ts";
import { cacheEnabled, lookupStatus, storeStatus, type StatusView, type ViewerRole } from "./cache.ts";
import { redisClient } from "./redis.ts";
import { callRpc } from "./rpc.ts";
import { supabaseForRequest } from "./supabase.ts";

/** The status view as this caller may see it, with `can_manage` computed for them. */
export type CallerStatusView = z.infer<typeof OrganizationStatus>;

/** What `get_organization_status` answers: the view, plus who the caller is in the organization. */
type DatabaseStatusView = CallerStatusView & { viewer: ViewerRole };

/** The organization-wide view as JSON (cached or just serialised), the parsed view when at hand, and the caller's role. */
interface LoadedStatus {
  body: string;
  view: StatusView | null;
  role: ViewerRole;
}

const canManage = (role: ViewerRole) => role.role === "owner" || role.role === "admin" || role.platform_admin;

/**
 * Reads an organization's status: from the cache when it can answer alone (no database call at
 * all), otherwise with one `get_organization_status` call as the caller, whose result is cached
 * after the response is sent.
 */
async function loadStatus(c: Context<AppEnv>, orgId: string): Promise<LoadedStatus> {
  const caller = c.get("caller");
  const userId = caller?.userId ?? null;
  const useCache = cacheEnabled(c);
  const redis = useCache ? redisClient(c.env) : null;
  const lookup = redis ? await lookupStatus(c, redis, orgId, userId) : null;
  if (lookup?.hit) {
    c.get("logFields").cache = "hit";
    c.header("x-cache", "hit");
    return { body: lookup.hit.body, view: null, role: lookup.hit.role };
  }
  const { viewer, can_manage: _callerSpecific, ...orgWide } = await callRpc<"get_organization_status", DatabaseStatusView>(
    supabaseForRequest(c),
    "get_organization_status",
    { p_organization_id: orgId },
  );
  const cacheState = useCache ? "miss" : "bypass";
  c.get("logFields").cache = cacheState;
  c.header("x-cache", cacheState);
  const body = JSON.stringify(orgWide);
  if (redis && lookup && lookup.gen !== null) afterResponse(c, storeStatus(c, redis, orgId, userId, lookup.gen, orgWide, body, viewer));
  return { body, view: orgWide, role: viewer };
}

/** The status view as this caller may see it, as an object (the badge, the eligibility). */
export async function loadOrganizationStatus(c: Context<AppEnv>, orgId: string): Promise<CallerStatusView> {
  const { body, view, role } = await loadStatus(c, orgId);
  return { ...(view ?? (JSON.parse(body) as StatusView)), can_manage: canManage(role) };
}

/**
 * The status view as this caller may see it, as the JSON the endpoint sends: the cached body as
 * it is, with `can_manage` appended (the one caller-specific member; the same text
 * `JSON.stringify({ ...view, can_manage })` gives). A hit neither parses nor serialises the view.
 */
export async function loadOrganizationStatusJson(c: Context<AppEnv>, orgId: string): Promise<string> {
  const { body, role } = await loadStatus(c, orgId);
  const member = `"can_manage":${canManage(role)}}`;
  return body === "{}" ? `{${member}` : `${body.slice(0, -1)},${member}`;
}

/** Work that must not delay the response (cache fills): waitUntil where the runtime offers it. */
export function afterResponse(c: Context<AppEnv>, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    void work; // no execution context (e.g. app.request without one): let it finish on its own
  }
}
