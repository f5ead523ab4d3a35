import { z } from "zod";
import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callWriteRpc, type WriteScope } from "../../_shared/rpc.ts";
import { ApproveBody, LevelRow, RejectBody, RequestParams, UpgradeRequest } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

/** A decision names the request, not its organization: only the database knows which it is. */
const onRequestOrganization: WriteScope<{ organization_id: string }> = { organization: null, changed: (request) => [request.organization_id] };

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
    const request = await callWriteRpc(c, supabaseAsCaller(c.env, caller.token), "cancel_upgrade_request", { p_request_id: params.id }, onRequestOrganization);
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
    const result = await callWriteRpc(
      c,
      supabaseAsCaller(c.env, caller.token),
      "approve_upgrade_request",
      { p_request_id: params.id, p_notes: body.notes },
      { organization: null, changed: (approved: { request: { organization_id: string } }) => [approved.request.organization_id] },
    );
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
    const request = await callWriteRpc(c, supabaseAsCaller(c.env, caller.token), "reject_upgrade_request", { p_request_id: params.id, p_note: body.note }, onRequestOrganization);
    return c.json(request);
  },
});
