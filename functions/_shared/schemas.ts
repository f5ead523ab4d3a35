import { z } from "zod";

/**
 * The API's models. Request schemas are strict (unknown fields are a 400); response schemas
 * document what the SQL functions return and feed the OpenAPI document.
 */

/** Lowercased as it is parsed, so one organization makes one cache key whatever case a client sends. */
export const Uuid = z.uuid({ error: "must be a UUID" }).toLowerCase();
export const Level = z.enum(["A", "B", "C"], { error: "must be A, B or C" });
export const RequestableLevel = z.enum(["B", "C"], { error: "must be B or C" });
export const CurrentLevel = z.enum(["0", "A", "B", "C"]);
/**
 * Dates the product means: years 2000 to 2199 as written, with a UTC offset within ±14:00 (the
 * widest in use). Postgres would refuse some of what ISO 8601 allows (year 0000, offsets past
 * ±15:59) with an error the caller could not act on.
 */
export const Timestamp = z.iso
  .datetime({ offset: true, abort: true, error: "must be an ISO 8601 date-time with a time zone, e.g. 2027-05-01T00:00:00Z" })
  .refine((s) => {
    const year = Number(s.slice(0, 4));
    return year >= 2000 && year <= 2199;
  }, { error: "must be a date between the years 2000 and 2199" })
  .refine((s) => {
    const offset = /([+-])(\d{2}):?(\d{2})$/.exec(s);
    return !offset || Number(offset[2]) * 60 + Number(offset[3]) <= 14 * 60;
  }, { error: "must have a UTC offset between -14:00 and +14:00" });

// C0 control characters other than tab, newline and carriage return (NUL among them, which
// Postgres text cannot hold), and UTF-16 halves without their pair.
const controlCharacter = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isPlainText = (s: string) => !controlCharacter.test(s);
const plainTextError = { error: "must not contain control characters (only tab and line breaks) or unpaired surrogates" };

/** Text a person or a system wrote: bounded, no control characters except tab and line breaks. */
export const plainText = (max: number) =>
  z.string().max(max, { error: `must be at most ${max} characters` }).refine(isPlainText, plainTextError);
// Checked before trimming, which would drop a leading vertical tab or form feed silently.
const requiredText = (max: number) =>
  z.string().refine(isPlainText, plainTextError).trim().min(1, { error: "must not be empty" }).max(max, { error: `must be at most ${max} characters` });

export const OrganizationParams = z.strictObject({ id: Uuid });
export const RequestParams = z.strictObject({ id: Uuid });

export const Pagination = z.strictObject({
  limit: z.coerce.number({ error: "must be a number" }).int().min(1).max(200).default(50),
  offset: z.coerce.number({ error: "must be a number" }).int().min(0).max(1_000_000).default(0),
});

export const GrantBody = z.strictObject({
  level: Level,
  valid_until: Timestamp.optional(),
  subscription_id: Uuid.optional(),
  notes: plainText(2000).optional(),
});

export const RevokeBody = z.strictObject({
  level: Level,
  reason: requiredText(2000),
});

export const RenewBody = z.strictObject({ notes: plainText(2000).optional() });

export const ValidityBody = z.strictObject({
  level: z.enum(["A", "B"], { error: "must be A or B (level C has no end date)" }),
  valid_until: Timestamp,
  reason: plainText(2000).optional(),
});

export const EvidenceUrl = z
  .url({ protocol: /^https$/, hostname: z.regexes.domain, error: "must be an https:// URL" })
  .max(2048, { error: "must be at most 2048 characters" })
  .refine((s) => isPlainText(s) && !/\s/.test(s), { error: "must not contain spaces or control characters" })
  // Credentials (`https://user:pass@host/`) would be shown to everyone who reviews the request.
  .refine((s) => !/^https:\/\/[^/?#]*@/i.test(s), { error: "must not contain a user name or password" });

export const CreateUpgradeRequestBody = z.strictObject({
  organization_id: Uuid,
  requested_level: RequestableLevel,
  message: plainText(2000).optional(),
  evidence_urls: z.array(EvidenceUrl).max(10, { error: "at most 10 evidence links" }).default([]),
});

export const ApproveBody = z.strictObject({ notes: plainText(2000).optional() });
export const RejectBody = z.strictObject({ note: requiredText(2000) });

export const RequestListQuery = Pagination.extend({
  status: z.enum(["pending", "approved", "rejected", "cancelled"]).optional(),
});

// Responses -------------------------------------------------------------------------------

export const PublicLevel = z.object({
  level: Level,
  valid_from: Timestamp,
  valid_until: Timestamp.nullable(),
});

export const LevelRow = PublicLevel.extend({
  id: Uuid,
  is_active: z.boolean(),
  granted_at: Timestamp,
  granted_by: Uuid.nullable().describe("null: granted by the system (subscriptions)"),
  subscription_id: Uuid.nullable(),
  notes: z.string().nullable(),
  last_verified_at: Timestamp.nullable(),
  ended_at: Timestamp.nullable(),
  end_reason: z.enum(["revoked", "expired", "grace_ended"]).nullable(),
  revoke_reason: z.string().nullable(),
});

const Criterion = z.object({
  value: z.union([z.number(), z.boolean()]).nullable(),
  threshold: z.union([z.number(), z.boolean()]),
  unit: z.string().optional(),
  comparison: z.literal("below").optional(),
  met: z.boolean(),
  missing: z.string().nullable(),
});

export const LevelCProgress = z.object({
  eligible: z.boolean(),
  evaluated_at: Timestamp,
  criteria: z.object({
    active_level_b: Criterion,
    reviews_last_12_months: Criterion,
    response_rate_last_90_days: Criterion,
    avg_response_time_last_90_days: Criterion,
    published_case_studies: Criterion,
  }),
  missing: z.array(z.string()),
});

export const UpgradeRequest = z.object({
  id: Uuid,
  organization_id: Uuid,
  requested_level: RequestableLevel,
  status: z.enum(["pending", "approved", "rejected", "cancelled"]),
  message: z.string().nullable(),
  evidence_urls: z.array(z.string()),
  requested_by: Uuid,
  created_at: Timestamp,
  decided_by: Uuid.nullable(),
  decided_at: Timestamp.nullable(),
  decision_note: z.string().nullable(),
  granted_status_level_id: Uuid.nullable(),
});

export const OrganizationStatus = z.object({
  organization_id: Uuid,
  current_level: CurrentLevel,
  active_levels: z.array(z.union([LevelRow, PublicLevel])),
  level_c_progress: LevelCProgress.nullable().describe("null in the public projection"),
  pending_upgrade_request: z
    .object({ id: Uuid, requested_level: RequestableLevel, created_at: Timestamp, requested_by: Uuid })
    .nullable(),
  can_manage: z.boolean().describe("the caller may ask for upgrades and manage requests"),
  visibility: z.enum(["full", "public"]),
  evaluated_at: Timestamp,
});

export const Eligibility = z.object({
  organization_id: Uuid,
  current_level: CurrentLevel,
  next_level: z.enum(["B", "C"]).nullable(),
  how_to_get_there: z.string(),
  can_request_upgrade: z.boolean(),
  pending_upgrade_request: OrganizationStatus.shape.pending_upgrade_request,
  level_c_progress: LevelCProgress,
});

export const HistoryEntry = z.object({
  id: z.number().int(),
  level: Level,
  action: z.enum([
    "granted", "renewed", "revoked", "expired", "grace_started", "grace_ended", "validity_updated",
    "request_created", "request_approved", "request_rejected", "request_cancelled",
  ]),
  actor_id: Uuid.nullable().describe("null: the system"),
  reason: z.string().nullable(),
  notes: z.string().nullable(),
  old_valid_until: Timestamp.nullable(),
  new_valid_until: Timestamp.nullable(),
  status_level_id: Uuid.nullable(),
  upgrade_request_id: Uuid.nullable(),
  subscription_event_id: z.string().nullable(),
  created_at: Timestamp,
});

export const page = <T extends z.ZodType>(item: T) =>
  z.object({ total: z.number().int(), limit: z.number().int(), offset: z.number().int(), items: z.array(item) });

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string().describe("stable machine-readable error code"),
    detail: z.string(),
    instance: z.string(),
    request_id: z.string().optional(),
    hint: z.string().optional(),
    errors: z.array(z.object({ in: z.string(), path: z.string(), message: z.string() })).optional(),
  })
  .describe("RFC 9457 problem details");
