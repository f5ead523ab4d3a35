import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, problems } from "../../_shared/api.ts";
import { signedIn } from "../../_shared/auth.ts";
import { pageHeaders, pageItems, paginationQuery } from "../../_shared/pagination.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";

const OutboxState = z.enum(["pending", "sent", "failed", "dead"]);

const OutboxEntry = z.object({
  id: Uuid,
  organization_id: Uuid,
  recipient: z.string(),
  kind: z.string(),
  subject: z.string(),
  state: OutboxState,
  attempts: z.number().int(),
  next_attempt_at: Timestamp,
  last_error: z.string().nullable(),
  sent_at: Timestamp.nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
});

const route = createRoute({
  method: "get",
  path: "/admin/email-outbox",
  operationId: "listEmailOutbox",
  summary: "E-mail deliveries by state, e.g. the dead letters (platform admins)",
  description: "A JSON array, most recently changed first (50 by default); the total in `X-Total-Count`, other pages in `Link`.",
  tags: ["admin"],
  security: bearerAuth,
  middleware: [signedIn] as const,
  request: { query: paginationQuery(50).extend({ state: OutboxState.default("dead") }) },
  responses: { 200: json(z.array(OutboxEntry), "A page of outbox entries", pageHeaders), ...problems(400, 401, 403, 503) },
});

type OutboxPage = { total: number; items: z.infer<typeof OutboxEntry>[] };

export const listEmailOutbox = createApi().openapi(route, async (c) => {
  const { limit, offset, state } = c.req.valid("query");
  const page = await callRpc<"list_email_outbox", OutboxPage>(supabaseForRequest(c), "list_email_outbox", {
    p_state: state,
    p_limit: limit,
    p_offset: offset,
  });
  return c.json(pageItems(c, page, { limit, offset }), 200);
});
