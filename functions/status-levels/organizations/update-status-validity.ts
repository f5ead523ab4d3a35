import { createRoute, type z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { LevelRow, OrganizationParams, ValidityBody } from "./schemas.ts";

const route = createRoute({
  method: "post",
  path: "/organizations/{id}/validity",
  operationId: "updateStatusValidity",
  summary: "Move the end of an active A or B (platform admins)",
  tags: ["levels"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: OrganizationParams, body: jsonBody(ValidityBody) },
  responses: { 200: json(LevelRow, "The level with its new end"), ...problems(400, 401, 403, 404, 413, 415, 422, 503) },
});

export const updateStatusValidity = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const body = c.req.valid("json");
  const row = await callWriteRpc<"update_status_validity", z.infer<typeof LevelRow>>(
    c,
    "update_status_validity",
    { p_organization_id: id, p_level: body.level, p_valid_until: body.valid_until, p_reason: body.reason },
    onOrganization(id),
  );
  return c.json(row, 200);
});
