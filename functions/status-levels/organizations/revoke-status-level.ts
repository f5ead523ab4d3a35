import { createRoute } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { callWriteRpc } from "../../_shared/rpc.ts";
import { OrganizationParams, RevokeBody, RevokeResult } from "./schemas.ts";

const route = createRoute({
  method: "post",
  path: "/organizations/{id}/revoke",
  operationId: "revokeStatusLevel",
  summary: "Revoke a level (platform admins)",
  description:
    "Ends the active row of the level now. `success` says whether one was active: false (nothing to revoke) is " +
    "still a 200, as it always was. Revoking B leaves C alone. The reason is required (audit).",
  tags: ["levels"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: OrganizationParams, body: jsonBody(RevokeBody) },
  responses: { 200: json(RevokeResult, "Whether a level was active and is now revoked"), ...problems(400, 401, 403, 404, 413, 415, 503) },
});

export const revokeStatusLevel = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const { level, reason } = c.req.valid("json");
  const success = await callWriteRpc(
    c,
    "revoke_status_level",
    { p_organization_id: id, p_level: level, p_reason: reason },
    { organization: id, changed: (wasActive) => (wasActive ? [id] : []) },
  );
  return c.json({ success, organization_id: id, level }, 200);
});
