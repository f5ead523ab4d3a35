import { createRoute, type z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { CreateUpgradeRequestBody, UpgradeRequest } from "./schemas.ts";

const route = createRoute({
  method: "post",
  path: "/upgrade-requests",
  operationId: "createUpgradeRequest",
  summary: "Ask for level B or C (organization owners and admins)",
  description:
    "At most one pending request per organization (409). C needs an active B (422). A request for B while B is " +
    "active is a renewal and is accepted within 60 days of its end. Rate-limited in the database, for direct " +
    "PostgREST callers too: 5 requests per user and 10 per organization in any 10 minutes (429 with Retry-After).",
  tags: ["upgrade requests"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { body: jsonBody(CreateUpgradeRequestBody) },
  responses: { 201: json(UpgradeRequest, "The pending request"), ...problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503) },
});

export const createUpgradeRequest = createApi().openapi(route, async (c) => {
  const body = c.req.valid("json");
  const request = await callWriteRpc<"create_upgrade_request", z.infer<typeof UpgradeRequest>>(
    c,
    "create_upgrade_request",
    { p_organization_id: body.organization_id, p_target_level: body.target_level, p_message: body.message, p_evidence_urls: body.evidence_urls },
    onOrganization(body.organization_id),
  );
  return c.json(request, 201);
});
