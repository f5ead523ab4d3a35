import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { CreateUpgradeRequestBody, UpgradeRequest } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const createUpgradeRequest = defineRoute({
  method: "post",
  path: "/upgrade-requests",
  operationId: "createUpgradeRequest",
  summary: "Ask for level B or C (organization owners and admins)",
  description:
    "At most one pending request per organization (409). C needs an active B (422). A request for B while B is " +
    "active is a renewal and is accepted within 60 days of its end. Rate-limited in the database, for direct " +
    "PostgREST callers too: 5 requests per user and 10 per organization in any 10 minutes (429 with Retry-After).",
  tags: ["upgrade requests"],
  auth: "required",
  body: CreateUpgradeRequestBody,
  responses: { 201: { description: "The pending request", schema: UpgradeRequest } },
  errors: [400, 401, 403, 404, 409, 415, 422, 429, 503],
  handler: async (c, { body }) => {
    const caller = requireCaller(c.get("caller"));
    const request = await callWriteRpc(c, supabaseAsCaller(c.env, caller.token), "create_upgrade_request", {
      p_organization_id: body.organization_id,
      p_requested_level: body.requested_level,
      p_message: body.message,
      p_evidence_urls: body.evidence_urls,
    }, onOrganization(body.organization_id));
    return c.json(request, 201);
  },
});
