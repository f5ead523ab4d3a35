import { createRoute, type z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { LevelRow, OrganizationParams, RenewBody } from "./schemas.ts";

const route = createRoute({
  method: "post",
  path: "/organizations/{id}/renew",
  operationId: "renewStatusLevelB",
  summary: "Renew level B after re-verification (platform admins)",
  description: "The active B becomes valid for 18 months from now; `last_verified_at` is recorded.",
  tags: ["levels"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: OrganizationParams, body: jsonBody(RenewBody) },
  responses: { 200: json(LevelRow, "The renewed level B"), ...problems(400, 401, 403, 404, 413, 415, 503) },
});

export const renewStatusLevelB = createApi().openapi(route, async (c) => {
  const { id } = c.req.valid("param");
  const row = await callWriteRpc<"renew_status_level_b", z.infer<typeof LevelRow>>(
    c,
    "renew_status_level_b",
    { p_organization_id: id, p_notes: c.req.valid("json").notes },
    onOrganization(id),
  );
  return c.json(row, 200);
});
