import { z } from "zod";
import { requireCaller } from "../../_shared/auth.ts";
import { fromDbError } from "../../_shared/errors.ts";
import { defineRoute } from "../../_shared/route.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { page, Pagination, Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";

const Notification = z.object({
  id: Uuid,
  organization_id: Uuid,
  kind: z.enum(["expiry_notice", "level_expired", "grace_ended", "level_granted", "level_revoked"]),
  title: z.string(),
  body: z.string(),
  data: z.record(z.string(), z.unknown()),
  created_at: Timestamp,
  read_at: Timestamp.nullable(),
});

export const listNotifications = defineRoute({
  method: "get",
  path: "/notifications",
  operationId: "listNotifications",
  summary: "The caller's in-app notifications, newest first",
  tags: ["notifications"],
  auth: "required",
  query: Pagination.extend({ unread: z.enum(["true", "false"]).optional().describe("true: only unread ones") }),
  responses: { 200: { description: "A page of notifications", schema: page(Notification) } },
  errors: [400, 401, 503],
  handler: async (c, { query }) => {
    const caller = requireCaller(c.get("caller"));
    // RLS returns the caller's own rows only.
    let select = supabaseAsCaller(c.env, caller.token)
      .from("notifications")
      .select("id, organization_id, kind, title, body, data, created_at, read_at", { count: "exact" })
      .order("created_at", { ascending: false })
      .order("id")
      .range(query.offset, query.offset + query.limit - 1);
    if (query.unread === "true") select = select.is("read_at", null);
    const { data, error, status, count } = await select;
    if (error) throw fromDbError(error, status);
    c.header("x-total-count", String(count ?? 0));
    c.header("cache-control", "private, no-cache");
    return c.json({ total: count ?? 0, limit: query.limit, offset: query.offset, items: data ?? [] });
  },
});

export const markNotificationsRead = defineRoute({
  method: "post",
  path: "/notifications/read",
  operationId: "markNotificationsRead",
  summary: "Mark the caller's notifications as read (the given ones, or all)",
  tags: ["notifications"],
  auth: "required",
  body: z.strictObject({ ids: z.array(Uuid).min(1).max(500).optional() }),
  responses: { 200: { description: "How many were marked", schema: z.object({ marked: z.number().int() }) } },
  errors: [400, 401, 415, 503],
  handler: async (c, { body }) => {
    const caller = requireCaller(c.get("caller"));
    const marked = await callRpc(supabaseAsCaller(c.env, caller.token), "mark_notifications_read", { p_ids: body.ids });
    return c.json({ marked: Number(marked) });
  },
});

const OutboxEntry = z.object({
  id: Uuid,
  organization_id: Uuid,
  recipient: z.string(),
  kind: z.string(),
  subject: z.string(),
  state: z.enum(["pending", "sent", "failed", "dead"]),
  attempts: z.number().int(),
  next_attempt_at: Timestamp,
  last_error: z.string().nullable(),
  sent_at: Timestamp.nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const listEmailOutbox = defineRoute({
  method: "get",
  path: "/admin/email-outbox",
  operationId: "listEmailOutbox",
  summary: "E-mail deliveries by state, e.g. the dead letters (platform admins)",
  tags: ["admin"],
  auth: "required",
  query: Pagination.extend({ state: z.enum(["pending", "sent", "failed", "dead"]).default("dead") }),
  responses: { 200: { description: "A page of outbox entries", schema: page(OutboxEntry) } },
  errors: [400, 401, 403, 503],
  handler: async (c, { query }) => {
    const caller = requireCaller(c.get("caller"));
    const db = supabaseAsCaller(c.env, caller.token);
    const { data: admin, error: adminError, status: adminStatus } = await db
      .from("platform_admins").select("user_id").eq("user_id", caller.userId).is("revoked_at", null).maybeSingle();
    if (adminError) throw fromDbError(adminError, adminStatus);
    if (!admin) throw fromDbError({ code: "42501" }, 403);
    const { data, error, status, count } = await db
      .from("email_outbox")
      .select("id, organization_id, recipient, kind, subject, state, attempts, next_attempt_at, last_error, sent_at, created_at, updated_at", { count: "exact" })
      .eq("state", query.state)
      .order("updated_at", { ascending: false })
      .range(query.offset, query.offset + query.limit - 1);
    if (error) throw fromDbError(error, status);
    c.header("x-total-count", String(count ?? 0));
    return c.json({ total: count ?? 0, limit: query.limit, offset: query.offset, items: data ?? [] });
  },
});
