import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { LevelRow, OrganizationParams, RenewBody } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const renewStatusLevelB = defineRoute({
  method: "post",
  path: "/organizations/{id}/renew",
  operationId: "renewStatusLevelB",
  summary: "Renew level B after re-verification (platform admins)",
  description: "The active B becomes valid for 18 months from now; `last_verified_at` is recorded.",
  tags: ["levels"],
  auth: "required",
  params: OrganizationParams,
  body: RenewBody,
  responses: { 200: { description: "The renewed level B", schema: LevelRow } },
  errors: [400, 401, 403, 404, 415, 503],
  handler: async (c, { params, body }) => {
    const caller = requireCaller(c.get("caller"));
    const row = await callWriteRpc(c, supabaseAsCaller(c.env, caller.token), "renew_status_level_b", {
      p_organization_id: params.id,
      p_notes: body.notes,
    }, onOrganization(params.id));
    return c.json(row);
  },
});
