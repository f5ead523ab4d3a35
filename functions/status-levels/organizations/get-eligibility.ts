import { forbidden } from "../../_shared/errors.ts";
import { loadOrganizationStatus } from "../../_shared/organization-status.ts";
import { defineRoute } from "../../_shared/route.ts";
import { Eligibility, OrganizationParams } from "../../_shared/schemas.ts";

const howTo: Record<string, string> = {
  "0": "Level B is granted by platform admins after verification: ask for an upgrade to B. Level A comes with a paid subscription.",
  A: "Level B is granted by platform admins after verification: ask for an upgrade to B.",
  B: "Level C needs every criterion below; when they are all met, ask for an upgrade to C.",
  C: "This is the top level. Keep level B renewed and the criteria met.",
};

export const getEligibility = defineRoute({
  method: "get",
  path: "/organizations/{id}/eligibility",
  operationId: "getEligibility",
  summary: "What is missing for the next level",
  description: "The next level, how to get there, and level C progress per criterion. Members and platform admins.",
  tags: ["organizations"],
  auth: "required",
  params: OrganizationParams,
  responses: { 200: { description: "Progress towards the next level", schema: Eligibility } },
  errors: [400, 401, 403, 404, 503],
  handler: async (c, { params }) => {
    const view = await loadOrganizationStatus(c, params.id);
    if (view.visibility !== "full") throw forbidden("only members of the organization and platform admins can see its progress");
    const current = String(view.current_level);
    const nextLevel = current === "C" ? null : current === "B" ? "C" : "B";
    const progress = view.level_c_progress as { eligible: boolean };
    c.header("cache-control", "private, no-cache");
    return c.json({
      organization_id: params.id,
      current_level: current,
      next_level: nextLevel,
      how_to_get_there: howTo[current] ?? howTo["0"]!,
      can_request_upgrade:
        view.can_manage && view.pending_upgrade_request === null && nextLevel !== null && (nextLevel === "B" || progress.eligible),
      pending_upgrade_request: view.pending_upgrade_request ?? null,
      level_c_progress: view.level_c_progress,
    });
  },
});
