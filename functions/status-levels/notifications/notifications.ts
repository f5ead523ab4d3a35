import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { fromDbError } from "../../_shared/errors.ts";
import { pageHeaders, pageItems, paginationQuery } from "../../_shared/pagination.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";

const Notification = z.object({
  id: Uuid,
  organization_id: Uuid,
  kind: z.enum(["expiry_notice", "level_expired", "grace_ended", "level_granted", "level_revoked", "level_c_at_risk", "level_c_eligible"]),
  title: z.string(),
  body: z.string(),
  data: z.record(z.string(), z.unknown()),
  created_at: Timestamp,
  read_at: Timestamp.nullable(),
});

const listRoute = createRoute({
  method: "get",
  path: "/notifications",
  operationId: "listNotifications",
  summary: "The caller's in-app notifications, newest first",
  description: "A JSON array (50 by default); the total in `X-Total-Count`, other pages in `Link`.",
  tags: ["notifications"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: { query: paginationQuery(50).extend({ unread: z.enum(["true", "false"]).optional().describe("true: only unread ones") }) },
  responses: { 200: json(z.array(Notification), "A page of notifications", pageHeaders), ...problems(400, 401, 503) },
});

export const listNotifications = createApi().openapi(listRoute, async (c) => {
  const { limit, offset, unread } = c.req.valid("query");
  // RLS returns the caller's own rows only.
  let select = supabaseForRequest(c)
    .from("notifications")
    .select("id, organization_id, kind, title, body, data, created_at, read_at", { count: "exact" })
    .order("created_at", { ascending: false })
    .order("id")
    .range(offset, offset + limit - 1);
  if (unread === "true") select = select.is("read_at", null);
  const { data, error, status, count } = await select;
  if (error) throw fromDbError(error, status);
  const items = (data ?? []).map((n) => ({ ...n, kind: n.kind as z.infer<typeof Notification>["kind"], data: n.data as Record<string, unknown> }));
  return c.json(pageItems(c, { total: count ?? 0, items }, { limit, offset }), 200);
});

const markRoute = createRoute({
  method: "post",
  path: "/notifications/read",
  operationId: "markNotificationsRead",
  summary: "Mark the caller's notifications as read (the given ones, or all)",
  tags: ["notifications"],
  security: bearerAuth,
  middleware: [signedIn, noQueryParameters] as const,
  request: { body: jsonBody(z.strictObject({ ids: z.array(Uuid).min(1).max(500).optional() })) },
  responses: { 200: json(z.object({ marked: z.number().int() }), "How many were marked"), ...problems(400, 401, 413, 415, 503) },
});

export const markNotificationsRead = createApi().openapi(markRoute, async (c) => {
  const marked = await callRpc(supabaseForRequest(c), "mark_notifications_read", { p_ids: c.req.valid("json").ids });
  return c.json({ marked }, 200);
});
