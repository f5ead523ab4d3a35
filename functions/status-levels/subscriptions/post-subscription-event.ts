import { createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { createApi, json, jsonBody, noQueryParameters, problems, webhookSignature } from "../../_shared/api.ts";
import type { AppEnv } from "../../_shared/app-env.ts";
import { constantTimeEqual, hmacSha256Hex } from "../../_shared/crypto.ts";
import { config } from "../../_shared/env.ts";
import { unauthorized, unavailable } from "../../_shared/errors.ts";
import { callWriteRpc } from "../../_shared/rpc.ts";
import { plainText, Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseAsService } from "../../_shared/supabase.ts";

export const signatureHeader = "x-status-levels-signature";
export const timestampHeader = "x-status-levels-timestamp";
/** Requests signed longer ago than this (or this far in the future) are refused: replay protection. */
export const toleranceSeconds = 300;

export const SubscriptionEvent = z.strictObject({
  id: plainText(200).min(1).describe("the provider's event id: the idempotency key"),
  subscription_id: plainText(200).min(1).describe("the provider's subscription id"),
  organization_id: Uuid,
  status: z.enum(["active", "past_due", "canceled", "unpaid", "incomplete"]),
  occurred_at: Timestamp.describe("when it happened at the provider (orders events; grace starts here)"),
  current_period_end: Timestamp.nullish().describe("required with status active; null or absent otherwise"),
});

const Outcome = z.object({
  outcome: z.enum(["applied", "stale", "duplicate"]).describe("duplicate: this event id was applied before; the answer is the first one's"),
  event_id: z.string(),
  organization_id: Uuid,
  subscription_id: z.string().describe("the provider's subscription id, as sent"),
  status: z.enum(["active", "past_due", "canceled", "unpaid", "incomplete"]).describe("the subscription's status after all its events"),
  current_period_end: Timestamp.nullable(),
  grace_until: Timestamp.nullable(),
  effects: z.array(z.looseObject({ effect: z.enum(["granted", "validity_updated", "grace_started", "revoked"]) })),
  status_level_id: Uuid.nullable().describe("the organization's active level A after the event (what `ensure_level_a` answered)"),
  action: z.enum(["granted", "already_active"]).nullable().describe("granted: this event granted level A; null: no level A is active"),
});

/**
 * Checks `x-status-levels-signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>` and
 * `x-status-levels-timestamp: <unix seconds>` against the raw body, before anything is parsed.
 */
export async function verifySignature(secret: string, timestamp: string | undefined, signature: string | undefined, rawBody: string, now = Date.now()): Promise<void> {
  if (!timestamp || !signature) throw unauthorized(`sign the request: ${signatureHeader} and ${timestampHeader} are required`);
  if (!/^\d{1,12}$/.test(timestamp)) throw unauthorized(`${timestampHeader} must be Unix seconds`);
  const age = Math.abs(now / 1000 - Number(timestamp));
  if (age > toleranceSeconds) throw unauthorized(`the signature timestamp is ${Math.round(age)} s away from now; at most ${toleranceSeconds} s is accepted`);
  const expected = await hmacSha256Hex(secret, `${timestamp}.${rawBody}`);
  const candidates = signature.split(",").map((part) => part.trim().replace(/^v1=/, ""));
  for (const candidate of candidates) {
    if (await constantTimeEqual(candidate.toLowerCase(), expected)) return;
  }
  throw unauthorized("the signature does not match the body");
}

/** The signature is checked on the raw body before anything parses it. */
const signedByPaymentsService = createMiddleware<AppEnv>(async (c, next) => {
  const secret = config(c.env).SUBSCRIPTION_WEBHOOK_SECRET;
  if (!secret) throw unavailable("misconfigured", "subscription events are not configured on this deployment", {}, 60);
  await verifySignature(secret, c.req.header(timestampHeader), c.req.header(signatureHeader), await c.req.text());
  return next();
});

const route = createRoute({
  method: "post",
  path: "/subscriptions/events",
  operationId: "postSubscriptionEvent",
  summary: "A subscription event from the payments service (signed)",
  description:
    "Signed with HMAC-SHA256 over `timestamp.raw_body` with the shared secret. Applied atomically and once per " +
    "event id (a replay gets the first answer again, as `duplicate`; the same id with another body is a 409); an " +
    "event older than the newest applied one is `stale` and never changes the status. Level A is active while any " +
    "subscription of the organization entitles it: active -> until current_period_end; past_due -> 14 days of " +
    "grace from occurred_at; canceled/unpaid -> until a running grace ends.",
  tags: ["subscriptions"],
  security: webhookSignature,
  middleware: [signedByPaymentsService, noQueryParameters] as const,
  request: { body: jsonBody(SubscriptionEvent) },
  responses: { 200: json(Outcome, "What the event did"), ...problems(400, 401, 404, 409, 413, 415, 422, 503) },
});

export const postSubscriptionEvent = createApi().openapi(route, async (c) => {
  const event = c.req.valid("json");
  c.get("logFields").event_id = event.id;
  const result = await callWriteRpc<"apply_subscription_event", z.infer<typeof Outcome>>(
    c,
    "apply_subscription_event",
    {
      p_event_id: event.id,
      p_provider_subscription_id: event.subscription_id,
      p_organization_id: event.organization_id,
      p_status: event.status,
      p_occurred_at: event.occurred_at,
      p_current_period_end: event.current_period_end ?? undefined,
    },
    { organization: event.organization_id, changed: (applied) => (applied.effects.length > 0 ? [event.organization_id] : []) },
    supabaseAsService(c.env),
  );
  c.get("logFields").outcome = result.outcome;
  return c.json(result, 200);
});
