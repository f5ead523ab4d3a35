import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { pageHeaders, pageItems, paginationQuery } from "../../_shared/pagination.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";
import { RequestStatus, UpgradeRequest } from "../upgrade-requests/schemas.ts";
import { OrganizationParams } from "./schemas.ts";

const route = createRoute({
  method: "get",
  path: "/organizations/{id}/upgrade-requests",
  operationId: "listOrganizationUpgradeRequests",
  summary: "An organization's upgrade requests",
  description:
    "A JSON array, newest first (20 by default), optionally by status; the total in `X-Total-Count`, other pages in " +
    "`Link`. Members and platform admins.",
  tags: ["upgrade requests"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: { params: OrganizationParams, query: paginationQuery(20).extend({ status: RequestStatus.optional() }) },
  responses: { 200: json(z.array(UpgradeRequest), "A page of requests", pageHeaders), ...problems(400, 401, 403, 404, 503) },
});

type RequestPage = { total: number; items: z.infer<typeof UpgradeRequest>[] };

export const listOrganizationUpgradeRequests = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const { limit, offset, status } = c.req.valid("query");
  const page = await callRpc<"list_upgrade_requests", RequestPage>(supabaseForRequest(c), "list_upgrade_requests", {
    p_organization_id: id,
    p_status: status,
    p_limit: limit,
    p_offset: offset,
  });
  return c.json(pageItems(c, page, { limit, offset }), 200);
});
