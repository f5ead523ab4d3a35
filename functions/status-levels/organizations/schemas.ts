import { z } from "@hono/zod-openapi";
import { CurrentLevel, Level, plainText, PublicLevel, requiredText, Timestamp, Uuid } from "../../_shared/schemas.ts";
import { PendingUpgradeRequest } from "../upgrade-requests/schemas.ts";

export const OrganizationParams = z.strictObject({ id: Uuid });

export const GrantBody = z.strictObject({
  level: Level,
  valid_until: Timestamp.optional(),
  subscription_id: Uuid.optional(),
  notes: plainText(2000).optional(),
});

export const RevokeBody = z.strictObject({ level: Level, reason: requiredText(2000) });

export const RenewBody = z.strictObject({ notes: plainText(2000).optional() });

export const ValidityBody = z.strictObject({
  level: z.enum(["A", "B"], { error: "must be A or B (level C has no end date)" }),
  valid_until: Timestamp,
  reason: plainText(2000).optional(),
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
}).openapi("LevelRow");

/**
 * Level C's criteria as the platform's pages have always read them (`level_c_progress` of the
 * status, `criteria` of the eligibility): values and thresholds. Percent 0-100 and hours, both
 * truncated to one decimal; null while there are no reviews (or no answered ones) in 90 days.
 */
export const LevelCCriteria = z
  .object({
    has_active_b: z.boolean(),
    review_count: z.number().int().describe("published reviews in the last 12 months"),
    review_count_needed: z.number().int(),
    response_rate: z.number().min(0).max(100).nullable().describe("percent of the last 90 days' reviews answered"),
    response_rate_needed: z.number(),
    avg_response_hours: z.number().min(0).nullable().describe("average hours to answer, over the last 90 days' answered reviews"),
    avg_response_hours_max: z.number().describe("the average must be below this"),
    public_cases: z.number().int().describe("published case studies"),
    public_cases_needed: z.number().int(),
  })
  .openapi("LevelCCriteria");

const ChecklistItem = z.object({
  value: z.union([z.number(), z.boolean()]).nullable(),
  needed: z.union([z.number(), z.boolean()]),
  comparison: z.enum(["at_least", "below", "equals"]),
  window: z.string().describe("the period the value is measured over"),
  unit: z.enum(["percent", "hours"]).optional(),
  met: z.boolean(),
  missing: z.string().nullable().describe("what is missing, for people; null when met"),
});

/** Per criterion of `LevelCCriteria` (same names): whether it is met and what is missing. */
export const LevelCChecklist = z
  .object({
    meets_criteria: z.boolean(),
    evaluated_at: Timestamp,
    items: z.object({
      has_active_b: ChecklistItem,
      review_count: ChecklistItem,
      response_rate: ChecklistItem,
      avg_response_hours: ChecklistItem,
      public_cases: ChecklistItem,
    }),
    missing: z.array(z.string()).describe("every criterion's `missing`, in order"),
  })
  .openapi("LevelCChecklist");

/** A calendar date in the organization's time zone, e.g. 2027-01-14. */
export const LocalDate = z.iso.date().describe("a date in the organization's time zone");

const CriterionValue = z.union([z.number(), z.boolean()]).nullable();

const ProjectedCriterion = z.object({
  value_now: CriterionValue,
  met_now: z.boolean(),
  value_at_horizon: CriterionValue,
  met_at_horizon: z.boolean(),
  needed: z.union([z.number(), z.boolean()]),
  changes_on: LocalDate.nullable().describe("the first date it stops (or starts) being met; null: no change within the horizon"),
  keep: z.string().nullable().describe("what would keep it met through the horizon, e.g. \"3 more published reviews before 2027-01-14\""),
  valid_until: Timestamp.nullable().optional().describe("has_active_b: when level B ends"),
  days: z.array(z.object({ date: LocalDate, value: CriterionValue, met: z.boolean() })).optional().describe("the value at the end of each date of the horizon"),
});

/**
 * Level C's criteria over the coming days if nothing new happens (no new reviews, responses or
 * case studies; levels as they are), as the 12-month and 90-day windows slide. The value on a date
 * is the value at the end of that date in the organization's time zone.
 */
export const LevelCProjection = z
  .object({
    organization_id: Uuid,
    as_of: Timestamp,
    time_zone: z.string(),
    today: LocalDate,
    horizon_days: z.number().int(),
    horizon_date: LocalDate,
    meets_criteria_now: z.boolean(),
    meets_criteria_at_horizon: z.boolean(),
    first_failing_on: LocalDate.nullable().describe("meeting the criteria now: the first date they stop being met"),
    first_meeting_on: LocalDate.nullable().describe("not meeting them now: the first date they are met"),
    criteria: z.object({
      has_active_b: ProjectedCriterion,
      review_count: ProjectedCriterion,
      response_rate: ProjectedCriterion,
      avg_response_hours: ProjectedCriterion,
      public_cases: ProjectedCriterion,
    }),
    failing: z
      .array(z.object({ criterion: z.string(), fails_on: LocalDate, value_now: CriterionValue, met_now: z.boolean(), needed: z.union([z.number(), z.boolean()]), keep: z.string().nullable() }))
      .describe("the criteria not met now or stopping within the horizon, soonest first"),
    days: z.array(z.object({ date: LocalDate, meets_criteria: z.boolean() })).optional(),
  })
  .openapi("LevelCProjection");

export const OrganizationStatus = z
  .object({
    organization_id: Uuid,
    current_level: CurrentLevel,
    active_levels: z.array(z.union([LevelRow, PublicLevel])).describe("full rows for members and platform admins, the public projection for others"),
    level_c_progress: LevelCCriteria.nullable().describe("null in the public projection"),
    level_c_checklist: LevelCChecklist.nullable().describe("null in the public projection"),
    level_c_projection: LevelCProjection.nullable().describe("the next 30 days (without `days`); null in the public projection"),
    pending_upgrade_request: PendingUpgradeRequest.nullable(),
    can_manage: z.boolean().describe("the caller may ask for upgrades and manage requests"),
    visibility: z.enum(["full", "public"]),
    evaluated_at: Timestamp,
  })
  .openapi("OrganizationStatus");

export const Eligibility = z
  .object({
    organization_id: Uuid,
    meets_criteria: z.boolean().describe("level C's criteria all hold now"),
    criteria: LevelCCriteria,
    timestamp: Timestamp.describe("when the criteria were evaluated"),
    current_level: CurrentLevel,
    next_level: z.enum(["B", "C"]).nullable(),
    how_to_get_there: z.string(),
    can_request_upgrade: z.boolean(),
    pending_upgrade_request: PendingUpgradeRequest.nullable(),
    level_c_checklist: LevelCChecklist,
    level_c_projection: LevelCProjection.describe("the criteria over the horizon asked for (`horizon`, 30 days by default), day by day"),
  })
  .openapi("Eligibility");

export const HistoryEntry = z
  .object({
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
    subscription_id: Uuid.nullable().describe("level A: the subscription whose event caused the change"),
    created_at: Timestamp,
  })
  .openapi("HistoryEntry");

export const RevokeResult = z.object({
  success: z.boolean().describe("whether a level was active (and is now revoked); false is still a 200"),
  organization_id: Uuid,
  level: Level,
});
