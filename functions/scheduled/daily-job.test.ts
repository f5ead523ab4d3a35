import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Env } from "../_shared/env.ts";
import { body, call, deadUrl, exec, expectProblem, fixtures, holdLocks, listBody, stack, testEnv } from "../_test/harness.ts";
import worker from "../index.ts";
import { DailyJobFailed, runDailyJob, type DailyJobSummary, type StepSummary } from "./daily-job.ts";
import {
  DAY,
  HOUR,
  MINUTE,
  bulkOrgsWithB,
  cronTimeOf,
  farEnd,
  historyOf,
  iso,
  levelAInGrace,
  levelById,
  levelCEpisodesOf,
  localDate,
  localParts,
  noticesOf,
  notificationsOf,
  orgWithB,
  orgWithBAndCaseStudy,
  orgWithC,
  outboxOf,
  recentReviews,
  recordedCalls,
  recordedContaining,
  recordedFor,
  reviewsFrom,
  runJob,
  setRecorderDelay,
  setRecorderFailing,
  setRecorderRule,
  viaRecorder,
  viaRecorderBatches,
  type LogLine,
} from "./daily-job-test-helpers.ts";

/**
 * The daily job (DESIGN.md, "The daily job"). Every run is scoped to the test's own organizations
 * and acts as of a time far in the future, except the one test of the real cron entry at the end
 * (unscoped, as of now), which asserts on its own organizations only. Everything that runs the job
 * lives in this one file, so that cron run can never pick up another test's half-done work.
 */

const ORG_NAME = "Test organization";
const sentThresholds = (rows: Array<{ threshold_days: number; state: string }>) => rows.filter((r) => r.state === "sent").map((r) => r.threshold_days);
const skippedThresholds = (rows: Array<{ threshold_days: number; state: string }>) => rows.filter((r) => r.state === "skipped").map((r) => r.threshold_days);
const plural = (n: number) => (n === 1 ? "day" : "days");

async function readStatus(orgId: string, token: string) {
  const res = await call(`/status-levels/organizations/${orgId}`, { token });
  expect(res.status).toBe(200);
  return { cache: res.headers.get("x-cache"), view: await body(res) };
}

describe("daily job: expiry notices at 60, 30, 7 and 1 days", () => {
  it.each([60, 30, 7, 1])("a level B ending in %i day(s) gets that notice, for its owners and admins, in-app and by e-mail", async (days) => {
    const end = farEnd();
    const p = await orgWithB(end);
    const asOf = end - days * DAY + HOUR;

    const summary = await runJob([p.orgId], { asOf });

    expect(summary.ok).toBe(true);
    expect(summary.as_of).toBe(iso(asOf));
    expect(summary.steps.expiry_notices).toMatchObject({ ok: true, notices: 1, by_threshold: { ...{ "60": 0, "30": 0, "7": 0, "1": 0 }, [String(days)]: 1 } });
    const notices = await noticesOf([p.orgId]);
    expect(sentThresholds(notices)).toEqual([days]);
    // Nothing was recorded before: the higher thresholds are recorded as skipped, never sent late.
    expect(skippedThresholds(notices)).toEqual([60, 30, 7].filter((d) => d > days));
    expect(notices.every((n) => n.status_level_id === p.levelId && Date.parse(n.valid_until) === end)).toBe(true);

    const { day } = localParts(end, "UTC");
    const notifications = await notificationsOf([p.orgId]);
    expect(notifications.map((n) => n.user_id).sort()).toEqual([p.owner.id, p.admin.id].sort());
    for (const n of notifications) {
      expect(n).toMatchObject({ kind: "expiry_notice", title: `Level B ends in ${days} ${plural(days)}, on ${day}`, read_at: null });
      expect(n.data).toMatchObject({ level: "B", threshold_days: days, status_level_id: p.levelId });
      expect(n.body).toContain("ask for a renewal");
    }
    const outbox = await outboxOf([p.orgId]);
    expect(outbox.map((e) => e.recipient).sort()).toEqual([p.owner.email, p.admin.email].sort());
    for (const e of outbox) {
      expect(e).toMatchObject({ kind: "expiry_notice", state: "sent", attempts: 1, subject: `[${ORG_NAME}] Your level B ends in ${days} ${plural(days)}, on ${day}` });
      expect(e.body_text).toContain(`Level B of ${ORG_NAME} ends on ${day}`);
    }
    expect(summary.steps.deliver).toMatchObject({ ok: true, notifications: 2, emails_enqueued: 2, sent: 2 });
    // Without an e-mail API the e-mails are logged: no provider call is made or counted.
    expect(summary.steps.deliver.provider_calls).toBe(0);
  });

  it("notices several organizations at their own thresholds in one run, by level", async () => {
    const asOf = farEnd(300);
    const b60 = await orgWithB(asOf + 59 * DAY + 12 * HOUR);
    const b30 = await orgWithB(asOf + 29 * DAY + 12 * HOUR);
    const b7 = await orgWithB(asOf + 6 * DAY + 12 * HOUR);
    const a1 = await fixtures.orgWithPeople();
    await levelAInGrace(a1.orgId, asOf + 12 * HOUR);
    // C on top of a B far from its end, meeting level C's criteria: neither gets a notice.
    const c = await orgWithB(asOf + 200 * DAY);
    await fixtures.levelRow(c.orgId, "C");
    await fixtures.caseStudy(c.orgId);
    await reviewsFrom(c.orgId, asOf, recentReviews(15));
    const orgs = [b60.orgId, b30.orgId, b7.orgId, a1.orgId, c.orgId];

    const logs: LogLine[] = [];
    const summary = await runJob(orgs, { asOf, logs });

    expect(summary.ok).toBe(true);
    // One structured summary line: counts per step and the duration.
    const summaryLines = logs.filter((l) => l.msg === "daily job summary");
    expect(summaryLines).toHaveLength(1);
    expect(summaryLines[0]!.level).toBe("info");
    expect(summaryLines[0]!.fields).toMatchObject({ ok: true, as_of: iso(asOf), duration_ms: expect.any(Number), steps: { expiry_notices: { notices: 4 }, deliver: { notifications: 8 } } });
    expect(summary.steps.expiry_notices).toMatchObject({ notices: 4, skipped: 0 + 1 + 2 + 3, by_threshold: { "60": 1, "30": 1, "7": 1, "1": 1 } });
    const notices = await noticesOf(orgs);
    const sentBy = (orgId: string) => sentThresholds(notices.filter((n) => n.organization_id === orgId));
    expect(sentBy(b60.orgId)).toEqual([60]);
    expect(sentBy(b30.orgId)).toEqual([30]);
    expect(sentBy(b7.orgId)).toEqual([7]);
    expect(sentBy(a1.orgId)).toEqual([1]);
    expect(notices.filter((n) => n.organization_id === c.orgId)).toEqual([]);

    const notifications = await notificationsOf(orgs);
    expect(notifications).toHaveLength(8);
    expect(notifications.filter((n) => n.organization_id === c.orgId)).toEqual([]);
    expect(notifications.find((n) => n.organization_id === a1.orgId)!.title).toMatch(/^Level A ends in 1 day, on /);
    expect(await outboxOf(orgs)).toHaveLength(8);
  });

  it("sends nothing when nothing is due", async () => {
    const asOf = farEnd(300);
    const later = await orgWithB(asOf + 61 * DAY);
    const muchLater = await orgWithB(asOf + 300 * DAY);
    const orgs = [later.orgId, muchLater.orgId];

    const summary = await runJob(orgs, { asOf });

    expect(summary.ok).toBe(true);
    expect(summary.steps.expire).toMatchObject({ ok: true, expired: 0 });
    expect(summary.steps.end_grace).toMatchObject({ ok: true, graces_ended: 0 });
    expect(summary.steps.expiry_notices).toMatchObject({ ok: true, notices: 0, skipped: 0 });
    expect(summary.steps.deliver).toMatchObject({ ok: true, notifications: 0, emails_enqueued: 0 });
    expect(await noticesOf(orgs)).toEqual([]);
    expect(await notificationsOf(orgs)).toEqual([]);
    expect(await outboxOf(orgs)).toEqual([]);
    expect((await levelById(later.levelId)).is_active).toBe(true);
  });

  it("gives each of 120 due organizations exactly one notice in one run (several batches)", async () => {
    const end = farEnd();
    const tag = crypto.randomUUID().slice(0, 8);
    const { orgIds, levelIds } = await bulkOrgsWithB(120, tag, end);
    const asOf = end - 7 * DAY + HOUR;

    const summary = await runJob(orgIds, { asOf, batchSize: 50, env: viaRecorder });

    expect(summary.ok).toBe(true);
    expect(summary.steps.expiry_notices).toMatchObject({ ok: true, notices: 120, skipped: 240, by_threshold: { "60": 0, "30": 0, "7": 120, "1": 0 } });
    expect(summary.steps.expiry_notices.batches).toBeGreaterThanOrEqual(3);
    expect(summary.steps.expiry_notices.incomplete).toBeUndefined();
    const perRow = await exec<{ status_level_id: string; sent: number }>(
      `select status_level_id, count(*) filter (where state = 'sent')::int as sent
       from public.expiry_notices where organization_id = any($1::uuid[]) group by status_level_id`,
      [orgIds],
    );
    expect(perRow.map((r) => r.status_level_id).sort()).toEqual([...levelIds].sort());
    expect(perRow.every((r) => r.sent === 1)).toBe(true);

    const [counts] = await exec<{ notifications: number; users: number; emails: number; sent: number }>(
      `select (select count(*) from public.notifications where organization_id = any($1::uuid[]))::int as notifications,
              (select count(distinct user_id) from public.notifications where organization_id = any($1::uuid[]))::int as users,
              (select count(*) from public.email_outbox where organization_id = any($1::uuid[]))::int as emails,
              (select count(*) from public.email_outbox where organization_id = any($1::uuid[]) and state = 'sent')::int as sent`,
      [orgIds],
    );
    expect(counts).toEqual({ notifications: 240, users: 240, emails: 240, sent: 240 });
    const recorded = await recordedContaining(`bulk-${tag}-`);
    expect(recorded).toHaveLength(240);
    expect(new Set(recorded.map((r) => r.idempotency_key)).size).toBe(240);

    const again = await runJob(orgIds, { asOf: asOf + HOUR, batchSize: 50, env: viaRecorder });
    expect(again.steps.expiry_notices).toMatchObject({ notices: 0, skipped: 0 });
    expect(await recordedContaining(`bulk-${tag}-`)).toHaveLength(240);
  });

  it("ignores inactive rows and rows without an end (C)", async () => {
    const asOf = farEnd(300);
    const p = await fixtures.orgWithPeople();
    const inactiveB = await fixtures.levelRow(p.orgId, "B", { validUntil: new Date(asOf + 5 * DAY), isActive: false });
    await fixtures.levelRow(p.orgId, "C");
    const lapsedInactive = await fixtures.orgWithPeople();
    await fixtures.levelRow(lapsedInactive.orgId, "B", { validUntil: new Date(asOf - DAY), isActive: false });
    const orgs = [p.orgId, lapsedInactive.orgId];

    const summary = await runJob(orgs, { asOf });

    expect(summary.steps.expire).toMatchObject({ ok: true, expired: 0 });
    expect(summary.steps.expiry_notices).toMatchObject({ ok: true, notices: 0, skipped: 0 });
    expect(await noticesOf(orgs)).toEqual([]);
    // Its C without an active B does not meet level C's criteria: that is the level C step's notice.
    expect((await notificationsOf(orgs)).map((n) => [n.organization_id, n.kind])).toEqual([[p.orgId, "level_c_at_risk"], [p.orgId, "level_c_at_risk"]]);
    expect(await historyOf(p.orgId)).toEqual([]);
    expect(await historyOf(lapsedInactive.orgId)).toEqual([]);
    expect((await levelById(inactiveB)).end_reason).toBe("expired");
  });

  it("notices a level A only when it will not renew by itself (grace or cancelled), never with an active subscription", async () => {
    const asOf = farEnd(300);
    const end = asOf + 20 * DAY;
    const active = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(active.orgId, { status: "active", currentPeriodEnd: new Date(end) });
    await fixtures.levelRow(active.orgId, "A", { validUntil: new Date(end), subscriptionId: sub.id });
    const grace = await fixtures.orgWithPeople();
    await levelAInGrace(grace.orgId, end, "past_due");
    const cancelled = await fixtures.orgWithPeople();
    await levelAInGrace(cancelled.orgId, end, "canceled");
    const orgs = [active.orgId, grace.orgId, cancelled.orgId];

    const summary = await runJob(orgs, { asOf });

    expect(summary.steps.expiry_notices).toMatchObject({ notices: 2, by_threshold: { "30": 2 } });
    const notices = await noticesOf(orgs);
    expect(notices.filter((n) => n.organization_id === active.orgId)).toEqual([]);
    expect(sentThresholds(notices.filter((n) => n.organization_id === grace.orgId))).toEqual([30]);
    expect(sentThresholds(notices.filter((n) => n.organization_id === cancelled.orgId))).toEqual([30]);
    expect(await notificationsOf([active.orgId])).toEqual([]);
    const mails = await outboxOf([grace.orgId, cancelled.orgId]);
    expect(mails).toHaveLength(4);
    for (const m of mails) {
      expect(m.subject).toMatch(/Your level A ends in 20 days/);
      expect(m.body_text).toContain("Your subscription will not renew by itself");
    }
  });

  it("shows dates in the organization's time zone (Asia/Tokyo, America/New_York), with the zone's name", async () => {
    const dayStart = Math.floor((Date.now() + 400 * DAY) / DAY) * DAY;
    const cases = [
      // 23:30 UTC is 08:30 the next day in Tokyo.
      { timeZone: "Asia/Tokyo", end: dayStart + 23 * HOUR + 30 * MINUTE },
      // 02:30 UTC is the evening before in New York.
      { timeZone: "America/New_York", end: dayStart + 2 * HOUR + 30 * MINUTE },
    ];
    for (const { timeZone, end } of cases) {
      const p = await orgWithB(end, { timeZone });
      await runJob([p.orgId], { asOf: end - 30 * DAY + 2 * HOUR });

      const local = localParts(end, timeZone);
      const utc = localParts(end, "UTC");
      expect(local.day, "the test needs a local date that differs from the UTC one").not.toBe(utc.day);
      const [n] = await notificationsOf([p.orgId]);
      expect(n!.title, timeZone).toBe(`Level B ends in 30 days, on ${local.day}`);
      expect(n!.body, timeZone).toContain(`ends on ${local.day} at ${local.time} (${timeZone})`);
      const [mail] = await outboxOf([p.orgId]);
      expect(mail!.subject, timeZone).toBe(`[${ORG_NAME}] Your level B ends in 30 days, on ${local.day}`);
      expect(mail!.body_text, timeZone).toContain(`Level B of ${ORG_NAME} ends on ${local.day} at ${local.time} (${timeZone}).`);
      expect(mail!.body_text, timeZone).not.toContain(utc.day);
    }
  });
});

describe("daily job: in-app notifications", () => {
  it("are for owners and admins only, readable by them through the API, invisible to others, and can be marked read", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    await runJob([p.orgId], { asOf: end - 7 * DAY + HOUR });

    const list = async (token: string | null, query = "") => call(`/status-levels/notifications${query}`, { token });
    const ownerList = await listBody(await list(p.owner.token));
    expect(ownerList.total).toBe(1);
    expect(ownerList.items[0]).toMatchObject({ organization_id: p.orgId, kind: "expiry_notice", title: expect.stringMatching(/^Level B ends in 7 days/), read_at: null });
    expect(ownerList.items[0]!.body).toContain("ends on");
    expect(ownerList.items[0]!.data).toMatchObject({ level: "B", threshold_days: 7 });
    const adminList = await listBody(await list(p.admin.token));
    expect(adminList.total).toBe(1);
    for (const who of [p.manager, p.member, p.outsider, p.platformAdmin]) {
      const res = await list(who.token);
      expect(res.status).toBe(200);
      expect((await listBody(res)).total).toBe(0);
    }
    await expectProblem(await list(null), 401, "unauthorized");

    const ownerNotification = ownerList.items[0]!.id as string;
    const adminNotification = adminList.items[0]!.id as string;
    // Someone else's notification is not theirs to mark.
    const foreign = await call("/status-levels/notifications/read", { method: "POST", token: p.member.token, json: { ids: [adminNotification] } });
    expect(await body(foreign)).toEqual({ marked: 0 });
    const marked = await call("/status-levels/notifications/read", { method: "POST", token: p.owner.token, json: { ids: [ownerNotification, adminNotification] } });
    expect(marked.status).toBe(200);
    expect(await body(marked)).toEqual({ marked: 1 });
    expect((await listBody(await list(p.owner.token, "?unread=true"))).total).toBe(0);
    expect((await listBody(await list(p.owner.token))).items[0]!.read_at).not.toBeNull();
    expect((await listBody(await list(p.admin.token, "?unread=true"))).total).toBe(1);
    // Without ids: all of the caller's.
    expect(await body(await call("/status-levels/notifications/read", { method: "POST", token: p.admin.token, json: {} }))).toEqual({ marked: 1 });
    expect((await listBody(await list(p.admin.token, "?unread=true"))).total).toBe(0);
  });
});

describe("daily job: exactly once", () => {
  const counts = async (orgIds: string[]) => {
    const [row] = await exec<{ sent: number; skipped: number; notifications: number; emails: number; emails_sent: number; queued: number }>(
      `select (select count(*) from public.expiry_notices where organization_id = any($1::uuid[]) and state = 'sent')::int as sent,
              (select count(*) from public.expiry_notices where organization_id = any($1::uuid[]) and state = 'skipped')::int as skipped,
              (select count(*) from public.notifications where organization_id = any($1::uuid[]))::int as notifications,
              (select count(*) from public.email_outbox where organization_id = any($1::uuid[]))::int as emails,
              (select count(*) from public.email_outbox where organization_id = any($1::uuid[]) and state = 'sent' and attempts = 1)::int as emails_sent,
              (select count(*) from public.notification_queue where organization_id = any($1::uuid[]))::int as queued`,
      [orgIds],
    );
    return row!;
  };

  it("running the job twice sends each notice once", async () => {
    const end = farEnd();
    const a = await orgWithB(end);
    const b = await orgWithB(end + 20 * DAY);
    const orgs = [a.orgId, b.orgId];
    const asOf = end - 30 * DAY + HOUR;

    await runJob(orgs, { asOf, env: viaRecorder });
    const first = await counts(orgs);
    expect(first).toEqual({ sent: 2, skipped: 1, notifications: 4, emails: 4, emails_sent: 4, queued: 2 });
    const second = await runJob(orgs, { asOf: asOf + 2 * HOUR, env: viaRecorder });
    expect(second.steps.expiry_notices).toMatchObject({ notices: 0, skipped: 0 });
    expect(second.steps.deliver).toMatchObject({ notifications: 0, emails_enqueued: 0 });
    expect(await counts(orgs)).toEqual(first);
    const recorded = await recordedFor([a.owner.email, a.admin.email, b.owner.email, b.admin.email]);
    expect(recorded).toHaveLength(4);
  });

  it("two runs at the same time send each notice once", async () => {
    const end = farEnd();
    const people = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => orgWithB(end + i * 9 * DAY)));
    const orgs = people.map((p) => p.orgId);
    const asOf = end - 7 * DAY + HOUR; // due thresholds: 7, 30, 30, 60, 60, 60

    const runs = await Promise.all([runJob(orgs, { asOf, env: viaRecorder }), runJob(orgs, { asOf, env: viaRecorder })]);

    expect(runs.map((r) => r.ok)).toEqual([true, true]);
    const total = (key: string, step: keyof DailyJobSummary["steps"]) => runs.reduce((n, r) => n + Number(r.steps[step][key] ?? 0), 0);
    expect(total("notices", "expiry_notices")).toBe(6);
    expect(total("notifications", "deliver")).toBe(12);
    expect(total("sent", "deliver")).toBe(12);
    expect(await counts(orgs)).toEqual({ sent: 6, skipped: 2 + 1 + 1, notifications: 12, emails: 12, emails_sent: 12, queued: 6 });
    const recipients = people.flatMap((p) => [p.owner.email, p.admin.email]);
    const recorded = await recordedFor(recipients);
    expect(recorded.map((r) => r.body?.to).sort()).toEqual([...recipients].sort());

    // And once more, overlapping again, later the same day: still nothing twice.
    await Promise.all([runJob(orgs, { asOf: asOf + HOUR, env: viaRecorder }), runJob(orgs, { asOf: asOf + HOUR, env: viaRecorder })]);
    expect((await counts(orgs)).sent).toBe(6);
    expect(await recordedFor(recipients)).toHaveLength(12);
  });

  it("after a missed week sends only the most urgent notice, records the skipped one, and sends the later ones on later runs", async () => {
    const end = farEnd();
    const p = await orgWithB(end);

    const first = await runJob([p.orgId], { asOf: end - 25 * DAY });
    expect(first.steps.expiry_notices).toMatchObject({ notices: 1, skipped: 1, by_threshold: { "60": 0, "30": 1 } });
    let notices = await noticesOf([p.orgId]);
    expect(notices.map((n) => [n.threshold_days, n.state])).toEqual([[60, "skipped"], [30, "sent"]]);
    expect((await notificationsOf([p.orgId])).map((n) => n.title)).toEqual([expect.stringMatching(/ends in 25 days/), expect.stringMatching(/ends in 25 days/)]);

    // Daily runs in between send nothing more.
    for (const daysLeft of [24, 20, 10, 8]) {
      const run = await runJob([p.orgId], { asOf: end - daysLeft * DAY });
      expect(run.steps.expiry_notices, `${daysLeft} days before`).toMatchObject({ notices: 0, skipped: 0 });
    }
    const seven = await runJob([p.orgId], { asOf: end - 7 * DAY + HOUR });
    expect(seven.steps.expiry_notices).toMatchObject({ notices: 1, skipped: 0, by_threshold: { "7": 1 } });
    const one = await runJob([p.orgId], { asOf: end - DAY + HOUR });
    expect(one.steps.expiry_notices).toMatchObject({ notices: 1, skipped: 0, by_threshold: { "1": 1 } });
    await runJob([p.orgId], { asOf: end - HOUR });

    notices = await noticesOf([p.orgId]);
    expect(notices.map((n) => [n.threshold_days, n.state])).toEqual([[60, "skipped"], [30, "sent"], [7, "sent"], [1, "sent"]]);
    const mails = await outboxOf([p.orgId]);
    expect(mails).toHaveLength(6);
    expect(mails.every((m) => m.state === "sent")).toBe(true);
    expect(mails.map((m) => m.subject.replace(/, on .*/, "")).sort()).toEqual(
      [
        ...Array(2).fill(`[${ORG_NAME}] Your level B ends in 25 days`),
        ...Array(2).fill(`[${ORG_NAME}] Your level B ends in 7 days`),
        ...Array(2).fill(`[${ORG_NAME}] Your level B ends in 1 day`),
      ].sort(),
    );
  });

  it("a renewed B gets its notices again for its new end date", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    await runJob([p.orgId], { asOf: end - 7 * DAY + HOUR });
    expect(sentThresholds(await noticesOf([p.orgId]))).toEqual([7]);
    // Re-verified: valid 18 months more (as the renewal does).
    const newEnd = end + 540 * DAY;
    await exec("update public.organization_status_levels set valid_until = $2, last_verified_at = now() where id = $1", [p.levelId, iso(newEnd)]);

    await runJob([p.orgId], { asOf: end - 6 * DAY });
    expect((await noticesOf([p.orgId])).filter((n) => Date.parse(n.valid_until) === newEnd)).toEqual([]);
    await runJob([p.orgId], { asOf: newEnd - 60 * DAY + HOUR });
    const renewed = (await noticesOf([p.orgId])).filter((n) => Date.parse(n.valid_until) === newEnd);
    expect(renewed.map((n) => [n.threshold_days, n.state])).toEqual([[60, "sent"]]);
    expect(await notificationsOf([p.orgId])).toHaveLength(4);
  });

  it("after a longer gap (45 days to 5 days before the end) skips 30 and sends 7", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    await runJob([p.orgId], { asOf: end - 45 * DAY });
    await runJob([p.orgId], { asOf: end - 5 * DAY });
    expect((await noticesOf([p.orgId])).map((n) => [n.threshold_days, n.state])).toEqual([[60, "sent"], [30, "skipped"], [7, "sent"]]);
    expect(await notificationsOf([p.orgId])).toHaveLength(4);
  });
});

describe("daily job: expiry and grace end", () => {
  it("expires a lapsed level: is_active false, history `expired` by the system, fresh reads, notifications", async () => {
    const end = Date.now() + 10 * DAY;
    const p = await orgWithB(end);
    const before = await readStatus(p.orgId, p.member.token);
    expect(before.view.current_level).toBe("B");
    expect((await readStatus(p.orgId, p.member.token)).cache).toBe("hit");

    const summary = await runJob([p.orgId], { asOf: end + HOUR });

    expect(summary.ok).toBe(true);
    expect(summary.steps.expire).toMatchObject({ ok: true, expired: 1 });
    expect(summary.steps.end_grace).toMatchObject({ ok: true, graces_ended: 0 });
    const row = await levelById(p.levelId);
    expect(row).toMatchObject({ is_active: false, end_reason: "expired" });
    expect(Date.parse(row.ended_at!)).toBe(Date.parse(row.valid_until!));
    expect(await historyOf(p.orgId)).toEqual([
      { status_level_id: p.levelId, level: "B", action: "expired", actor_id: null, reason: "the validity period ended", old_valid_until: row.valid_until },
    ]);
    const after = await readStatus(p.orgId, p.member.token);
    expect(after.cache).toBe("miss");
    expect(after.view).toMatchObject({ current_level: "0", active_levels: [] });

    const notifications = await notificationsOf([p.orgId]);
    expect(notifications.map((n) => [n.user_id, n.kind, n.title]).sort()).toEqual(
      [[p.owner.id, "level_expired", "Level B has ended"], [p.admin.id, "level_expired", "Level B has ended"]].sort(),
    );
    const mails = await outboxOf([p.orgId]);
    expect(mails.map((m) => [m.recipient, m.kind, m.subject, m.state]).sort()).toEqual(
      [
        [p.owner.email, "level_expired", `[${ORG_NAME}] Your level B has ended`, "sent"],
        [p.admin.email, "level_expired", `[${ORG_NAME}] Your level B has ended`, "sent"],
      ].sort(),
    );
    // Expired once: a later run finds nothing.
    const again = await runJob([p.orgId], { asOf: end + 2 * DAY });
    expect(again.steps.expire).toMatchObject({ expired: 0 });
    expect(await historyOf(p.orgId)).toHaveLength(1);
    expect(await notificationsOf([p.orgId])).toHaveLength(2);
  });

  it("ends a grace period without payment: A revoked with `grace_ended`, fresh reads, notifications", async () => {
    const p = await fixtures.orgWithPeople();
    const graceUntil = Date.now() + 5 * DAY;
    const { levelId } = await levelAInGrace(p.orgId, graceUntil, "past_due");
    expect((await readStatus(p.orgId, p.member.token)).view.current_level).toBe("A");
    expect((await readStatus(p.orgId, p.member.token)).cache).toBe("hit");

    const summary = await runJob([p.orgId], { asOf: graceUntil + HOUR });

    expect(summary.ok).toBe(true);
    expect(summary.steps.end_grace).toMatchObject({ ok: true, graces_ended: 1 });
    expect(summary.steps.expire).toMatchObject({ ok: true, expired: 0 });
    expect(await levelById(levelId)).toMatchObject({ is_active: false, end_reason: "grace_ended" });
    expect(await historyOf(p.orgId)).toEqual([
      { status_level_id: levelId, level: "A", action: "grace_ended", actor_id: null, reason: "the grace period ended without payment", old_valid_until: iso(graceUntil) },
    ]);
    const after = await readStatus(p.orgId, p.member.token);
    expect(after.cache).toBe("miss");
    expect(after.view.current_level).toBe("0");

    const notifications = await notificationsOf([p.orgId]);
    expect(notifications).toHaveLength(2);
    expect(notifications.every((n) => n.kind === "grace_ended" && n.title === "Level A has ended: the payment did not arrive")).toBe(true);
    const mails = await outboxOf([p.orgId]);
    expect(mails.map((m) => m.recipient).sort()).toEqual([p.owner.email, p.admin.email].sort());
    for (const m of mails) {
      expect(m).toMatchObject({ kind: "grace_ended", subject: `[${ORG_NAME}] Your level A has ended`, state: "sent" });
      expect(m.body_text).toContain(`The grace period after a failed payment ended on ${localParts(graceUntil, "UTC").day}`);
    }
  });

  it("expires many levels in batches, each once, with their notifications", async () => {
    const end = farEnd();
    const tag = crypto.randomUUID().slice(0, 8);
    const { orgIds, levelIds } = await bulkOrgsWithB(60, tag, end);

    const summary = await runJob(orgIds, { asOf: end + HOUR, batchSize: 25 });

    expect(summary.ok).toBe(true);
    expect(summary.steps.expire).toMatchObject({ ok: true, expired: 60 });
    expect(summary.steps.expire.batches).toBeGreaterThanOrEqual(3);
    expect(summary.steps.deliver).toMatchObject({ notifications: 120, emails_enqueued: 120, sent: 120 });
    const [row] = await exec<{ inactive: number; history: number; notifications: number }>(
      `select (select count(*) from public.organization_status_levels where id = any($1::uuid[]) and not is_active and end_reason = 'expired')::int as inactive,
              (select count(*) from public.status_level_history where status_level_id = any($1::uuid[]) and action = 'expired' and actor_id is null)::int as history,
              (select count(*) from public.notifications where organization_id = any($2::uuid[]) and kind = 'level_expired')::int as notifications`,
      [levelIds, orgIds],
    );
    expect(row).toEqual({ inactive: 60, history: 60, notifications: 120 });
  });

  it("a run past its deadline stops taking batches, and the next run does the work", async () => {
    const end = farEnd();
    const lapsing = await orgWithB(end);
    const due = await orgWithB(end + 10 * DAY);
    const orgs = [lapsing.orgId, due.orgId];
    const logs: LogLine[] = [];
    const cut = await runDailyJob(testEnv, {
      organizationIds: orgs,
      asOf: iso(end + HOUR),
      deadlineMs: -1,
      log: (level, msg, fields = {}) => logs.push({ level, msg, fields }),
    });
    expect(cut.ok).toBe(true);
    for (const step of Object.values(cut.steps)) expect(step).toMatchObject({ ok: true, incomplete: true, batches: 0 });
    expect(logs.filter((l) => l.msg === "daily job deadline reached; the next run continues")).toHaveLength(5);
    expect((await levelById(lapsing.levelId)).is_active).toBe(true);

    const next = await runJob(orgs, { asOf: end + HOUR });
    expect(next.steps.expire).toMatchObject({ expired: 1 });
    expect(next.steps.expiry_notices).toMatchObject({ notices: 1, by_threshold: { "30": 1 } });
    for (const step of Object.values(next.steps)) expect(step.incomplete).toBeUndefined();
    expect(await notificationsOf(orgs)).toHaveLength(4);
  });

  it("a Redis outage does not fail the run: the level still expires and the failed invalidation is logged", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    const logs: LogLine[] = [];
    const summary = await runJob([p.orgId], { asOf: end + HOUR, env: { UPSTASH_REDIS_REST_URL: deadUrl }, logs });
    expect(summary.ok).toBe(true);
    expect(summary.steps.expire).toMatchObject({ ok: true, expired: 1 });
    expect((await levelById(p.levelId)).is_active).toBe(false);
    expect(logs.some((l) => l.level === "error" && l.msg.startsWith("cache invalidation failed") && l.fields.first_organization_id === p.orgId)).toBe(true);
  });

  it("a level lapsed in one organization leaves the others alone (scoped run)", async () => {
    const end = Date.now() + 10 * DAY;
    const mine = await orgWithB(end);
    const other = await orgWithB(end);
    await runJob([mine.orgId], { asOf: end + HOUR });
    expect((await levelById(mine.levelId)).is_active).toBe(false);
    expect((await levelById(other.levelId)).is_active).toBe(true);
    expect(await notificationsOf([other.orgId])).toEqual([]);
  });

  it("still tells the owners a level ended when a write flipped the lapsed row before the job ran", async () => {
    // B lapsed an hour ago; the owner asks for B again before the 02:00 run. The request flips the
    // lapsed row (history `expired`) on its way; the owners must still hear that B ended.
    const p = await orgWithB(Date.now() - HOUR);
    const request = await call("/status-levels/upgrade-requests", { method: "POST", token: p.owner.token, json: { organization_id: p.orgId, target_level: "B" } });
    expect(request.status).toBe(201);
    expect(await levelById(p.levelId)).toMatchObject({ is_active: false, end_reason: "expired" });
    expect((await historyOf(p.orgId)).map((h) => h.action)).toContain("expired");

    await runJob([p.orgId]);

    const notifications = await notificationsOf([p.orgId]);
    expect(notifications.filter((n) => n.kind === "level_expired").map((n) => n.user_id).sort()).toEqual([p.owner.id, p.admin.id].sort());
  });
});

describe("daily job: e-mail delivery (a real HTTP e-mail API)", () => {
  it("POSTs each e-mail as JSON {from, to, subject, text} with the outbox id as Idempotency-Key, and never sends it again", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    const recipients = [p.owner.email, p.admin.email];
    const asOf = end - 7 * DAY + HOUR;

    const summary = await runJob([p.orgId], { asOf, env: viaRecorder });

    expect(summary.steps.deliver).toMatchObject({ ok: true, sent: 2, failed: 0, dead: 0 });
    const outbox = await outboxOf([p.orgId]);
    const recorded = await recordedFor(recipients);
    expect(recorded).toHaveLength(2);
    for (const mail of outbox) {
      const req = recorded.find((r) => r.body?.to === mail.recipient)!;
      expect(req, mail.recipient).toBeDefined();
      expect(req.body).toEqual({ from: "Status levels <no-reply@status-levels.invalid>", to: mail.recipient, subject: mail.subject, text: mail.body_text });
      expect(req.idempotency_key).toBe(mail.id);
      expect(req.authorization).toBe("Bearer test-email-api-token");
      expect(req.headers["content-type"]).toContain("application/json");
      expect(req.status).toBe(200);
      expect(mail).toMatchObject({ state: "sent", attempts: 1, provider_message_id: req.message_id, last_error: null });
      expect(mail.sent_at).not.toBeNull();
    }
    const subject = `[${ORG_NAME}] Your level B ends in 7 days, on ${localParts(end, "UTC").day}`;
    expect(recorded.map((r) => r.body?.subject)).toEqual([subject, subject]);

    for (const later of [asOf + HOUR, asOf + 2 * DAY, asOf + 5 * DAY]) {
      const run = await runJob([p.orgId], { asOf: later, env: viaRecorder });
      expect(run.ok).toBe(true);
      expect(run.steps.deliver.sent).toBeUndefined();
    }
    expect(await recordedFor(recipients)).toHaveLength(2);
    expect(await outboxOf([p.orgId])).toEqual(outbox);
  });

  it("a failing e-mail API fails the run after every step ran, records the attempt with backoff, and a later run delivers what is owed", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    const recipients = [p.owner.email, p.admin.email];
    await setRecorderFailing(recipients, true);
    const asOf = end + HOUR;
    const logs: LogLine[] = [];

    const failed = await runJob([p.orgId], { asOf, env: viaRecorder, logs });

    expect(failed.ok).toBe(false);
    // The other steps ran in the same run: the level expired and its notifications were made.
    expect(failed.steps.expire).toMatchObject({ ok: true, expired: 1 });
    expect(failed.steps.end_grace.ok).toBe(true);
    expect(failed.steps.expiry_notices.ok).toBe(true);
    expect(failed.steps.deliver).toMatchObject({ ok: false, notifications: 2, emails_enqueued: 2, failed: 2, sent: 0 });
    expect(failed.steps.deliver.error).toMatch(/2 of 2 e-mails failed: HTTP 500/);
    expect(logs.some((l) => l.level === "error" && l.msg === "daily job summary")).toBe(true);
    expect((await levelById(p.levelId)).is_active).toBe(false);
    expect(await notificationsOf([p.orgId])).toHaveLength(2);
    let outbox = await outboxOf([p.orgId]);
    expect(outbox).toHaveLength(2);
    for (const m of outbox) {
      expect(m).toMatchObject({ state: "failed", attempts: 1, locked_until: null, sent_at: null });
      expect(m.last_error).toMatch(/^HTTP 500/);
      expect(Date.parse(m.next_attempt_at)).toBe(asOf + 5 * MINUTE);
    }
    expect((await recordedFor(recipients)).map((r) => r.status)).toEqual([500, 500]);

    await setRecorderFailing(recipients, false);
    // Not due yet: nothing is sent.
    const early = await runJob([p.orgId], { asOf: asOf + 4 * MINUTE, env: viaRecorder });
    expect(early.ok).toBe(true);
    expect(await recordedFor(recipients)).toHaveLength(2);
    // Due: delivered, with the same idempotency keys.
    const retry = await runJob([p.orgId], { asOf: asOf + 6 * MINUTE, env: viaRecorder });
    expect(retry.ok).toBe(true);
    expect(retry.steps.deliver).toMatchObject({ sent: 2, failed: 0 });
    outbox = await outboxOf([p.orgId]);
    expect(outbox.every((m) => m.state === "sent" && m.attempts === 2)).toBe(true);
    const recorded = await recordedFor(recipients);
    expect(recorded.map((r) => r.status)).toEqual([500, 500, 200, 200]);
    expect(recorded.slice(2).map((r) => r.idempotency_key).sort()).toEqual(outbox.map((m) => m.id).sort());
    // The expiry was not repeated, and nothing goes out twice.
    await runJob([p.orgId], { asOf: asOf + DAY, env: viaRecorder });
    expect(await recordedFor(recipients)).toHaveLength(4);
    expect((await historyOf(p.orgId)).map((h) => h.action)).toEqual(["expired"]);
  });

  it("answers the admin endpoint with 503 daily_job_failed and the summary when sending failed", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    await setRecorderFailing([p.owner.email, p.admin.email], true);
    const res = await call(
      "/status-levels/admin/jobs/daily",
      { method: "POST", token: stack.serviceRoleKey, json: { as_of: iso(end + HOUR), organization_ids: [p.orgId] } },
      viaRecorder,
    );
    const problem = await expectProblem(res, 503, "daily_job_failed");
    expect(res.headers.get("retry-after")).toBe("60");
    expect(problem.summary).toMatchObject({ ok: false, as_of: iso(end + HOUR), steps: { expire: { ok: true, expired: 1 }, deliver: { ok: false, failed: 2 } } });
    expect((await levelById(p.levelId)).is_active).toBe(false);
    await setRecorderFailing([p.owner.email, p.admin.email], false);
  });

  it("after 5 failed attempts (backoff 5, 10, 20, 40 min) an e-mail is dead, never retried, and listed for platform admins", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    const recipients = [p.owner.email, p.admin.email];
    await setRecorderFailing(recipients, true);
    let asOf = end - 7 * DAY + HOUR;
    const backoffs: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt++) {
      const run = await runJob([p.orgId], { asOf, env: viaRecorder });
      expect(run.ok, `attempt ${attempt}`).toBe(false);
      const outbox = await outboxOf([p.orgId]);
      expect(outbox.map((m) => m.attempts), `attempt ${attempt}`).toEqual([attempt, attempt]);
      expect(outbox.map((m) => m.state), `attempt ${attempt}`).toEqual(attempt < 5 ? ["failed", "failed"] : ["dead", "dead"]);
      if (attempt < 5) {
        const next = Date.parse(outbox[0]!.next_attempt_at);
        backoffs.push((next - asOf) / MINUTE);
        asOf = next + MINUTE;
      } else {
        expect(run.steps.deliver).toMatchObject({ dead: 2, failed: 0 });
      }
    }
    expect(backoffs).toEqual([5, 10, 20, 40]);
    expect(await recordedFor(recipients)).toHaveLength(10);

    // Dead letters are not retried, even when the API works again.
    await setRecorderFailing(recipients, false);
    const later = await runJob([p.orgId], { asOf: asOf + DAY, env: viaRecorder });
    expect(later.ok).toBe(true);
    expect(await recordedFor(recipients)).toHaveLength(10);

    const dead = await outboxOf([p.orgId]);
    const res = await call("/status-levels/admin/email-outbox?state=dead&limit=200", { token: p.platformAdmin.token });
    expect(res.status).toBe(200);
    const page = await listBody(res);
    const mine = page.items.filter((i) => i.organization_id === p.orgId);
    expect(mine.map((i) => i.id).sort()).toEqual(dead.map((m) => m.id).sort());
    for (const item of mine) {
      expect(item).toMatchObject({ state: "dead", attempts: 5, kind: "expiry_notice", sent_at: null });
      expect(item.last_error).toMatch(/^HTTP 500/);
      expect(recipients).toContain(item.recipient);
    }
    const defaultState = await listBody(await call("/status-levels/admin/email-outbox?limit=200", { token: p.platformAdmin.token }));
    expect(defaultState.items.some((i) => i.id === dead[0]!.id)).toBe(true);
    const sentPage = await listBody(await call("/status-levels/admin/email-outbox?state=sent&limit=200", { token: p.platformAdmin.token }));
    expect(sentPage.items.some((i) => i.organization_id === p.orgId)).toBe(false);

    for (const who of [p.owner, p.admin, p.member, p.outsider]) {
      await expectProblem(await call("/status-levels/admin/email-outbox?state=dead", { token: who.token }), 403, "not_allowed");
    }
    await expectProblem(await call("/status-levels/admin/email-outbox?state=dead"), 401, "unauthorized");
  });

  it("caps the backoff at 12 hours", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    await setRecorderFailing([p.owner.email], true);
    const asOf = end - 7 * DAY + HOUR;
    await runJob([p.orgId], { asOf, env: viaRecorder });
    const [mail] = (await outboxOf([p.orgId])).filter((m) => m.recipient === p.owner.email);
    expect(mail!.state).toBe("failed");
    await exec("update public.email_outbox set attempts = 9 where id = $1", [mail!.id]);
    const later = asOf + DAY;
    const [result] = await exec<{ r: Record<string, number> }>("select public.complete_email_deliveries($1::text::jsonb, $2::timestamptz, 20) as r", [
      JSON.stringify([{ id: mail!.id, ok: false, error: "HTTP 503: try later" }]),
      iso(later),
    ]);
    expect(result!.r).toEqual({ sent: 0, failed: 1, dead: 0, released: 0 });
    const [after] = (await outboxOf([p.orgId])).filter((m) => m.id === mail!.id);
    expect(after).toMatchObject({ state: "failed", attempts: 10, last_error: "HTTP 503: try later" });
    expect(Date.parse(after!.next_attempt_at)).toBe(later + 12 * HOUR);
    await setRecorderFailing([p.owner.email], false);
  });
});

describe("daily job: e-mail delivery at scale (batch endpoint, concurrency, rate limit, subrequests)", () => {
  /** 2 × `count` e-mails due (owner and admin of `count` organizations with B ending in 7 days). */
  async function dueEmails(count: number) {
    const end = farEnd();
    const tag = crypto.randomUUID().slice(0, 8);
    const { orgIds } = await bulkOrgsWithB(count, tag, end);
    const recipients = (await exec<{ email: string }>("select email from auth.users where email like $1", [`bulk-${tag}-%`])).map((u) => u.email);
    expect(recipients).toHaveLength(2 * count);
    return { orgIds, recipients, part: `bulk-${tag}-`, asOf: end - 7 * DAY + HOUR };
  }

  it("with a batch endpoint, sends calls of up to EMAIL_BATCH_SIZE e-mails, each e-mail with its outbox id as key; one refused e-mail fails alone and is retried alone", async () => {
    const { orgIds, recipients, part, asOf } = await dueEmails(30);
    const refused = recipients[7]!;
    await setRecorderFailing([refused], true);

    const first = await runJob(orgIds, { asOf, env: viaRecorderBatches(25) });

    expect(first.ok).toBe(false);
    expect(first.steps.deliver).toMatchObject({ ok: false, emails_enqueued: 60, sent: 59, failed: 1, provider_calls: 3 });
    expect(first.steps.deliver.error).toMatch(/1 of 60 e-mails failed: provider: the recorder was told to fail/);
    const calls = await recordedCalls(part);
    // The calls run concurrently: the recorder sees them in whatever order they arrive.
    const shapes = calls.map((c) => [c.kind, c.status, c.emails.length] as const).sort((a, b) => b[2] - a[2]);
    expect(shapes).toEqual([["batch", 200, 25], ["batch", 200, 25], ["batch", 200, 10]]);
    expect(calls.every((c) => /^batch-[0-9a-f]{64}$/.test(c.idempotency_key ?? ""))).toBe(true);
    let outbox = await outboxOf(orgIds);
    const byId = new Map(outbox.map((m) => [m.id, m]));
    const emails = calls.flatMap((c) => c.emails);
    expect(new Set(emails.map((e) => e.idempotency_key))).toEqual(new Set(byId.keys()));
    for (const e of emails) {
      const row = byId.get(e.idempotency_key!)!;
      expect(row.recipient).toBe(e.to);
      if (e.to === refused) expect(row).toMatchObject({ state: "failed", attempts: 1, provider_message_id: null });
      else expect(row).toMatchObject({ state: "sent", attempts: 1, provider_message_id: e.message_id });
    }

    await setRecorderFailing([refused], false);
    const retry = await runJob(orgIds, { asOf: asOf + HOUR, env: viaRecorderBatches(25) });
    expect(retry.ok).toBe(true);
    expect(retry.steps.deliver).toMatchObject({ sent: 1, failed: 0, provider_calls: 1 });
    const again = await recordedCalls(part);
    expect(again).toHaveLength(4);
    expect(again[3]!.emails.map((e) => e.to)).toEqual([refused]);
    outbox = await outboxOf(orgIds);
    expect(outbox.every((m) => m.state === "sent")).toBe(true);
  });

  it("a batch call answered 500 fails each of its e-mails; a 429 defers its e-mails (no attempt counted) and no call starts before its Retry-After", async () => {
    const { orgIds, recipients, part, asOf } = await dueEmails(10);
    // Each e-mail's first call is refused as a whole with 429 and Retry-After: 1 (two calls of 10).
    await setRecorderRule(recipients, { failNext: 1, status: 429, wholeCall: true });
    const logs: LogLine[] = [];

    const run = await runJob(orgIds, { asOf, env: viaRecorderBatches(10), logs });

    expect(run.ok).toBe(true);
    expect(run.steps.deliver).toMatchObject({ ok: true, sent: 20, failed: 0, deferred: 20, provider_calls: 4 });
    const calls = await recordedCalls(part);
    expect(calls.map((c) => c.status)).toEqual([429, 429, 200, 200]);
    expect(calls.slice(2).reduce((n, c) => n + c.emails.length, 0)).toBe(20);
    const lastRefused = Math.max(...calls.slice(0, 2).map((c) => c.answered_ms!));
    const firstAfter = Math.min(...calls.slice(2).map((c) => c.received_ms));
    expect(firstAfter - lastRefused).toBeGreaterThanOrEqual(950);
    expect((await outboxOf(orgIds)).every((m) => m.state === "sent" && m.attempts === 1)).toBe(true);
    expect(logs.some((l) => l.msg.startsWith("the e-mail provider is over its rate limit"))).toBe(true);

    // A 500 for the whole call is a failed attempt for each e-mail in it.
    const other = await dueEmails(5);
    await setRecorderRule(other.recipients, { failNext: 1, status: 500, wholeCall: true });
    const failed = await runJob(other.orgIds, { asOf: other.asOf, env: viaRecorderBatches(10) });
    expect(failed.steps.deliver).toMatchObject({ ok: false, sent: 0, failed: 10, provider_calls: 1 });
    expect((await outboxOf(other.orgIds)).every((m) => m.state === "failed" && m.attempts === 1 && /^HTTP 500/.test(m.last_error ?? ""))).toBe(true);
  });

  it("keeps at most EMAIL_CONCURRENCY calls in flight and starts at most EMAIL_RATE_LIMIT_PER_SECOND calls in any second", async () => {
    const { orgIds, recipients, part, asOf } = await dueEmails(20);
    await setRecorderDelay(recipients, 300);
    const env = { ...viaRecorder, EMAIL_CONCURRENCY: "3", EMAIL_RATE_LIMIT_PER_SECOND: "8" };

    const run = await runJob(orgIds, { asOf, env });

    expect(run.steps.deliver).toMatchObject({ ok: true, sent: 40, provider_calls: 40 });
    const calls = await recordedCalls(part);
    expect(calls).toHaveLength(40);
    // In flight: at each arrival, the calls that arrived before and were not yet answered.
    const inFlight = calls.map((c) => calls.filter((o) => o.received_ms <= c.received_ms && o.answered_ms! > c.received_ms).length);
    expect(Math.max(...inFlight)).toBeLessThanOrEqual(3);
    expect(Math.max(...inFlight)).toBe(3);
    // Rate: the 9th start after any start is a second later, the 17th two seconds later. The
    // recorder stamps arrivals, which a loaded machine delays unevenly, so each window gets 100 ms
    // of slack. Without the limit (3 calls of 300 ms at a time: 10 a second) they would come
    // 800 ms and 1,600 ms later.
    const starts = calls.map((c) => c.received_ms).sort((a, b) => a - b);
    for (let i = 0; i + 8 < starts.length; i++) expect(starts[i + 8]! - starts[i]!).toBeGreaterThanOrEqual(900);
    for (let i = 0; i + 16 < starts.length; i++) expect(starts[i + 16]! - starts[i]!).toBeGreaterThanOrEqual(1900);
    await setRecorderDelay(recipients, 0);
  });

  it("fans out in JOB_FAN_OUT_CONCURRENCY calls at a time, each queued notice once; a bad setting is refused before anything runs", async () => {
    const { orgIds, part, asOf } = await dueEmails(30);
    const run = await runJob(orgIds, { asOf, batchSize: 7, env: { ...viaRecorder, JOB_FAN_OUT_CONCURRENCY: "4" } });
    expect(run.steps.deliver).toMatchObject({ ok: true, notifications: 60, emails_enqueued: 60, sent: 60 });
    expect(await notificationsOf(orgIds)).toHaveLength(60);
    expect(new Set((await recordedCalls(part)).map((c) => c.idempotency_key)).size).toBe(60);

    for (const bad of ["0", "9", "two"]) {
      await expect(runJob(orgIds, { asOf, env: { ...viaRecorder, JOB_FAN_OUT_CONCURRENCY: bad } })).rejects.toThrow(/JOB_FAN_OUT_CONCURRENCY/);
    }
    // A rate limit so low that not one call would fit in a claim's lease is refused, not run empty.
    for (const bad of ["0.001", "-1"]) {
      await expect(runJob(orgIds, { asOf, env: { ...viaRecorder, EMAIL_RATE_LIMIT_PER_SECOND: bad } })).rejects.toThrow(/EMAIL_RATE_LIMIT_PER_SECOND/);
    }
  });

  it.each(["2", "8"])("stops sending before the invocation runs out of subrequests (fan-out %s at a time), with every send recorded; the next run sends the rest once", async (fanOut) => {
    const { orgIds, part, asOf } = await dueEmails(40);
    const env = { ...viaRecorder, WORKER_SUBREQUEST_LIMIT: "60", JOB_FAN_OUT_CONCURRENCY: fanOut };
    const logs: LogLine[] = [];

    const cut = await runJob(orgIds, { asOf, env, logs });

    expect(cut.ok).toBe(true);
    expect(cut.steps.deliver).toMatchObject({ ok: true, incomplete: true, emails_enqueued: 80 });
    const sent = cut.steps.deliver.sent as number;
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(80);
    const stop = logs.find((l) => l.msg === "daily job deadline reached; the next run continues" && l.fields.step === "deliver");
    expect(stop?.fields).toMatchObject({ reason: "subrequests" });
    // The run's own record comes after: one more.
    expect(stop!.fields.subrequests as number).toBeLessThanOrEqual(59);
    let outbox = await outboxOf(orgIds);
    const received = await recordedCalls(part);
    expect(received).toHaveLength(sent);
    expect(outbox.filter((m) => m.state === "sent").map((m) => m.id).sort()).toEqual(received.map((c) => c.idempotency_key).sort());
    for (const m of outbox.filter((m) => m.state !== "sent")) expect(m).toMatchObject({ state: "pending", attempts: 0, locked_until: null });

    const next = await runJob(orgIds, { asOf: asOf + HOUR, env: viaRecorder });
    expect(next.steps.deliver).toMatchObject({ ok: true, sent: 80 - sent });
    outbox = await outboxOf(orgIds);
    expect(outbox.every((m) => m.state === "sent" && m.attempts === 1)).toBe(true);
    expect(await recordedCalls(part)).toHaveLength(80);
  });
});

describe("daily job: the time budget (every run ends inside the platform's limit with its sends recorded)", () => {
  it("a run whose time runs out while e-mails are due records every send it made, ends within its budget, and the next run sends each remaining e-mail once", async () => {
    const end = farEnd();
    const tag = crypto.randomUUID().slice(0, 8);
    const { orgIds } = await bulkOrgsWithB(100, tag, end);
    const recipients = (await exec<{ email: string }>("select email from auth.users where email like $1", [`bulk-${tag}-%`])).map((u) => u.email);
    expect(recipients).toHaveLength(200);
    // A slow e-mail API: 200 e-mails, 6 at a time, 400 ms each, need about 13 s.
    await setRecorderDelay(recipients, 400);
    const asOf = end - 7 * DAY + HOUR;
    // No batch after 12 s, everything over and recorded by 15 s; recording keeps the last 5 s
    // (DEPENDENCY_TIMEOUT_MS), so sends fit in the first ~10 s and none starts with under 1.5 s
    // left: on a loaded machine the steps before delivery may take a few of those seconds, and
    // some e-mails must still go (about 6 s of sending is some 90 of the 200).
    const budget = { deadlineMs: 12_000, hardDeadlineMs: 15_000, emailTimeoutMs: 3_000 };
    const logs: LogLine[] = [];

    const started = Date.now();
    const cut = await runJob(orgIds, { asOf, env: { ...viaRecorder, DEPENDENCY_TIMEOUT_MS: "5000" }, budget, logs });
    const took = Date.now() - started;

    expect(took).toBeLessThanOrEqual(budget.hardDeadlineMs);
    expect(cut.ok).toBe(true);
    expect(cut.steps.deliver).toMatchObject({ ok: true, incomplete: true, emails_enqueued: 200, failed: 0, dead: 0 });
    const sentFirst = cut.steps.deliver.sent as number;
    expect(sentFirst).toBeGreaterThan(0);
    expect(sentFirst).toBeLessThan(200);
    // Every send it made is recorded: the outbox says sent for exactly what the API received.
    let outbox = await outboxOf(orgIds);
    const received = await recordedContaining(`bulk-${tag}-`);
    expect(received.every((r) => r.status === 200)).toBe(true);
    const sentRows = outbox.filter((m) => m.state === "sent");
    expect(sentRows.map((m) => m.id).sort()).toEqual(received.map((r) => r.idempotency_key).sort());
    for (const m of sentRows) expect(m.provider_message_id).toBe(received.find((r) => r.idempotency_key === m.id)!.message_id);
    // The rest waits for the next run: no attempt counted, no lease left behind.
    const left = outbox.filter((m) => m.state !== "sent");
    expect(left).toHaveLength(200 - sentFirst);
    for (const m of left) expect(m).toMatchObject({ state: "pending", attempts: 0, locked_until: null });
    // At 3 a.m. the log says why it stopped and what it left.
    const stop = logs.find((l) => l.msg === "daily job deadline reached; the next run continues" && l.fields.step === "deliver");
    expect(stop?.fields).toMatchObject({ reason: "hard_end", sent: sentFirst, emails_left: 200 - sentFirst });
    expect(cut.steps.deliver.emails_left).toBe(200 - sentFirst);

    await setRecorderDelay(recipients, 0);
    const next = await runJob(orgIds, { asOf: asOf + HOUR, env: viaRecorder });

    expect(next.ok).toBe(true);
    expect(next.steps.deliver).toMatchObject({ ok: true, sent: 200 - sentFirst, failed: 0 });
    expect(next.steps.deliver.incomplete).toBeUndefined();
    outbox = await outboxOf(orgIds);
    expect(outbox.every((m) => m.state === "sent" && m.attempts === 1)).toBe(true);
    const all = await recordedContaining(`bulk-${tag}-`);
    expect(all).toHaveLength(200);
    expect(new Set(all.map((r) => r.idempotency_key))).toEqual(new Set(outbox.map((m) => m.id)));
    expect(new Set(all.map((r) => r.body?.to)).size).toBe(200);
  });

  it("an e-mail claimed but not attempted is released when the batch is recorded: no attempt counted, claimable again at once", async () => {
    const p = await fixtures.orgWithPeople();
    const asOf = farEnd(300);
    const [tried, notTried] = await exec<{ id: string; next_attempt_at: string }>(
      `insert into public.email_outbox (organization_id, recipient, kind, subject, body_text, dedupe_key, next_attempt_at)
       select $1, r, 'expiry_notice', 'subject', 'text', 'test:' || gen_random_uuid(), $2::timestamptz - interval '1 minute'
       from unnest(array[$3, $4]) r returning id, next_attempt_at`,
      [p.orgId, iso(asOf), p.owner.email, p.admin.email],
    );
    const claim = async () =>
      ((await exec<{ r: { emails: Array<{ id: string }> } }>("select public.run_daily_job_step('claim_emails', $1, 200, array[$2]::uuid[]) as r", [iso(asOf), p.orgId]))[0]!.r.emails)
        .map((e) => e.id)
        .sort();
    expect(await claim()).toEqual([tried!.id, notTried!.id].sort());
    expect(await claim()).toEqual([]);

    const [result] = await exec<{ r: Record<string, number> }>("select public.complete_email_deliveries($1::text::jsonb, $2::timestamptz) as r", [
      JSON.stringify([{ id: tried!.id, ok: true, provider_message_id: "msg-1" }, { id: notTried!.id, attempted: false }]),
      iso(asOf),
    ]);

    expect(result!.r).toEqual({ sent: 1, failed: 0, dead: 0, released: 1 });
    const rows = await outboxOf([p.orgId]);
    expect(rows.find((m) => m.id === tried!.id)).toMatchObject({ state: "sent", attempts: 1, locked_until: null });
    const released = rows.find((m) => m.id === notTried!.id)!;
    expect(released).toMatchObject({ state: "pending", attempts: 0, locked_until: null, last_error: null, sent_at: null });
    expect(Date.parse(released.next_attempt_at)).toBe(Date.parse(notTried!.next_attempt_at));
    expect(await claim()).toEqual([notTried!.id]);
  });
});

describe("daily job: level C notices (the 30-day projection, one notice per episode)", () => {
  const levelCNotifications = async (orgIds: string[], kind: "level_c_at_risk" | "level_c_eligible") =>
    (await notificationsOf(orgIds)).filter((n) => n.kind === kind);
  const levelCMails = async (orgIds: string[], kind: "level_c_at_risk" | "level_c_eligible") => (await outboxOf(orgIds)).filter((m) => m.kind === kind);
  const step = (summary: DailyJobSummary) => summary.steps.level_c_notices as StepSummary & Record<string, number>;

  it("tells a C holder at risk once per episode across 10 daily runs: at risk, recovered after new reviews, at risk again", async () => {
    const t0 = cronTimeOf(farEnd(300));
    const p = await orgWithC(t0);
    // 16 published reviews in 12 months: 10 recent, 3 that leave the 12-month window at the end of
    // day 9 (days from the first run's date) and 3 at the end of day 37. Without new reviews it
    // stops meeting the criteria on day 9 (13 left).
    await reviewsFrom(p.orgId, t0, [
      ...recentReviews(10),
      { at: "-12 months 9 days 12 hours", count: 3 },
      { at: "-12 months 37 days 12 hours", count: 3 },
    ]);

    const runs: Array<Record<string, number>> = [];
    for (let day = 0; day <= 9; day++) {
      // Two new reviews between the runs of days 3 and 4: 15 remain after day 9, until day 37,
      // which the horizon reaches from the run of day 7 on.
      if (day === 4) await reviewsFrom(p.orgId, t0, [{ at: "3 days 3 hours", count: 2, answeredAfter: "1 hour" }]);
      const run = await runJob([p.orgId], { asOf: t0 + day * DAY });
      expect(run.ok, `day ${day}`).toBe(true);
      runs.push(step(run));
    }

    expect(runs.map((s) => s.at_risk_notices)).toEqual([1, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    expect(runs.map((s) => s.recovered)).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(runs.map((s) => s.evaluated)).toEqual(Array(10).fill(1));
    expect(runs.every((s) => s.eligible_notices === 0 && s.skipped === 0)).toBe(true);
    const onDay = (day: number) => localDate(t0 + day * DAY, "UTC");
    expect(await levelCEpisodesOf(p.orgId)).toEqual([
      { kind: "at_risk", notice: "sent", started_at: t0, first_failing_on: onDay(9), ended_at: t0 + 4 * DAY, end_reason: "recovered" },
      { kind: "at_risk", notice: "sent", started_at: t0 + 7 * DAY, first_failing_on: onDay(37), ended_at: null, end_reason: null },
    ]);
    // Each notice for the owner and the admin, in-app and by e-mail: two episodes, two notices.
    const day9 = localParts(t0 + 9 * DAY, "UTC").day;
    const day37 = localParts(t0 + 37 * DAY, "UTC").day;
    const notifications = await levelCNotifications([p.orgId], "level_c_at_risk");
    expect(notifications.map((n) => [n.user_id, n.title]).sort()).toEqual(
      [
        [p.owner.id, `Level C at risk: its criteria stop being met on ${day9}`],
        [p.admin.id, `Level C at risk: its criteria stop being met on ${day9}`],
        [p.owner.id, `Level C at risk: its criteria stop being met on ${day37}`],
        [p.admin.id, `Level C at risk: its criteria stop being met on ${day37}`],
      ].sort(),
    );
    const mails = await levelCMails([p.orgId], "level_c_at_risk");
    expect(mails.map((m) => [m.recipient, m.subject, m.state]).sort()).toEqual(
      [
        [p.owner.email, `[${ORG_NAME}] Your level C is at risk from ${day9}`, "sent"],
        [p.admin.email, `[${ORG_NAME}] Your level C is at risk from ${day9}`, "sent"],
        [p.owner.email, `[${ORG_NAME}] Your level C is at risk from ${day37}`, "sent"],
        [p.admin.email, `[${ORG_NAME}] Your level C is at risk from ${day37}`, "sent"],
      ].sort(),
    );
    // The second episode's notice says what the projection said then: 18 now, 12 after day 37.
    const second = mails.find((m) => m.subject.endsWith(day37))!;
    expect(second.body_text).toContain(`- Published reviews in the last 12 months: 18 now (at least 15 needed); stops being met on ${day37}. To keep it: 3 more published reviews before ${day37}.`);
  });

  it("ends an at-risk episode without a notice when C is revoked, and a C granted again starts afresh", async () => {
    const t0 = cronTimeOf(farEnd(300));
    const p = await orgWithC(t0);
    await reviewsFrom(p.orgId, t0, recentReviews(5));
    expect(step(await runJob([p.orgId], { asOf: t0 }))).toMatchObject({ at_risk_notices: 1 });
    await exec("update public.organization_status_levels set is_active = false, ended_at = now(), end_reason = 'revoked', revoked_at = now() where id = $1", [p.cLevelId]);
    expect(step(await runJob([p.orgId], { asOf: t0 + DAY }))).toMatchObject({ at_risk_notices: 0, episodes_ended: 1, recovered: 0 });
    await fixtures.levelRow(p.orgId, "C");
    expect(step(await runJob([p.orgId], { asOf: t0 + 2 * DAY }))).toMatchObject({ at_risk_notices: 1 });
    expect((await levelCEpisodesOf(p.orgId)).map((e) => [e.kind, e.end_reason])).toEqual([["at_risk", "level_c_ended"], ["at_risk", null]]);
    expect(await levelCNotifications([p.orgId], "level_c_at_risk")).toHaveLength(4);
  });

  it("walks the organizations in batches with a cursor, each evaluated once; a bad cursor is refused", async () => {
    const t0 = cronTimeOf(farEnd(300));
    const holders = await Promise.all([0, 1, 2, 3, 4].map(() => orgWithC(t0)));
    await Promise.all(holders.map((h) => reviewsFrom(h.orgId, t0, recentReviews(4))));
    const orgs = holders.map((h) => h.orgId);

    const run = await runJob(orgs, { asOf: t0, batchSize: 2 });

    expect(step(run)).toMatchObject({ ok: true, batches: 3, evaluated: 5, at_risk_notices: 5 });
    expect(await levelCNotifications(orgs, "level_c_at_risk")).toHaveLength(10);
    await expect(exec("select public.run_daily_job_step('level_c_notices', null, 10, null, '{\"organization_id\": \"x\"}')")).rejects.toThrow(/invalid_cursor/);
  });

  it("two runs at the same time send each level C notice once, also when one's insert waits on the other's", async () => {
    const t0 = cronTimeOf(farEnd(300));
    const risky = await orgWithC(t0);
    await reviewsFrom(risky.orgId, t0, recentReviews(4));
    const eligible = await orgWithBAndCaseStudy(t0);
    await reviewsFrom(eligible.orgId, t0, recentReviews(15));
    const orgs = [risky.orgId, eligible.orgId];
    const recipients = [risky.owner.email, risky.admin.email, eligible.owner.email, eligible.admin.email];

    const runs = await Promise.all([runJob(orgs, { asOf: t0, env: viaRecorder }), runJob(orgs, { asOf: t0, env: viaRecorder })]);

    expect(runs.map((r) => r.ok)).toEqual([true, true]);
    const total = (key: string) => runs.reduce((n, r) => n + Number(step(r)[key] ?? 0), 0);
    expect([total("at_risk_notices"), total("eligible_notices")]).toEqual([1, 1]);
    expect(await levelCNotifications(orgs, "level_c_at_risk")).toHaveLength(2);
    expect(await levelCNotifications(orgs, "level_c_eligible")).toHaveLength(2);
    expect((await recordedFor(recipients)).map((r) => r.body?.to).sort()).toEqual([...recipients].sort());

    // The race itself, made certain: a step's transaction has opened the episodes and queued the
    // notices but not committed when a second run evaluates the same organizations (it sees no
    // open episode). Its insert waits on the first, then finds the episode taken and queues nothing.
    const later = await orgWithC(t0);
    await reviewsFrom(later.orgId, t0, recentReviews(4));
    await holdLocks("select public.run_daily_job_step('level_c_notices', $1, 100, $2::uuid[])", [iso(t0 + DAY), [later.orgId]], 1500);
    const second = await runJob([later.orgId], { asOf: t0 + DAY, env: viaRecorder });
    expect(step(second)).toMatchObject({ evaluated: 1, at_risk_notices: 0 });
    expect(await levelCEpisodesOf(later.orgId)).toHaveLength(1);
    // The first transaction's notice was delivered by the second run's deliver step, once.
    expect(await levelCNotifications([later.orgId], "level_c_at_risk")).toHaveLength(2);
    expect(await recordedFor([later.owner.email, later.admin.email])).toHaveLength(2);
  });

  it("the at-risk notice, in-app and by e-mail: what fails when and what keeps it, in the organization's time zone", async () => {
    const t0 = cronTimeOf(farEnd(300));
    const timeZone = "Pacific/Auckland";
    const p = await orgWithC(t0, { timeZone });
    await reviewsFrom(p.orgId, t0, [...recentReviews(13), { at: "-12 months 9 days 12 hours", count: 3 }]);
    // Failing now: 4 reviews, in UTC.
    const failing = await orgWithC(t0);
    await reviewsFrom(failing.orgId, t0, recentReviews(4));

    await runJob([p.orgId, failing.orgId], { asOf: t0, env: viaRecorder });

    // The three leave the window at t0 + 9 days 12 hours: 03:00 or 02:00 the next day in Auckland.
    const leave = t0 + 9 * DAY + 12 * HOUR;
    const failsOn = localParts(leave, timeZone).day;
    expect(failsOn, "the test needs a local date that differs from the UTC one").not.toBe(localParts(leave, "UTC").day);
    const [n] = await levelCNotifications([p.orgId], "level_c_at_risk");
    expect(n!.title).toBe(`Level C at risk: its criteria stop being met on ${failsOn}`);
    expect(n!.data).toMatchObject({
      level: "C",
      time_zone: timeZone,
      today: localDate(t0, timeZone),
      meets_criteria_now: true,
      first_failing_on: localDate(leave, timeZone),
      failing: [{ criterion: "review_count", value_now: 16, met_now: true, fails_on: localDate(leave, timeZone), keep: expect.stringMatching(/^2 more published reviews before /) }],
    });
    const line = `- Published reviews in the last 12 months: 16 now (at least 15 needed); stops being met on ${failsOn}. To keep it: 2 more published reviews before ${failsOn}.`;
    expect(n!.body).toContain(line);
    const mails = await levelCMails([p.orgId], "level_c_at_risk");
    expect(mails.map((m) => m.recipient).sort()).toEqual([p.owner.email, p.admin.email].sort());
    const recorded = await recordedFor([p.owner.email]);
    expect(recorded.map((r) => r.body?.subject)).toEqual([`[${ORG_NAME}] Your level C is at risk from ${failsOn}`]);
    expect(recorded[0]!.body?.text).toBe(
      [
        "Hello,",
        "",
        `Level C of ${ORG_NAME} stays until a platform admin revokes it, but its criteria must keep holding, and platform admins see the holders that no longer meet them. As older reviews leave the 12-month and 90-day windows, ${ORG_NAME} stops meeting them on ${failsOn}:`,
        "",
        line,
        "",
        `This assumes no new reviews, responses or case studies from today on: each review published, and each answered in time, counts. Dates are in ${timeZone}; a criterion that stops being met on a date no longer holds at the end of that day.`,
        "",
        "The platform team",
      ].join("\n"),
    );

    const today = localParts(t0, "UTC").day;
    const [now] = await levelCNotifications([failing.orgId], "level_c_at_risk");
    expect(now!.title).toBe("Level C at risk: its criteria are not met");
    expect(now!.body).toContain(`As of ${today}, ${ORG_NAME} does not meet them:\n\n- Published reviews in the last 12 months: 4 now (at least 15 needed); not met today. 11 more published reviews are needed.`);
    const [mail] = await levelCMails([failing.orgId], "level_c_at_risk");
    expect(mail!.subject).toBe(`[${ORG_NAME}] Your level C is at risk: its criteria are not met`);
  });

  it("tells an organization without C that now meets the criteria once per episode of meeting them; not while it asks for C, not once it holds C", async () => {
    const t0 = cronTimeOf(farEnd(300));
    const timeZone = "Europe/Berlin";
    // 15 reviews in 12 months, one of which leaves the window at t0 + 2 days 12 hours.
    const told = await orgWithBAndCaseStudy(t0, { timeZone });
    await reviewsFrom(told.orgId, t0, [...recentReviews(14), { at: "-12 months 2 days 12 hours" }]);
    const asking = await orgWithBAndCaseStudy(t0);
    await reviewsFrom(asking.orgId, t0, recentReviews(15));
    await exec("insert into public.upgrade_requests (organization_id, target_level, requested_by) values ($1, 'C', $2)", [asking.orgId, asking.owner.id]);
    const granted = await orgWithBAndCaseStudy(t0);
    await reviewsFrom(granted.orgId, t0, recentReviews(15));
    // Meets every criterion but the case study: not even evaluated.
    const noCaseStudy = await orgWithB(t0 + 400 * DAY);
    await reviewsFrom(noCaseStudy.orgId, t0, recentReviews(15));
    const orgs = [told.orgId, asking.orgId, granted.orgId, noCaseStudy.orgId];

    const runs: Array<Record<string, number>> = [];
    for (let day = 0; day <= 5; day++) {
      if (day === 1) await fixtures.levelRow(granted.orgId, "C");
      // A new review between the runs of days 3 and 4: it meets the criteria again.
      if (day === 4) await reviewsFrom(told.orgId, t0, [{ at: "3 days 6 hours", answeredAfter: "1 hour" }]);
      const run = await runJob(orgs, { asOf: t0 + day * DAY, env: viaRecorder });
      expect(run.ok, `day ${day}`).toBe(true);
      runs.push(step(run));
    }

    expect(runs.map((s) => s.eligible_notices)).toEqual([2, 0, 0, 0, 1, 0]);
    expect(runs.map((s) => s.skipped)).toEqual([1, 0, 0, 0, 0, 0]);
    expect(runs.map((s) => s.no_longer_met)).toEqual([0, 0, 0, 1, 0, 0]);
    expect(runs.map((s) => s.episodes_ended)).toEqual([0, 1, 0, 0, 0, 0]);
    expect(runs.map((s) => s.at_risk_notices)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(runs.map((s) => s.evaluated)).toEqual([3, 3, 3, 3, 3, 3]);
    const day = (n: number) => localDate(t0 + n * DAY, timeZone);
    expect(await levelCEpisodesOf(told.orgId)).toEqual([
      { kind: "eligible", notice: "sent", started_at: t0, first_failing_on: day(2), ended_at: t0 + 3 * DAY, end_reason: "no_longer_met" },
      { kind: "eligible", notice: "sent", started_at: t0 + 4 * DAY, first_failing_on: null, ended_at: null, end_reason: null },
    ]);
    expect((await levelCEpisodesOf(asking.orgId)).map((e) => [e.kind, e.notice, e.end_reason])).toEqual([["eligible", "skipped", null]]);
    expect((await levelCEpisodesOf(granted.orgId)).map((e) => [e.kind, e.notice, e.ended_at, e.end_reason])).toEqual([["eligible", "sent", t0 + DAY, "level_c_granted"]]);
    expect(await levelCEpisodesOf(noCaseStudy.orgId)).toEqual([]);
    expect(await levelCNotifications([told.orgId], "level_c_eligible")).toHaveLength(4);
    expect(await levelCNotifications([asking.orgId, noCaseStudy.orgId], "level_c_eligible")).toEqual([]);
    expect(await levelCNotifications([granted.orgId], "level_c_eligible")).toHaveLength(2);

    // The first notice, as the owner reads it (dates in Berlin), and the e-mail.
    const first = (await levelCNotifications([told.orgId], "level_c_eligible")).find((n) => n.user_id === told.owner.id)!;
    expect(first.title).toBe("You now meet level C's criteria: you can ask for an upgrade");
    expect(first.data).toMatchObject({ level: "C", today: day(0), meets_criteria_now: true, first_failing_on: day(2) });
    const stops = localParts(t0 + 2 * DAY + 12 * HOUR, timeZone).day;
    const text = [
      "Hello,",
      "",
      `As of ${localParts(t0, timeZone).day} (${timeZone}), ${ORG_NAME} meets every criterion of level C, the top level:`,
      "",
      `- Level B, on which level C builds: active until ${localParts(told.bEnd, timeZone).day}`,
      "- Published reviews in the last 12 months: 15 (at least 15 needed)",
      "- Response rate over the last 90 days: 100.0 % (at least 85 % needed)",
      "- Average response time over the last 90 days: 2.0 h (below 48 h needed)",
      "- Published case studies: 1 (at least 1 needed)",
      "",
      "You can ask for an upgrade to level C from your status page; a platform admin reviews the request.",
      "",
      `Without new reviews, ${ORG_NAME} stops meeting them on ${stops}, as older reviews leave the 12-month and 90-day windows: ask before then.`,
      "",
      "The platform team",
    ].join("\n");
    expect(first.body).toBe(text);
    const [mail] = (await recordedFor([told.owner.email])).filter((r) => r.body?.text === text);
    expect(mail?.body?.subject).toBe(`[${ORG_NAME}] You now meet level C's criteria`);
  });
});

describe("POST /status-levels/admin/jobs/daily", () => {
  const run = (token: string | null, json: unknown, env: Partial<Env> = {}) => call("/status-levels/admin/jobs/daily", { method: "POST", token, json }, env);

  it("runs the job as of now for a platform admin, limited to the given organizations", async () => {
    const p = await orgWithB(Date.now() + 30 * DAY - HOUR);
    const untouched = await orgWithB(Date.now() + 30 * DAY - HOUR);
    const before = Date.now();
    const res = await run(p.platformAdmin.token, { organization_ids: [p.orgId] });
    expect(res.status).toBe(200);
    const summary = await body(res);
    expect(summary.ok).toBe(true);
    expect(Date.parse(summary.as_of)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(summary.as_of)).toBeLessThanOrEqual(Date.now());
    expect(summary.steps.expiry_notices).toMatchObject({ ok: true, notices: 1, by_threshold: { "30": 1 } });
    expect(Object.keys(summary.steps).sort()).toEqual(["deliver", "end_grace", "expire", "expiry_notices", "level_c_notices"]);
    expect(sentThresholds(await noticesOf([p.orgId]))).toEqual([30]);
    expect(await noticesOf([untouched.orgId])).toEqual([]);
  });

  it("refuses as_of from a platform admin (400 as_of_not_allowed) and runs nothing", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    await expectProblem(await run(p.platformAdmin.token, { as_of: iso(end - 7 * DAY), organization_ids: [p.orgId] }), 400, "as_of_not_allowed");
    expect(await noticesOf([p.orgId])).toEqual([]);
  });

  it("accepts as_of with the service-role key", async () => {
    const end = farEnd();
    const p = await orgWithB(end);
    const asOf = iso(end - 7 * DAY + HOUR);
    const res = await run(stack.serviceRoleKey, { as_of: asOf, organization_ids: [p.orgId] });
    expect(res.status).toBe(200);
    const summary = await body(res);
    expect(summary).toMatchObject({ ok: true, as_of: asOf, steps: { expiry_notices: { notices: 1, by_threshold: { "7": 1 } } } });
    expect(sentThresholds(await noticesOf([p.orgId]))).toEqual([7]);
  });

  it("is 403 for organization owners, members and outsiders (also with as_of), 401 anonymous, and runs nothing", async () => {
    const p = await orgWithB(Date.now() + 30 * DAY - HOUR);
    for (const who of [p.owner, p.admin, p.member, p.outsider]) {
      await expectProblem(await run(who.token, { organization_ids: [p.orgId] }), 403, "not_allowed");
    }
    await expectProblem(await run(p.owner.token, { as_of: iso(Date.now()), organization_ids: [p.orgId] }), 403, "not_allowed");
    await expectProblem(await run(null, { organization_ids: [p.orgId] }), 401, "unauthorized");
    await expectProblem(await run("not-a-token", { organization_ids: [p.orgId] }), 401, "unauthorized");
    // A revoked platform admin is no platform admin.
    await exec("update public.platform_admins set revoked_at = now() where user_id = $1", [p.platformAdmin.id]);
    await expectProblem(await run(p.platformAdmin.token, { organization_ids: [p.orgId] }), 403, "not_allowed");
    expect(await noticesOf([p.orgId])).toEqual([]);
  });

  it("validates the body", async () => {
    const p = await fixtures.orgWithPeople();
    await expectProblem(await run(stack.serviceRoleKey, { organization_ids: ["not-a-uuid"] }), 400, "invalid_request");
    await expectProblem(await run(stack.serviceRoleKey, { organization_ids: [p.orgId], as_of: "tomorrow" }), 400, "invalid_request");
    await expectProblem(await run(stack.serviceRoleKey, { organization_ids: [p.orgId], extra: true }), 400, "invalid_request");
  });
});

// Last in this file on purpose: the only unscoped run (the real cron entry, as of now). It asserts
// on its own organizations only.
describe("the cron entry (worker.scheduled)", () => {
  // The runtime calls it with (controller, env, ctx), as ExportedHandler declares it.
  const scheduled = worker.scheduled as ExportedHandlerScheduledHandler<Env>;

  it("runs the whole job as of the scheduled time: lapsed levels expire and due notices go out", async () => {
    // The cron run is not limited to some organizations, so it acts on every row of the shared
    // test database. Its scheduled time is ten years back, where no other test has data: only
    // this test's rows are due as of then, and tests running in parallel keep their lapsed rows.
    const scheduledTime = Date.now() - 3650 * DAY;
    const from = { validFrom: scheduledTime - 400 * DAY };
    const lapsed = await orgWithB(scheduledTime - HOUR, from);
    const due = await orgWithB(scheduledTime + 30 * DAY - HOUR, from);
    const notDue = await orgWithB(scheduledTime + 200 * DAY, from);

    const controller = createScheduledController({ scheduledTime, cron: "0 2 * * *" });
    const ctx = createExecutionContext();
    await scheduled(controller, { ...testEnv, ...viaRecorder } as Env, ctx);
    await waitOnExecutionContext(ctx);

    expect(await levelById(lapsed.levelId)).toMatchObject({ is_active: false, end_reason: "expired" });
    expect((await historyOf(lapsed.orgId)).map((h) => [h.action, h.actor_id])).toEqual([["expired", null]]);
    expect((await notificationsOf([lapsed.orgId])).map((n) => n.kind)).toEqual(["level_expired", "level_expired"]);

    expect((await noticesOf([due.orgId])).map((n) => [n.threshold_days, n.state])).toEqual([[60, "skipped"], [30, "sent"]]);
    expect((await notificationsOf([due.orgId])).map((n) => n.user_id).sort()).toEqual([due.owner.id, due.admin.id].sort());
    const recorded = await recordedFor([due.owner.email, due.admin.email]);
    expect(recorded.map((r) => r.body?.subject)).toEqual([expect.stringMatching(/Your level B ends in 30 days/), expect.stringMatching(/Your level B ends in 30 days/)]);

    expect(await noticesOf([notDue.orgId])).toEqual([]);
    expect((await levelById(notDue.levelId)).is_active).toBe(true);
  });

  it("fails the invocation after every step ran when a step failed", async () => {
    // The database is unreachable for this run, so it changes nothing anywhere.
    const controller = createScheduledController({ scheduledTime: Date.now(), cron: "0 2 * * *" });
    const ctx = createExecutionContext();
    const error = await Promise.resolve(scheduled(controller, { ...testEnv, SUPABASE_URL: deadUrl } as Env, ctx)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DailyJobFailed);
    const summary = (error as DailyJobFailed).summary;
    expect(summary.ok).toBe(false);
    expect(Object.keys(summary.steps).sort()).toEqual(["deliver", "end_grace", "expire", "expiry_notices", "level_c_notices"]);
    for (const [name, step] of Object.entries(summary.steps)) {
      expect(step.ok, name).toBe(false);
      expect(step.error, name).toBeTruthy();
    }
    expect((error as Error).message).toMatch(/expire .*end_grace .*expiry_notices .*level_c_notices .*deliver/);
  });
});
