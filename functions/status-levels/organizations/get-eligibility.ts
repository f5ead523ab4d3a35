import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { forbidden } from "../../_shared/errors.ts";
import { loadOrganizationStatus } from "../../_shared/organization-status.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";
import { Eligibility, LevelCProjection, OrganizationParams } from "./schemas.ts";

const howTo: Record<string, string> = {
  "0": "Level B is granted by platform admins after verification: ask for an upgrade to B. Level A comes with a paid subscription.",
  A: "Level B is granted by platform admins after verification: ask for an upgrade to B.",
  B: "Level C needs every criterion below; when they are all met, ask for an upgrade to C.",
  C: "This is the top level. Keep level B renewed and the criteria met.",
};

const route = createRoute({
  method: "get",
  path: "/organizations/{id}/eligibility",
  operationId: "getEligibility",
  summary: "Whether level C's criteria hold, and what is missing for the next level",
  description:
    "`meets_criteria`, `criteria` and `timestamp` as the platform's pages have always read them; beside them the " +
    "next level, how to get there, whether the caller can ask for an upgrade now, per criterion whether it " +
    "is met and what is missing (`level_c_checklist`), and the criteria over the next `horizon` days day by day if " +
    "nothing new happens (`level_c_projection`: when each stops being met and what would keep it). Members and " +
    "platform admins.",
  tags: ["organizations"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: {
    params: OrganizationParams,
    query: z.strictObject({
      horizon: z.coerce.number({ error: "must be a number" }).int().min(1).max(90).default(30)
        .openapi({ param: { description: "days ahead for `level_c_projection` (1-90, default 30)" } }),
    }),
  },
  responses: { 200: json(Eligibility, "Level C's criteria and the way to the next level"), ...problems(400, 401, 403, 404, 503) },
});

export const getEligibility = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const { horizon } = c.req.valid("query");
  // The view may come from the cache; the projection, day by day, is the database's (both at once).
  const [view, projection] = await Promise.all([
    loadOrganizationStatus(c, id),
    callRpc<"project_level_c", z.infer<typeof LevelCProjection>>(supabaseForRequest(c), "project_level_c", { p_organization_id: id, p_horizon_days: horizon }),
  ]);
  if (view.visibility !== "full" || !view.level_c_progress || !view.level_c_checklist) {
    throw forbidden("only members of the organization and platform admins can see its progress");
  }
  const current = view.current_level;
  const nextLevel = current === "C" ? null : current === "B" ? ("C" as const) : ("B" as const);
  const checklist = view.level_c_checklist;
  c.header("cache-control", "private, no-cache");
  return c.json(
    {
      organization_id: id,
      meets_criteria: checklist.meets_criteria,
      criteria: view.level_c_progress,
      timestamp: checklist.evaluated_at,
      current_level: current,
      next_level: nextLevel,
      how_to_get_there: howTo[current] ?? howTo["0"]!,
      can_request_upgrade:
        view.can_manage && view.pending_upgrade_request === null && nextLevel !== null && (nextLevel === "B" || checklist.meets_criteria),
      pending_upgrade_request: view.pending_upgrade_request,
      level_c_checklist: checklist,
      level_c_projection: projection,
    },
    200,
  );
});
