import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { pageHeaders, pageItems, paginationQuery } from "../../_shared/pagination.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";
import { LevelCProjection, LocalDate } from "../organizations/schemas.ts";

const AtRisk = z.object({
  organization: z.object({ id: Uuid, name: z.string(), time_zone: z.string() }),
  level_c_granted_at: Timestamp,
  today: LocalDate,
  meets_criteria_now: z.boolean(),
  first_failing_on: LocalDate.nullable().describe("null when the criteria already fail today"),
  meets_criteria_at_horizon: z.boolean(),
  failing: LevelCProjection.shape.failing,
});

const route = createRoute({
  method: "get",
  path: "/admin/level-c-at-risk",
  operationId: "listLevelCAtRisk",
  summary: "Level C holders that do not meet the criteria, or will not within `within` days (platform admins)",
  description:
    "A JSON array, most urgent first (failing today, then by the date they stop), with the failing criteria, their " +
    "dates and what would keep them, assuming nothing new happens. The total in `X-Total-Count`, other pages in " +
    "`Link`. Computed over every C holder at most every 5 minutes (any level change recomputes it); " +
    "`X-Computed-At` says when.",
  tags: ["admin"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: {
    query: paginationQuery(50).extend({
      within: z.coerce.number({ error: "must be a number" }).int().min(1).max(90).default(30)
        .openapi({ param: { description: "days ahead (1-90, default 30)" } }),
    }),
  },
  responses: {
    200: json(z.array(AtRisk), "A page of organizations at risk", { ...pageHeaders, "x-computed-at": "when the list was computed" }),
    ...problems(400, 401, 403, 503),
  },
});

type AtRiskPage = { total: number; as_of: string; items: z.infer<typeof AtRisk>[] };

export const listLevelCAtRisk = createApi().openapi(route, async (c) => {
  const { limit, offset, within } = c.req.valid("query");
  const page = await callRpc<"list_level_c_at_risk", AtRiskPage>(supabaseForRequest(c), "list_level_c_at_risk", {
    p_within_days: within,
    p_limit: limit,
    p_offset: offset,
  });
  c.header("x-computed-at", page.as_of);
  return c.json(pageItems(c, page, { limit, offset }), 200);
});
