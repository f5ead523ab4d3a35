import { z } from "zod";
import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { CurrentLevel, LevelCProgress, page, Pagination, UpgradeRequest, Uuid } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

const QueueItem = UpgradeRequest.extend({
  organization: z.object({ id: Uuid, name: z.string() }),
  current_level: CurrentLevel,
  level_c_progress: LevelCProgress.nullable().describe("for requests for C"),
});

export const listPendingUpgradeRequests = defineRoute({
  method: "get",
  path: "/admin/upgrade-requests",
  operationId: "listPendingUpgradeRequests",
  summary: "The review queue: pending upgrade requests, oldest first (platform admins)",
  tags: ["admin"],
  auth: "required",
  query: Pagination,
  responses: { 200: { description: "A page of pending requests", schema: page(QueueItem) } },
  errors: [400, 401, 403, 503],
  handler: async (c, { query }) => {
    const caller = requireCaller(c.get("caller"));
    const result = (await callRpc(supabaseAsCaller(c.env, caller.token), "list_pending_upgrade_requests", {
      p_limit: query.limit,
      p_offset: query.offset,
    })) as { total: number };
    c.header("x-total-count", String(result.total));
    c.header("cache-control", "private, no-cache");
    return c.json(result);
  },
});
