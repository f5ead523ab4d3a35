import { loadOrganizationStatus } from "../../_shared/organization-status.ts";
import { defineRoute } from "../../_shared/route.ts";
import { OrganizationParams, OrganizationStatus } from "../../_shared/schemas.ts";

export const getOrganizationStatus = defineRoute({
  method: "get",
  path: "/organizations/{id}",
  operationId: "getOrganizationStatus",
  summary: "An organization's status level",
  description:
    "Current level, active levels, level C progress and whether the caller can manage requests. Members and " +
    "platform admins see everything; other signed-in users and anonymous callers see the public projection " +
    "(current and active levels) of a public organization. Served from the cache when possible (`x-cache`).",
  tags: ["organizations"],
  auth: "optional",
  params: OrganizationParams,
  responses: { 200: { description: "The status view", schema: OrganizationStatus, headers: { "x-cache": "hit, miss or bypass" } } },
  errors: [400, 401, 404, 503],
  handler: async (c, { params }) => {
    const view = await loadOrganizationStatus(c, params.id);
    c.header("cache-control", "private, no-cache");
    return c.json(view);
  },
});
