import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { callWriteRpc, type WriteScope } from "../../_shared/rpc.ts";
import { LevelRow } from "../organizations/schemas.ts";
import { ApproveBody, RejectBody, RequestParams, UpgradeRequest } from "./schemas.ts";

type Request = z.infer<typeof UpgradeRequest>;

/** A decision names the request, not its organization: only the database knows which it is. */
const onRequestOrganization: WriteScope<Request> = { organization: null, changed: (request) => [request.organization_id] };

const cancelRoute = createRoute({
  method: "post",
  path: "/upgrade-requests/{id}/cancel",
  operationId: "cancelUpgradeRequest",
  summary: "Cancel a pending request (the requester, or an owner or admin of the organization)",
  tags: ["upgrade requests"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: RequestParams },
  responses: { 200: json(UpgradeRequest, "The cancelled request"), ...problems(400, 401, 403, 404, 409, 503) },
});

export const cancelUpgradeRequest = createApi().openapi(cancelRoute, async (c) => {
  const request = await callWriteRpc<"cancel_upgrade_request", Request>(
    c,
    "cancel_upgrade_request",
    { p_request_id: c.req.valid("param").id },
    onRequestOrganization,
  );
  return c.json(request, 200);
});

const Approval = z.object({ request: UpgradeRequest, level: LevelRow });

const approveRoute = createRoute({
  method: "post",
  path: "/upgrade-requests/{id}/approve",
  operationId: "approveUpgradeRequest",
  summary: "Approve a pending request (platform admins)",
  description:
    "Grants the level in the same transaction (a request for B while B is active renews it). If the grant is " +
    "refused - e.g. C criteria not met - nothing changes and the request stays pending.",
  tags: ["upgrade requests"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: RequestParams, body: jsonBody(ApproveBody) },
  responses: { 200: json(Approval, "The approved request and the level"), ...problems(400, 401, 403, 404, 409, 413, 415, 422, 503) },
});

export const approveUpgradeRequest = createApi().openapi(approveRoute, async (c) => {
  const approval = await callWriteRpc<"approve_upgrade_request", z.infer<typeof Approval>>(
    c,
    "approve_upgrade_request",
    { p_request_id: c.req.valid("param").id, p_notes: c.req.valid("json").notes },
    { organization: null, changed: (approved) => [approved.request.organization_id] },
  );
  return c.json(approval, 200);
});

const rejectRoute = createRoute({
  method: "post",
  path: "/upgrade-requests/{id}/reject",
  operationId: "rejectUpgradeRequest",
  summary: "Reject a pending request with a note (platform admins)",
  tags: ["upgrade requests"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { params: RequestParams, body: jsonBody(RejectBody) },
  responses: { 200: json(UpgradeRequest, "The rejected request"), ...problems(400, 401, 403, 404, 409, 413, 415, 503) },
});

export const rejectUpgradeRequest = createApi().openapi(rejectRoute, async (c) => {
  const request = await callWriteRpc<"reject_upgrade_request", Request>(
    c,
    "reject_upgrade_request",
    { p_request_id: c.req.valid("param").id, p_note: c.req.valid("json").note },
    onRequestOrganization,
  );
  return c.json(request, 200);
});
