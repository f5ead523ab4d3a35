import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { pageHeaders, pageItems, paginationQuery } from "../../_shared/pagination.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { CurrentLevel, Uuid } from "../../_shared/schemas.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";
import { LevelCChecklist, LevelCCriteria } from "../organizations/schemas.ts";
import { UpgradeRequest } from "../upgrade-requests/schemas.ts";

const QueueItem = UpgradeRequest.extend({
  organization: z.object({ id: Uuid, name: z.string() }),
  current_level: CurrentLevel,
  level_c_progress: LevelCCriteria.nullable().describe("for requests for C"),
  level_c_checklist: LevelCChecklist.nullable().describe("for requests for C"),
});

const route = createRoute({
  method: "get",
  path: "/admin/upgrade-requests",
  operationId: "listPendingUpgradeRequests",
  summary: "The review queue: pending upgrade requests, oldest first (platform admins)",
  description: "A JSON array (50 by default); the total in `X-Total-Count`, other pages in `Link`.",
  tags: ["admin"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: { query: paginationQuery(50) },
  responses: { 200: json(z.array(QueueItem), "A page of pending requests", pageHeaders), ...problems(400, 401, 403, 503) },
});

type QueuePage = { total: number; items: z.infer<typeof QueueItem>[] };

export const listPendingUpgradeRequests = createApi().openapi(route, async (c) => {
  const { limit, offset } = c.req.valid("query");
  const page = await callRpc<"list_pending_upgrade_requests", QueuePage>(
    supabaseForRequest(c),
    "list_pending_upgrade_requests",
    { p_limit: limit, p_offset: offset },
  );
  return c.json(pageItems(c, page, { limit, offset }), 200);
});
