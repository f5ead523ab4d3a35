import { z } from "zod";

/**
 * What the platform's pages (`/levels`, `/dashboard/organization/status`, `StatusBadge`,
 * `UpgradeRequestForm`) read from the FastAPI service this one replaces, transcribed by hand from
 * DESIGN.md, "The wire contract of the service we replace". One small model per old endpoint.
 *
 * Written apart from the service's own schemas on purpose (nothing here comes from
 * `functions/status-levels/` or `functions/_shared/`): if the service's schemas change, these do
 * not change with them, and the contract tests say so.
 *
 * Superset-tolerant: `z.object` (not strict), so the service's richer fields may sit beside the old
 * ones; every old field must be there, with its old type, unit and meaning.
 */

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const Uuid = z.string().regex(uuidPattern, "a UUID");
/** An ISO 8601 date-time with a zone, as Python's `datetime.isoformat()` gave (a JS `Date` reads it). */
const DateTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/, "an ISO 8601 date-time with a zone")
  .refine((s) => !Number.isNaN(Date.parse(s)), "a date-time a browser can parse");
const Level = z.enum(["A", "B", "C"]);
const Count = z.number().int().min(0);
/** At most one decimal (the old pages print the number as it comes). */
const oneDecimal = (n: number) => Math.abs(n * 10 - Math.round(n * 10)) < 1e-9;

/** The upgrade request object: "carries `target_level` and `status`". */
export const OldUpgradeRequest = z.object({
  target_level: z.enum(["B", "C"]),
  status: z.enum(["pending", "approved", "rejected", "cancelled"]),
});

/** Body of `POST /upgrade-requests`, as the old `UpgradeRequestForm` sends it. */
export const OldUpgradeRequestBody = z.object({
  organization_id: Uuid,
  target_level: z.enum(["B", "C"]),
  message: z.string().optional(),
  evidence_urls: z.array(z.string()).optional(),
});

/**
 * Level C's criteria: eligibility's `criteria`, and the status's `level_c_progress`.
 * `response_rate` is a percent 0-100 (85.0, never 0.85); `avg_response_hours` is hours (never
 * seconds); both null when there is nothing to measure.
 */
export const OldCriteria = z.object({
  has_active_b: z.boolean(),
  review_count: Count,
  review_count_needed: z.literal(15),
  response_rate: z.number().min(0).max(100).refine(oneDecimal, "at most one decimal").nullable(),
  response_rate_needed: z.literal(85),
  avg_response_hours: z.number().min(0).refine(oneDecimal, "at most one decimal").nullable(),
  avg_response_hours_max: z.literal(48),
  public_cases: Count,
  public_cases_needed: z.literal(1),
});

/** `GET /organizations/{id}/eligibility`. */
export const OldEligibility = z.object({
  organization_id: Uuid,
  meets_criteria: z.boolean(),
  criteria: OldCriteria,
  timestamp: DateTime,
});

/**
 * A level row. DESIGN.md names it ("[level row]") without listing its columns; the ones the old
 * pages can rely on are the level and its end (`valid_until`, null for C), which the public
 * projection shows as well.
 */
export const OldLevelRow = z.object({
  level: Level,
  valid_until: DateTime.nullable(),
});

/**
 * The row `POST /organizations/{id}/grant` answers: the level row with what the grant wrote
 * (`valid_until`, `subscription_id`, `notes`) and its `id` (the `status_level_id` that level A's
 * subscription reply names).
 */
export const OldGrantedLevelRow = OldLevelRow.extend({
  id: Uuid,
  subscription_id: Uuid.nullable(),
  notes: z.string().nullable(),
});

/** `GET /organizations/{id}`; `level_c_progress` is null in the public projection. */
export const OldOrganizationStatus = z.object({
  organization_id: Uuid,
  current_level: z.enum(["0", "A", "B", "C"]),
  active_levels: z.array(OldLevelRow),
  level_c_progress: OldCriteria.nullable(),
  can_manage: z.boolean(),
});

/** `POST /organizations/{id}/revoke`: false when nothing was active (still a 200). */
export const OldRevokeResult = z.object({ success: z.boolean() });

/** One entry of `GET /organizations/{id}/history` (`created_at`, `action`, `level`, ...). */
export const OldHistoryEntry = z.object({
  created_at: DateTime,
  action: z.string().min(1),
  level: Level,
});

/** Level A from a subscription: what the old `ensure_level_a` reported. */
export const OldLevelAFromSubscription = z.object({
  status_level_id: Uuid,
  action: z.enum(["granted", "already_active"]),
});

/** Any error: the old pages show `detail`, a sentence for people. */
export const OldError = z.object({ detail: z.string().min(1) });

/** The lists answer a plain JSON array (no envelope). */
export const OldList = <T extends z.ZodType>(item: T) => z.array(item);

/** Every old endpoint and the model of what it answers. */
export const oldEndpoints = {
  "POST /upgrade-requests": OldUpgradeRequest,
  "GET /organizations/{id}/upgrade-requests": OldList(OldUpgradeRequest),
  "GET /organizations/{id}/eligibility": OldEligibility,
  "GET /organizations/{id}": OldOrganizationStatus,
  "POST /organizations/{id}/grant": OldGrantedLevelRow,
  "POST /organizations/{id}/revoke": OldRevokeResult,
  "GET /organizations/{id}/history": OldList(OldHistoryEntry),
  "POST /subscriptions/events": OldLevelAFromSubscription,
} as const;
