import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { OrganizationParams, page, RequestListQuery, UpgradeRequest } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const listOrganizationUpgradeRequests = defineRoute({
  method: "get",
  path: "/organizations/{id}/upgrade-requests",
  operationId: "listOrganizationUpgradeRequests",
  summary: "An organization's upgrade requests",
  description: "Newest first, optionally by status, with the total count. Members and platform admins.",
  tags: ["upgrade requests"],
  auth: "required",
  params: OrganizationParams,
  query: RequestListQuery,
  responses: { 200: { description: "A page of requests", schema: page(UpgradeRequest) } },
  errors: [400, 401, 403, 404, 503],
  handler: async (c, { params, query }) => {
    const caller = requireCaller(c.get("caller"));
    const result = (await callRpc(supabaseAsCaller(c.env, caller.token), "list_upgrade_requests", {
      p_organization_id: params.id,
      p_status: query.status,
      p_limit: query.limit,
      p_offset: query.offset,
    })) as { total: number };
    c.header("x-total-count", String(result.total));
    c.header("cache-control", "private, no-cache");
    return c.json(result);
  },
});
