import { createRoute, type z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { GrantBody, LevelRow, OrganizationParams } from "./schemas.ts";

const route = createRoute({
  method: "post",
  path: "/organizations/{id}/grant",
  operationId: "grantStatusLevel",
  summary: "Grant a level (platform admins)",
  description:
    "A needs a subscription; B lasts 18 months unless `valid_until` says otherwise (it must be in the future); " +
    "C needs an active B and the level C criteria, and never ends. Granting an active level is a 409.",
  tags: ["levels"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: OrganizationParams, body: jsonBody(GrantBody) },
  responses: { 201: json(LevelRow, "The granted level"), ...problems(400, 401, 403, 404, 409, 413, 415, 422, 503) },
});

export const grantStatusLevel = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const body = c.req.valid("json");
  const row = await callWriteRpc<"grant_status_level", z.infer<typeof LevelRow>>(
    c,
    "grant_status_level",
    { p_organization_id: id, p_level: body.level, p_valid_until: body.valid_until, p_subscription_id: body.subscription_id, p_notes: body.notes },
    onOrganization(id),
  );
  return c.json(row, 201);
});
