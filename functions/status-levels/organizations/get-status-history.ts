import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { pageHeaders, pageItems, paginationQuery } from "../../_shared/pagination.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";
import { HistoryEntry, OrganizationParams } from "./schemas.ts";

const route = createRoute({
  method: "get",
  path: "/organizations/{id}/history",
  operationId: "getStatusHistory",
  summary: "The audit trail of an organization's levels",
  description: "A JSON array, newest first (50 by default); the total in `X-Total-Count`, other pages in `Link`. Members and platform admins.",
  tags: ["organizations"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: { params: OrganizationParams, query: paginationQuery(50) },
  responses: { 200: json(z.array(HistoryEntry), "A page of history", pageHeaders), ...problems(400, 401, 403, 404, 503) },
});

type HistoryPage = { total: number; items: z.infer<typeof HistoryEntry>[] };

export const getStatusHistory = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const { limit, offset } = c.req.valid("query");
  const page = await callRpc<"get_status_level_history", HistoryPage>(supabaseForRequest(c), "get_status_level_history", {
    p_organization_id: id,
    p_limit: limit,
    p_offset: offset,
  });
  return c.json(pageItems(c, page, { limit, offset }), 200);
});
