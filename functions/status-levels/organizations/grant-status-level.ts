import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { GrantBody, LevelRow, OrganizationParams } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const grantStatusLevel = defineRoute({
  method: "post",
  path: "/organizations/{id}/grant",
  operationId: "grantStatusLevel",
  summary: "Grant a level (platform admins)",
  description:
    "A needs a subscription; B lasts 18 months unless `valid_until` says otherwise (it must be in the future); " +
    "C needs an active B and the level C criteria, and never ends. Granting an active level is a 409.",
  tags: ["levels"],
  auth: "required",
  params: OrganizationParams,
  body: GrantBody,
  responses: { 201: { description: "The granted level", schema: LevelRow } },
  errors: [400, 401, 403, 404, 409, 415, 422, 503],
  handler: async (c, { params, body }) => {
    const caller = requireCaller(c.get("caller"));
    const row = await callWriteRpc(c, supabaseAsCaller(c.env, caller.token), "grant_status_level", {
      p_organization_id: params.id,
      p_level: body.level,
      p_valid_until: body.valid_until,
      p_subscription_id: body.subscription_id,
      p_notes: body.notes,
    }, onOrganization(params.id));
    return c.json(row, 201);
  },
});
