import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callWriteRpc } from "../../_shared/rpc.ts";
import { Level, OrganizationParams, RevokeBody } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";
import { z } from "zod";

export const revokeStatusLevel = defineRoute({
  method: "post",
  path: "/organizations/{id}/revoke",
  operationId: "revokeStatusLevel",
  summary: "Revoke a level (platform admins)",
  description: "Ends the active row of the level now. `revoked` says whether one was active. Revoking B leaves C alone.",
  tags: ["levels"],
  auth: "required",
  params: OrganizationParams,
  body: RevokeBody,
  responses: {
    200: { description: "Whether a level was active", schema: z.object({ organization_id: z.uuid(), level: Level, revoked: z.boolean() }) },
  },
  errors: [400, 401, 403, 404, 415, 503],
  handler: async (c, { params, body }) => {
    const caller = requireCaller(c.get("caller"));
    const revoked = await callWriteRpc(
      c,
      supabaseAsCaller(c.env, caller.token),
      "revoke_status_level",
      { p_organization_id: params.id, p_level: body.level, p_reason: body.reason },
      { organization: params.id, changed: (wasActive) => (wasActive ? [params.id] : []) },
    );
    return c.json({ organization_id: params.id, level: body.level, revoked: revoked === true });
  },
});
