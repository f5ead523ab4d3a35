import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { HistoryEntry, OrganizationParams, page, Pagination } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const getStatusHistory = defineRoute({
  method: "get",
  path: "/organizations/{id}/history",
  operationId: "getStatusHistory",
  summary: "The audit trail of an organization's levels",
  description: "Newest first, with the total count (also in `x-total-count`). Members and platform admins.",
  tags: ["organizations"],
  auth: "required",
  params: OrganizationParams,
  query: Pagination,
  responses: { 200: { description: "A page of history", schema: page(HistoryEntry) } },
  errors: [400, 401, 403, 404, 503],
  handler: async (c, { params, query }) => {
    const caller = requireCaller(c.get("caller"));
    const result = (await callRpc(supabaseAsCaller(c.env, caller.token), "get_status_level_history", {
      p_organization_id: params.id,
      p_limit: query.limit,
      p_offset: query.offset,
    })) as { total: number };
    c.header("x-total-count", String(result.total));
    c.header("cache-control", "private, no-cache");
    return c.json(result);
  },
});
