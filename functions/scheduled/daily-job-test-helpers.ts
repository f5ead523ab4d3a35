import { inject } from "vitest";
import "../../scripts/test/provided-email.ts";
import type { LogFn } from "../_shared/app-env.ts";
import type { Env } from "../_shared/env.ts";
import { exec, fixtures, testEnv } from "../_test/harness.ts";
import { runDailyJob, type DailyJobOptions, type DailyJobSummary } from "./daily-job.ts";

/**
 * Helpers for the daily job's tests: scoped runs, the rows the job writes, and the recording
 * e-mail API (scripts/test/email-server.ts, reached over HTTP from workerd).
 */

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * A validity end far enough out that nothing acting as of now (the real cron run, which is
 * unscoped) can touch the row: tests move `as_of` instead. Whole minutes, so rendered times are exact.
 */
export const farEnd = (days = 400): number => Math.floor((Date.now() + days * DAY) / MINUTE) * MINUTE;

export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** Runs the daily job for these organizations only (never unscoped: tests share one database). */
export async function runJob(
  organizationIds: string[],
  options: {
    asOf?: number | string;
    env?: Partial<Env>;
    batchSize?: number;
    logs?: LogLine[];
    budget?: Pick<DailyJobOptions, "deadlineMs" | "hardDeadlineMs" | "emailTimeoutMs">;
  } = {},
): Promise<DailyJobSummary> {
  if (organizationIds.length === 0) throw new Error("runJob needs the test's own organizations");
  const log: LogFn = (level, msg, fields = {}) => options.logs?.push({ level, msg, fields });
  return runDailyJob({ ...testEnv, ...options.env } as Env, {
    organizationIds,
    ...(options.asOf !== undefined ? { asOf: typeof options.asOf === "number" ? iso(options.asOf) : options.asOf } : {}),
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...options.budget,
    log,
  });
}

// Rows the job writes ---------------------------------------------------------------------

export interface NoticeRow {
  organization_id: string;
  status_level_id: string;
  level: string;
  valid_until: string;
  threshold_days: number;
  state: "sent" | "skipped";
}

export const noticesOf = (orgIds: string[]) =>
  exec<NoticeRow>(
    `select organization_id, status_level_id, level, valid_until, threshold_days, state
     from public.expiry_notices where organization_id = any($1::uuid[])
     order by organization_id, threshold_days desc`,
    [orgIds],
  );

export interface NotificationRow {
  id: string;
  user_id: string;
  organization_id: string;
  kind: string;
  title: string;
  body: string;
  data: Record<string, any>;
  read_at: string | null;
}

export const notificationsOf = (orgIds: string[]) =>
  exec<NotificationRow>(
    `select id, user_id, organization_id, kind, title, body, data, read_at
     from public.notifications where organization_id = any($1::uuid[]) order by created_at, id`,
    [orgIds],
  );

export interface OutboxRow {
  id: string;
  organization_id: string;
  user_id: string | null;
  recipient: string;
  kind: string;
  subject: string;
  body_text: string;
  state: "pending" | "sent" | "failed" | "dead";
  attempts: number;
  next_attempt_at: string;
  locked_until: string | null;
  last_error: string | null;
  provider_message_id: string | null;
  sent_at: string | null;
}

export const outboxOf = (orgIds: string[]) =>
  exec<OutboxRow>(
    `select id, organization_id, user_id, recipient, kind, subject, body_text, state, attempts, next_attempt_at,
            locked_until, last_error, provider_message_id, sent_at
     from public.email_outbox where organization_id = any($1::uuid[]) order by recipient, created_at`,
    [orgIds],
  );

export interface LevelRow {
  id: string;
  level: string;
  is_active: boolean;
  valid_until: string | null;
  ended_at: string | null;
  end_reason: string | null;
}

export const levelById = async (id: string): Promise<LevelRow> =>
  (await exec<LevelRow>("select id, level, is_active, valid_until, ended_at, end_reason from public.organization_status_levels where id = $1", [id]))[0]!;

export interface HistoryRow {
  status_level_id: string | null;
  level: string;
  action: string;
  actor_id: string | null;
  reason: string | null;
  old_valid_until: string | null;
}

export const historyOf = (orgId: string) =>
  exec<HistoryRow>(
    "select status_level_id, level, action, actor_id, reason, old_valid_until from public.status_level_history where organization_id = $1 order by id",
    [orgId],
  );

// Arranging organizations ----------------------------------------------------------------

/** An organization with one person per role and an active B ending at `validUntil`. */
export async function orgWithB(validUntil: number, options: { timeZone?: string; validFrom?: number } = {}) {
  const people = await fixtures.orgWithPeople({ timeZone: options.timeZone });
  const levelId = await fixtures.levelRow(people.orgId, "B", {
    validUntil: new Date(validUntil),
    validFrom: options.validFrom === undefined ? undefined : new Date(options.validFrom),
  });
  return { ...people, levelId };
}

/**
 * A level A on a subscription that will not renew by itself: `past_due` with a grace period, or
 * `canceled` with the grace still running; both end (valid_until) at `graceUntil`. The level row
 * is marked `in_grace`, as the subscription functions mark it, so it ends as `grace_ended`.
 */
export async function levelAInGrace(orgId: string, graceUntil: number, status: "past_due" | "canceled" = "past_due") {
  const sub = await fixtures.subscription(orgId, { status, currentPeriodEnd: new Date(graceUntil - 14 * DAY) });
  await exec("update public.subscriptions set grace_started_at = $2::timestamptz - interval '14 days', grace_until = $2 where id = $1", [sub.id, iso(graceUntil)]);
  const levelId = await fixtures.levelRow(orgId, "A", { validUntil: new Date(graceUntil), subscriptionId: sub.id });
  await exec("update public.organization_status_levels set in_grace = true where id = $1", [levelId]);
  return { subscriptionId: sub.id, levelId };
}

/**
 * `count` organizations in a few statements, each with an owner and an admin (e-mails
 * `bulk-<tag>-...@example.test`) and an active B ending at `validUntil`.
 */
export async function bulkOrgsWithB(count: number, tag: string, validUntil: number): Promise<{ orgIds: string[]; levelIds: string[] }> {
  const orgs = await exec<{ id: string }>(
    "insert into public.organizations (name) select 'Bulk ' || $2 || ' #' || g from generate_series(1, $1::int) g returning id",
    [count, tag],
  );
  const orgIds = orgs.map((o) => o.id);
  await exec(
    `with people as materialized (
       select o.org_id, r.role, gen_random_uuid() as user_id
       from unnest($1::uuid[]) as o(org_id) cross join (values ('owner'), ('admin')) as r(role)
     ), users as (
       insert into auth.users (id, email)
       select user_id, 'bulk-' || $2 || '-' || role || '-' || left(user_id::text, 8) || '@example.test' from people
       returning id
     )
     insert into public.organization_members (organization_id, user_id, role)
     select org_id, user_id, role from people`,
    [orgIds, tag],
  );
  const levels = await exec<{ id: string }>(
    "insert into public.organization_status_levels (organization_id, level, valid_until) select unnest($1::uuid[]), 'B', $2 returning id",
    [orgIds, iso(validUntil)],
  );
  return { orgIds, levelIds: levels.map((l) => l.id) };
}

// Level C notices ------------------------------------------------------------------------

/** 02:00 UTC (the cron's time) of the day of `ms`. */
export const cronTimeOf = (ms: number): number => Math.floor(ms / DAY) * DAY + 2 * HOUR;

export interface LevelCEpisode {
  kind: "at_risk" | "eligible";
  notice: "sent" | "skipped";
  started_at: number;
  first_failing_on: string | null;
  ended_at: number | null;
  end_reason: string | null;
}

/** The level C episodes of an organization, oldest first (times in ms). */
export async function levelCEpisodesOf(orgId: string): Promise<LevelCEpisode[]> {
  const rows = await exec<Omit<LevelCEpisode, "started_at" | "ended_at"> & { started_at: string; ended_at: string | null }>(
    `select kind, notice, started_at, first_failing_on::text, ended_at, end_reason
     from private.level_c_episodes where organization_id = $1 order by id`,
    [orgId],
  );
  return rows.map((r) => ({ ...r, started_at: Date.parse(r.started_at), ended_at: r.ended_at === null ? null : Date.parse(r.ended_at) }));
}

export interface PlacedReview {
  /** An interval from `asOf`, added in SQL (the database's calendar, as the projection's windows): "-12 months 9 days 12 hours". */
  at: string;
  count?: number;
  /** Answered this long after publication (an interval); null: unanswered. */
  answeredAfter?: string | null;
}

/** Published reviews placed relative to `asOf`. */
export async function reviewsFrom(orgId: string, asOf: number, rows: PlacedReview[]): Promise<void> {
  const spec = rows.map((r) => ({ at: r.at, count: r.count ?? 1, answer: r.answeredAfter === undefined ? "2 hours" : r.answeredAfter }));
  await exec(
    `insert into public.reviews (organization_id, status, published_at, responded_at)
     select $1, 'published', $2::timestamptz + s.at::interval, $2::timestamptz + s.at::interval + s.answer::interval
     from jsonb_to_recordset($3::text::jsonb) as s(at text, count integer, answer text)
     cross join generate_series(1, s.count)`,
    [orgId, iso(asOf), JSON.stringify(spec)],
  );
}

/** `count` reviews in the last weeks before `asOf` (one every 3 days), each answered within 2 hours. */
export const recentReviews = (count: number): PlacedReview[] => Array.from({ length: count }, (_, i) => ({ at: `-${3 * (i + 1)} days` }));

/** An organization with owners and admins, a B ending `bDays` after `asOf`, a published case study and no reviews yet. */
export async function orgWithBAndCaseStudy(asOf: number, options: { timeZone?: string; bDays?: number } = {}) {
  const bEnd = asOf + (options.bDays ?? 400) * DAY;
  const p = await orgWithB(bEnd, { timeZone: options.timeZone });
  await fixtures.caseStudy(p.orgId);
  return { ...p, bEnd };
}

/** The same, holding C on top of its B. */
export async function orgWithC(asOf: number, options: { timeZone?: string } = {}) {
  const p = await orgWithBAndCaseStudy(asOf, options);
  const cLevelId = await fixtures.levelRow(p.orgId, "C");
  return { ...p, cLevelId };
}

// The recording e-mail API -----------------------------------------------------------------

export const emailServer = inject("emailServer");

export interface RecordedEmail {
  seq: number;
  headers: Record<string, string>;
  idempotency_key: string | null;
  authorization: string | null;
  body: { from?: string; to?: string; subject?: string; text?: string } | null;
  status: number;
  message_id: string | null;
}

/** What the recorder received for these recipients (tests run in parallel: always filter). */
export async function recordedFor(recipients: string[]): Promise<RecordedEmail[]> {
  if (recipients.length === 0) throw new Error("filter by the test's own recipients");
  const query = recipients.map((r) => `to=${encodeURIComponent(r)}`).join("&");
  const res = await fetch(`${emailServer.controlUrl}/__requests?${query}`);
  if (!res.ok) throw new Error(`recorder: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { requests: RecordedEmail[] }).requests;
}

export async function recordedContaining(part: string): Promise<RecordedEmail[]> {
  const res = await fetch(`${emailServer.controlUrl}/__requests?contains=${encodeURIComponent(part)}`);
  return ((await res.json()) as { requests: RecordedEmail[] }).requests;
}

/** Makes the recorder fail (500) for these recipients until told otherwise. */
export async function setRecorderFailing(recipients: string[], fail: boolean): Promise<void> {
  if (recipients.length === 0) throw new Error("only ever fail the test's own recipients");
  const res = await fetch(`${emailServer.controlUrl}/__control`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ to: recipients, fail }),
  });
  if (!res.ok) throw new Error(`recorder control: ${res.status} ${await res.text()}`);
}

/** Makes the recorder a slow API for these recipients: it records each request and answers `ms` later. */
export async function setRecorderDelay(recipients: string[], ms: number): Promise<void> {
  if (recipients.length === 0) throw new Error("only ever slow down the test's own recipients");
  const res = await fetch(`${emailServer.controlUrl}/__control`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ to: recipients, delayMs: ms }),
  });
  if (!res.ok) throw new Error(`recorder control: ${res.status} ${await res.text()}`);
}

/** A call the recorder received, with its e-mails and timing (scripts/test/email-server.ts). */
export interface RecordedCall {
  seq: number;
  kind: "single" | "batch";
  received_ms: number;
  answered_ms: number | null;
  status: number;
  idempotency_key: string | null;
  emails: Array<{ to: string; idempotency_key: string | null; status: number; message_id: string | null }>;
}

/** The calls with an e-mail to an address containing `part`, in arrival order. */
export async function recordedCalls(part: string): Promise<RecordedCall[]> {
  const res = await fetch(`${emailServer.controlUrl}/__requests?contains=${encodeURIComponent(part)}`);
  if (!res.ok) throw new Error(`recorder: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { requests: RecordedCall[] }).requests;
}

/** Any recorder rule for these recipients (`failNext`, `status`, `wholeCall`, `delayMs`, ...). */
export async function setRecorderRule(recipients: string[], rule: Record<string, unknown>): Promise<void> {
  if (recipients.length === 0) throw new Error("only ever steer the test's own recipients");
  const res = await fetch(`${emailServer.controlUrl}/__control`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...rule, to: recipients }),
  });
  if (!res.ok) throw new Error(`recorder control: ${res.status} ${await res.text()}`);
}

/**
 * Bindings that send e-mails to the recorder, one per call, 6 at a time, without a rate limit
 * (the recorder has none; the delivery tests set one where they test it).
 */
export const viaRecorder: Partial<Env> = { EMAIL_API_URL: emailServer.url, EMAIL_API_TOKEN: "test-email-api-token", EMAIL_RATE_LIMIT_PER_SECOND: "0" };

/** Bindings that send e-mails through the recorder's batch endpoint, `size` per call. */
export const viaRecorderBatches = (size: number): Partial<Env> => ({
  ...viaRecorder,
  EMAIL_BATCH_API_URL: emailServer.batchUrl,
  EMAIL_BATCH_SIZE: String(size),
});

// Rendering expectations ------------------------------------------------------------------

/** The ISO date (2027-03-15) of an instant in a time zone. */
export const localDate = (ms: number, timeZone: string): string => new Intl.DateTimeFormat("en-CA", { timeZone }).format(new Date(ms));

/** "15 March 2027" and "08:30" for an instant in a time zone (what the notices should show). */
export function localParts(ms: number, timeZone: string): { day: string; time: string } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", { timeZone, day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  return { day: `${parts.day} ${parts.month} ${parts.year}`, time: `${parts.hour}:${parts.minute}` };
}
