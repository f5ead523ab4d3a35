import { createRoute } from "@hono/zod-openapi";
import type { TypedResponse } from "hono";
import type { JSONParsed } from "hono/utils/types";
import { createApi, json, noQueryParameters, optionalBearerAuth, problems } from "../../_shared/api.ts";
import { signedInOrAnonymous } from "../../_shared/auth.ts";
import { loadOrganizationStatusJson, type CallerStatusView } from "../../_shared/organization-status.ts";
import { OrganizationParams, OrganizationStatus } from "./schemas.ts";

const route = createRoute({
  method: "get",
  path: "/organizations/{id}",
  operationId: "getOrganizationStatus",
  summary: "An organization's status level",
  description:
    "Current level, active levels, level C progress and whether the caller can manage requests. Members and " +
    "platform admins see everything; other signed-in users and anonymous callers see the public projection " +
    "(current and active levels) of a public organization. Served from the cache when possible (`x-cache`).",
  tags: ["organizations"],
  security: optionalBearerAuth,
  middleware: [signedInOrAnonymous, noQueryParameters] as const,
  request: { params: OrganizationParams },
  responses: {
    200: json(OrganizationStatus, "The status view", { "x-cache": "hit, miss or bypass" }),
    ...problems(400, 401, 404, 503),
  },
});

export const getOrganizationStatus = createApi().openapi(route, async (c) => {
  // The JSON as cached, sent as it is (see loadOrganizationStatusJson); typed as c.json would type it.
  const body = await loadOrganizationStatusJson(c, c.req.valid("param").id);
  c.header("cache-control", "private, no-cache");
  return c.body(body, 200, { "content-type": "application/json" }) as unknown as Response & TypedResponse<JSONParsed<CallerStatusView>, 200, "json">;
});
