import { z } from "zod";
import { requireCaller } from "../../_shared/auth.ts";
import { invalidateOrganizations } from "../../_shared/cache.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { ApproveBody, LevelRow, RejectBody, RequestParams, UpgradeRequest } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const cancelUpgradeRequest = defineRoute({
  method: "post",
  path: "/upgrade-requests/{id}/cancel",
  operationId: "cancelUpgradeRequest",
  summary: "Cancel a pending request (the requester, or an owner or admin of the organization)",
  tags: ["upgrade requests"],
  auth: "required",
  params: RequestParams,
  responses: { 200: { description: "The cancelled request", schema: UpgradeRequest } },
  errors: [400, 401, 403, 404, 409, 503],
  handler: async (c, { params }) => {
    const caller = requireCaller(c.get("caller"));
    const request = (await callRpc(supabaseAsCaller(c.env, caller.token), "cancel_upgrade_request", {
      p_request_id: params.id,
    })) as { organization_id: string };
    await invalidateOrganizations(c.env, [request.organization_id], c.get("log"));
    return c.json(request);
  },
});

export const approveUpgradeRequest = defineRoute({
  method: "post",
  path: "/upgrade-requests/{id}/approve",
  operationId: "approveUpgradeRequest",
  summary: "Approve a pending request (platform admins)",
  description:
    "Grants the level in the same transaction (a request for B while B is active renews it). If the grant is " +
    "refused - e.g. C criteria not met - nothing changes and the request stays pending.",
  tags: ["upgrade requests"],
  auth: "required",
  params: RequestParams,
  body: ApproveBody,
  responses: {
    200: { description: "The approved request and the level", schema: z.object({ request: UpgradeRequest, level: LevelRow }) },
  },
  errors: [400, 401, 403, 404, 409, 415, 422, 503],
  handler: async (c, { params, body }) => {
    const caller = requireCaller(c.get("caller"));
    const result = (await callRpc(supabaseAsCaller(c.env, caller.token), "approve_upgrade_request", {
      p_request_id: params.id,
      p_notes: body.notes,
    })) as { request: { organization_id: string } };
    await invalidateOrganizations(c.env, [result.request.organization_id], c.get("log"));
    return c.json(result);
  },
});

export const rejectUpgradeRequest = defineRoute({
  method: "post",
  path: "/upgrade-requests/{id}/reject",
  operationId: "rejectUpgradeRequest",
  summary: "Reject a pending request with a note (platform admins)",
  tags: ["upgrade requests"],
  auth: "required",
  params: RequestParams,
  body: RejectBody,
  responses: { 200: { description: "The rejected request", schema: UpgradeRequest } },
  errors: [400, 401, 403, 404, 409, 415, 503],
  handler: async (c, { params, body }) => {
    const caller = requireCaller(c.get("caller"));
    const request = (await callRpc(supabaseAsCaller(c.env, caller.token), "reject_upgrade_request", {
      p_request_id: params.id,
      p_note: body.note,
    })) as { organization_id: string };
    await invalidateOrganizations(c.env, [request.organization_id], c.get("log"));
    return c.json(request);
  },
});
