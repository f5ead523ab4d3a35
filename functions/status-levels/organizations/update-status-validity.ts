import { requireCaller } from "../../_shared/auth.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callWriteRpc, onOrganization } from "../../_shared/rpc.ts";
import { LevelRow, OrganizationParams, ValidityBody } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

export const updateStatusValidity = defineRoute({
  method: "post",
  path: "/organizations/{id}/validity",
  operationId: "updateStatusValidity",
  summary: "Move the end of an active A or B (platform admins)",
  tags: ["levels"],
  auth: "required",
  params: OrganizationParams,
  body: ValidityBody,
  responses: { 200: { description: "The level with its new end", schema: LevelRow } },
  errors: [400, 401, 403, 404, 415, 422, 503],
  handler: async (c, { params, body }) => {
    const caller = requireCaller(c.get("caller"));
    const row = await callWriteRpc(c, supabaseAsCaller(c.env, caller.token), "update_status_validity", {
      p_organization_id: params.id,
      p_level: body.level,
      p_valid_until: body.valid_until,
      p_reason: body.reason,
    }, onOrganization(params.id));
    return c.json(row);
  },
});
