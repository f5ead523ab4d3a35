import { z } from "zod";
import { constantTimeEqual, hmacSha256Hex } from "../../_shared/crypto.ts";
import { config } from "../../_shared/env.ts";
import { ApiError, badRequest, unauthorized } from "../../_shared/errors.ts";
import { defineRoute, invalidInput } from "../../_shared/route.ts";
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
  current_period_end: Timestamp.optional().describe("required with status active"),
});

const Outcome = z.object({
  outcome: z.enum(["applied", "stale", "duplicate"]),
  event_id: z.string(),
  subscription_id: Uuid,
  status: z.string().optional(),
  current_period_end: Timestamp.nullable().optional(),
  grace_until: Timestamp.nullable().optional(),
  effects: z.array(z.record(z.string(), z.unknown())),
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

export const postSubscriptionEvent = defineRoute({
  method: "post",
  path: "/subscriptions/events",
  operationId: "postSubscriptionEvent",
  summary: "A subscription event from the payments service (signed)",
  description:
    "Signed with HMAC-SHA256 over `timestamp.raw_body` with the shared secret. Applied atomically and once per " +
    "event id (a replay answers `duplicate`); an event older than the newest applied one is `stale` and never " +
    "changes the status. active -> A until current_period_end; past_due -> 14 days of grace from occurred_at; " +
    "canceled/unpaid -> A until a running grace ends, otherwise revoked.",
  tags: ["subscriptions"],
  auth: "signature",
  rawBody: SubscriptionEvent,
  responses: { 200: { description: "What the event did", schema: Outcome } },
  errors: [400, 401, 404, 413, 422, 503],
  handler: async (c) => {
    const secret = config(c.env).SUBSCRIPTION_WEBHOOK_SECRET;
    if (!secret) throw new ApiError(503, "misconfigured", "subscription events are not configured on this deployment");
    const rawBody = await c.req.text();
    await verifySignature(secret, c.req.header(timestampHeader), c.req.header(signatureHeader), rawBody);
    let json: unknown;
    try {
      json = JSON.parse(rawBody);
    } catch {
      throw badRequest("malformed_json", "the request body is not valid JSON");
    }
    const parsed = SubscriptionEvent.safeParse(json);
    if (!parsed.success) throw invalidInput("json", parsed.error);
    const event = parsed.data;
    c.get("logFields").event_id = event.id;
    const result = await callWriteRpc(c, supabaseAsService(c.env), "apply_subscription_event", {
      p_event_id: event.id,
      p_provider_subscription_id: event.subscription_id,
      p_organization_id: event.organization_id,
      p_status: event.status,
      p_occurred_at: event.occurred_at,
      p_current_period_end: event.current_period_end,
    }, {
      organization: event.organization_id,
      changed: (applied: { outcome: string; effects: unknown[] }) => (applied.effects.length > 0 ? [event.organization_id] : []),
    });
    c.get("logFields").outcome = result.outcome;
    return c.json(result);
  },
});
