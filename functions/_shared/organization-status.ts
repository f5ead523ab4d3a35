import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import { cacheEnabled, lookupStatus, storeStatus, type StatusView, type ViewerRole } from "./cache.ts";
import { redisClient } from "./redis.ts";
import { callRpc } from "./rpc.ts";
import { supabaseAsCaller } from "./supabase.ts";

/** The status view as this caller may see it, with `can_manage` computed for them. */
export type CallerStatusView = Omit<StatusView, "viewer"> & { can_manage: boolean };

function forCaller(view: StatusView, role: ViewerRole): CallerStatusView {
  const { viewer: _viewer, can_manage: _orgWide, ...rest } = view;
  return { ...rest, visibility: view.visibility, can_manage: role.role === "owner" || role.role === "admin" || role.platform_admin };
}

/**
 * Reads an organization's status: from the cache when it can answer alone (no database call at
 * all), otherwise with one `get_organization_status` call as the caller, whose result is cached
 * after the response is sent.
 */
export async function loadOrganizationStatus(c: Context<AppEnv>, orgId: string): Promise<CallerStatusView> {
  const caller = c.get("caller");
  const userId = caller?.userId ?? null;
  const useCache = cacheEnabled(c);
  const redis = useCache ? redisClient(c.env) : null;
  const lookup = redis ? await lookupStatus(c, redis, orgId, userId) : null;
  if (lookup?.hit) {
    c.get("logFields").cache = "hit";
    c.header("x-cache", "hit");
    return forCaller(lookup.hit.view, lookup.hit.role);
  }
  const data = (await callRpc(supabaseAsCaller(c.env, caller?.token ?? null), "get_organization_status", {
    p_organization_id: orgId,
  })) as StatusView & { viewer: ViewerRole };
  const cacheState = useCache ? "miss" : "bypass";
  c.get("logFields").cache = cacheState;
  c.header("x-cache", cacheState);
  if (redis && lookup && lookup.gen !== null) {
    const { viewer, can_manage: _callerSpecific, ...orgWide } = data;
    afterResponse(c, storeStatus(c, redis, orgId, userId, lookup.gen, orgWide as StatusView, viewer));
  }
  return forCaller(data, data.viewer);
}

/** Work that must not delay the response (cache fills): waitUntil where the runtime offers it. */
export function afterResponse(c: Context<AppEnv>, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    void work; // no execution context (e.g. app.request without one): let it finish on its own
  }
}
