import { describe, expect, it } from "vitest";
import { exec, fixtures, sql } from "../../scripts/test/node-harness.ts";
import { expectApiError, rpc, rpcOk } from "./helpers.ts";

/**
 * The level C projection (private.level_c_projection / level_c_projection_for, public.project_level_c)
 * against its definition: the value on a date X is private.level_c_criteria(org, end of X), the end
 * of X being the local midnight (organizations.time_zone) that starts X + 1. Time is frozen: every
 * call passes as_of, and every review sits at an instant computed in SQL from it (the window starts
 * at the end of a date, a microsecond or a second either side, UTC and local midnights), so the
 * interval arithmetic is the database's own.
 */

type CriterionName = "has_active_b" | "review_count" | "response_rate" | "avg_response_hours" | "public_cases";
const CRITERIA: CriterionName[] = ["has_active_b", "review_count", "response_rate", "avg_response_hours", "public_cases"];

type Value = boolean | number | null;
interface ProjectedCriterion {
  value_now: Value;
  met_now: boolean;
  value_at_horizon: Value;
  met_at_horizon: boolean;
  needed: Value;
  changes_on: string | null;
  keep: string | null;
  valid_until?: string | null;
  days: Array<{ date: string; value: Value; met: boolean }>;
}
interface Projection {
  organization_id: string;
  as_of: string;
  time_zone: string;
  today: string;
  horizon_days: number;
  horizon_date: string;
  meets_criteria_now: boolean;
  meets_criteria_at_horizon: boolean;
  first_failing_on: string | null;
  first_meeting_on: string | null;
  criteria: Record<CriterionName, ProjectedCriterion>;
  failing: Array<{ criterion: CriterionName; fails_on: string; value_now: Value; met_now: boolean; needed: Value; keep: string | null }>;
  days: Array<{ date: string; meets_criteria: boolean }>;
}
interface Checked {
  meets_criteria: boolean;
  items: Record<CriterionName, { value: Value; met: boolean }>;
}

/**
 * A review placed relative to the frozen time: `at` names an instant computed in SQL, `i` a day
 * index (the end of today + i days), `us` an offset in microseconds; answered after `answer`
 * seconds (null: unanswered).
 */
interface PlacedReview {
  at: "end" | "start12" | "start90" | "as_of" | "utc_midnight_start12" | "utc_midnight_start90" | "utc_midnight_end";
  i?: number;
  us?: number;
  answer?: number | null;
  status?: string;
}

async function placeReviews(orgId: string, asOf: string, reviews: PlacedReview[]): Promise<void> {
  const spec = reviews.map((r) => ({ at: r.at, i: r.i ?? 0, us: r.us ?? 0, answer: r.answer ?? null, status: r.status ?? "published" }));
  await exec(
    `with p as (
       select $2::timestamptz as as_of, o.time_zone as tz, ($2::timestamptz at time zone o.time_zone)::date as today
       from public.organizations o where o.id = $1
     ), s as (
       select * from jsonb_to_recordset($3::text::jsonb) as s(at text, i integer, us bigint, answer bigint, status text)
     )
     insert into public.reviews (organization_id, status, published_at, responded_at)
     select $1, s.status, x.t + s.us * interval '1 microsecond',
            case when s.answer is not null then x.t + s.us * interval '1 microsecond' + s.answer * interval '1 second' end
     from p cross join s
     cross join lateral (select (p.today + s.i + 1)::timestamp at time zone p.tz as e) e
     cross join lateral (select case s.at
       when 'end' then e.e
       when 'start12' then e.e - interval '12 months'
       when 'start90' then e.e - interval '90 days'
       when 'as_of' then p.as_of
       when 'utc_midnight_start12' then ((e.e - interval '12 months') at time zone 'UTC')::date::timestamp at time zone 'UTC'
       when 'utc_midnight_start90' then ((e.e - interval '90 days') at time zone 'UTC')::date::timestamp at time zone 'UTC'
       when 'utc_midnight_end' then (e.e at time zone 'UTC')::date::timestamp at time zone 'UTC'
     end as t) x`,
    [orgId, asOf, JSON.stringify(spec)],
  );
}

async function project(orgId: string, horizon: number, asOf: string): Promise<Projection> {
  const [row] = await exec<{ p: Projection }>("select private.level_c_projection($1, $2, $3::timestamptz) as p", [orgId, horizon, asOf]);
  return row!.p;
}

/** The oracle: the check itself at as_of and at the end of every date of the horizon. */
async function oracle(orgId: string, horizon: number, asOf: string): Promise<{ now: Checked; days: Array<{ date: string; c: Checked }> }> {
  const rows = await exec<{ date: string | null; c: Checked }>(
    `select null::text as date, private.level_c_criteria($1, $3::timestamptz) as c
     union all
     select d::date::text, private.level_c_criteria($1, (d::date + 1)::timestamp at time zone o.time_zone)
     from public.organizations o,
          generate_series(($3::timestamptz at time zone o.time_zone)::date, ($3::timestamptz at time zone o.time_zone)::date + $2::int, interval '1 day') d
     where o.id = $1`,
    [orgId, horizon, asOf],
  );
  return { now: rows[0]!.c, days: rows.slice(1).map((r) => ({ date: r.date!, c: r.c })) };
}

/** Every value and verdict of the projection equals the oracle's; the dates derived from them agree. */
async function expectMatchesOracle(orgId: string, horizon: number, asOf: string, context: string): Promise<Projection> {
  const p = await project(orgId, horizon, asOf);
  const o = await oracle(orgId, horizon, asOf);
  const ctx = `${context} (org ${orgId}, as_of ${asOf}, horizon ${horizon}, ${p.time_zone})`;
  expect(p.days.map((d) => d.date), ctx).toEqual(o.days.map((d) => d.date));
  expect(p.meets_criteria_now, ctx).toBe(o.now.meets_criteria);
  expect(p.days.map((d) => d.meets_criteria), ctx).toEqual(o.days.map((d) => d.c.meets_criteria));
  for (const name of CRITERIA) {
    const got = p.criteria[name];
    expect({ value: got.value_now, met: got.met_now }, `${ctx} ${name} now`).toEqual({ value: o.now.items[name].value, met: o.now.items[name].met });
    expect(got.days, `${ctx} ${name}`).toEqual(o.days.map((d) => ({ date: d.date, value: d.c.items[name].value, met: d.c.items[name].met })));
    const last = o.days[o.days.length - 1]!.c.items[name];
    expect({ value: got.value_at_horizon, met: got.met_at_horizon }, `${ctx} ${name} at horizon`).toEqual({ value: last.value, met: last.met });
    const change = o.days.find((d) => d.c.items[name].met !== o.now.items[name].met);
    expect(got.changes_on, `${ctx} ${name} changes_on`).toBe(change?.date ?? null);
    expect(got.keep !== null, `${ctx} ${name} keep`).toBe(o.now.items[name].met && change !== undefined);
  }
  const firstFailing = o.now.meets_criteria ? (o.days.find((d) => !d.c.meets_criteria)?.date ?? null) : null;
  const firstMeeting = o.now.meets_criteria ? null : (o.days.find((d) => d.c.meets_criteria)?.date ?? null);
  expect({ first_failing_on: p.first_failing_on, first_meeting_on: p.first_meeting_on }, ctx).toEqual({
    first_failing_on: firstFailing,
    first_meeting_on: firstMeeting,
  });
  expect(p.meets_criteria_at_horizon, ctx).toBe(o.days[o.days.length - 1]!.c.meets_criteria);
  return p;
}

async function orgIn(timeZone: string): Promise<string> {
  return fixtures.organization({ name: "Projection test", timeZone });
}

async function bUntil(orgId: string, sqlInstant: string, asOf: string): Promise<void> {
  await exec(
    `insert into public.organization_status_levels (organization_id, level, valid_from, valid_until, last_verified_at)
     select $1, 'B', $2::timestamptz - interval '200 days', ${sqlInstant}, $2::timestamptz - interval '200 days'
     from public.organizations o, lateral (select ($2::timestamptz at time zone o.time_zone)::date as today, o.time_zone as tz) p
     where o.id = $1`,
    [orgId, asOf],
  );
}

/** A small seeded PRNG, so a failing random run can be replayed with LEVEL_C_SEED. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOUR = 3600;

describe("the projection equals level_c_criteria at the end of every date (the oracle)", () => {
  it("many organizations, reviews on the window edges, in UTC and in other zones, across month ends, a leap day and DST, B ending mid-horizon", async () => {
    const seed = Number(process.env.LEVEL_C_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = mulberry32(seed);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const zones = ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe"];
    // A leap day; a month end that is already the next month in Kolkata; the week before the US
    // spring-forward; a microsecond before a new year; a month end before the US fall-back.
    const asOfs = ["2028-02-29T10:00:00Z", "2027-03-31T23:30:00Z", "2027-03-10T08:00:00Z", "2026-12-31T23:59:59.999999Z", "2027-10-31T12:00:00Z"];
    const horizons = [1, 7, 30, 90];
    const offsets = [-1_000_000, -1, 0, 1, 1_000_000];
    let checked = 0;
    let changes = 0;
    for (const asOf of asOfs) {
      const orgs: Array<{ id: string; horizon: number }> = [];
      for (const zone of zones) {
        for (let k = 0; k < 3; k++) {
          const horizon = pick(horizons);
          const orgId = await orgIn(zone);
          // Around the edges: the 12-month and 90-day window starts at the end of a date of the
          // horizon (and just before it), their UTC midnights, the ends of the dates themselves
          // (reviews dated after as_of come in), and as_of itself.
          const edgeDays = () => Math.floor(random() * (horizon + 3)) - 1;
          const reviews: PlacedReview[] = [];
          const answer = () => (random() < 0.18 ? null : Math.floor(random() < 0.5 ? random() * 30 * HOUR : (40 + random() * 16) * HOUR));
          const n12 = 4 + Math.floor(random() * 12);
          for (let j = 0; j < n12; j++) reviews.push({ at: pick(["start12", "utc_midnight_start12"] as const), i: edgeDays(), us: pick(offsets), answer: answer() });
          const n90 = 4 + Math.floor(random() * 14);
          for (let j = 0; j < n90; j++) reviews.push({ at: pick(["start90", "utc_midnight_start90"] as const), i: edgeDays(), us: pick(offsets), answer: answer() });
          // Steady reviews well inside both windows, so the thresholds are near.
          const inside = Math.floor(random() * 12);
          for (let j = 0; j < inside; j++) reviews.push({ at: "as_of", us: -Math.floor((2 + random() * 80) * 86_400) * 1_000_000, answer: answer() });
          // Some in the 12-month window only.
          const older = Math.floor(random() * 8);
          for (let j = 0; j < older; j++) reviews.push({ at: "as_of", us: -Math.floor((95 + random() * 200) * 86_400) * 1_000_000, answer: answer() });
          // Around as_of and the ends of the dates: now, a microsecond after, dated ahead.
          if (random() < 0.5) reviews.push({ at: "as_of", us: pick([0, 1, -1]), answer: answer() });
          if (random() < 0.4) reviews.push({ at: pick(["end", "utc_midnight_end"] as const), i: Math.floor(random() * (horizon + 1)) - 1, us: pick(offsets), answer: answer() });
          // Not published: never counted.
          if (random() < 0.3) reviews.push({ at: "start90", i: edgeDays(), us: 1, answer: HOUR, status: pick(["hidden", "pending", "rejected"]) });
          await placeReviews(orgId, asOf, reviews);
          if (random() < 0.85) await fixtures.caseStudy(orgId);
          // B: none, long valid, ending exactly at the end of a date of the horizon, a second
          // after or before it, at as_of, or already ended.
          const b = pick(["none", "long", "end", "end+", "end-", "as_of", "ended"] as const);
          const endOf = `((p.today + ${Math.floor(random() * horizon)} + 1)::timestamp at time zone p.tz)`;
          const until: Record<typeof b, string | null> = {
            none: null,
            long: "$2::timestamptz + interval '400 days'",
            end: endOf,
            "end+": `${endOf} + interval '1 second'`,
            "end-": `${endOf} - interval '1 second'`,
            as_of: "$2::timestamptz",
            ended: "$2::timestamptz - interval '3 days'",
          };
          if (until[b]) await bUntil(orgId, until[b]!, asOf);
          orgs.push({ id: orgId, horizon });
        }
      }
      for (const o of orgs) {
        const p = await expectMatchesOracle(o.id, o.horizon, asOf, `seed ${seed}`);
        checked++;
        if (CRITERIA.some((c) => p.criteria[c].changes_on !== null)) changes++;
      }
      // The set-based path for many organizations at once gives the same as one at a time.
      for (const horizon of new Set(orgs.map((o) => o.horizon))) {
        const ids = orgs.filter((o) => o.horizon === horizon).map((o) => o.id);
        const many = await exec<{ organization_id: string; meets_now: boolean; first_failing_on: string | null; criteria: Record<string, unknown>; failing: unknown }>(
          `select organization_id, meets_now, first_failing_on::text, criteria, failing
           from private.level_c_projection_for($1::uuid[], $2, $3::timestamptz)`,
          [ids, horizon, asOf],
        );
        expect(many.length).toBe(ids.length);
        for (const row of many) {
          const one = await project(row.organization_id, horizon, asOf);
          const withoutDays = Object.fromEntries(Object.entries(one.criteria).map(([k, v]) => [k, { ...v, days: undefined }]));
          expect({ meets_now: row.meets_now, first_failing_on: row.first_failing_on, failing: row.failing }).toEqual({
            meets_now: one.meets_criteria_now, first_failing_on: one.first_failing_on, failing: one.failing,
          });
          expect(JSON.parse(JSON.stringify(withoutDays))).toEqual(row.criteria);
        }
      }
    }
    expect(checked).toBe(asOfs.length * zones.length * 3);
    // The data is built to move: most organizations see a verdict change within their horizon.
    expect(changes, `seed ${seed}`).toBeGreaterThan(checked / 4);
  });
});

describe("window edges, named", () => {
  const asOf = "2027-06-15T10:00:00Z";

  it("a review 12 months minus one day old leaves the window tomorrow: 15 today, 14 from tomorrow, and what keeps it", async () => {
    const orgId = await orgIn("UTC");
    await fixtures.caseStudy(orgId);
    await bUntil(orgId, "$2::timestamptz + interval '400 days'", asOf);
    await placeReviews(orgId, asOf, [
      ...Array.from({ length: 14 }, (_, j) => ({ at: "as_of" as const, us: -(10 + j * 5) * 86_400_000_000, answer: HOUR })),
      { at: "start12", i: 0, us: 1, answer: HOUR }, // inside at the end of today, out by the end of tomorrow
    ]);
    const [row] = await exec<{ p: string }>("select ($1::timestamptz - interval '12 months' + interval '1 day')::text as p", [asOf]);
    const [{ n }] = (await exec<{ n: number }>("select count(*)::int as n from public.reviews where organization_id = $1 and published_at < $2::timestamptz - interval '12 months' + interval '1 day'", [orgId, asOf])) as [{ n: number }];
    expect(n, `the edge review is younger than ${row!.p}`).toBe(1);
    const p = await expectMatchesOracle(orgId, 30, asOf, "12 months minus a day");
    expect(p.criteria.review_count).toMatchObject({ value_now: 15, met_now: true, value_at_horizon: 14, met_at_horizon: false, changes_on: "2027-06-16" });
    expect(p.criteria.review_count.days.slice(0, 2)).toEqual([
      { date: "2027-06-15", value: 15, met: true },
      { date: "2027-06-16", value: 14, met: false },
    ]);
    expect(p.criteria.review_count.keep).toBe("1 more published review before 2027-06-16");
    expect(p.failing).toEqual([expect.objectContaining({ criterion: "review_count", fails_on: "2027-06-16", met_now: true })]);
  });

  it("exactly 12 months old at the end of a date counts on that date and not the next; 12 months and a microsecond does not count", async () => {
    const orgId = await orgIn("UTC");
    await placeReviews(orgId, asOf, [
      { at: "start12", i: 3, us: 0, answer: HOUR }, // the window start at the end of today + 3: counts then, not after
      { at: "start12", i: 3, us: -1, answer: HOUR }, // a microsecond older: out at the end of today + 3
    ]);
    const p = await expectMatchesOracle(orgId, 7, asOf, "12 months exactly");
    expect(p.criteria.review_count.days.map((d) => d.value)).toEqual([2, 2, 2, 1, 0, 0, 0, 0]);
  });

  it("90 days: the rate rises as unanswered reviews leave, so the criterion starts being met", async () => {
    const orgId = await orgIn("America/Los_Angeles");
    await fixtures.caseStudy(orgId);
    await bUntil(orgId, "$2::timestamptz + interval '400 days'", asOf);
    await placeReviews(orgId, asOf, [
      // 30 answered in 40 h, well inside the window
      ...Array.from({ length: 30 }, (_, j) => ({ at: "as_of" as const, us: -(20 + j) * 86_400_000_000, answer: 40 * HOUR })),
      // 6 unanswered: 30 of 36 is 83.3 %; 3 leave at the end of today + 2 (30 of 33, 90.9 %), 3 at today + 4 (100 %)
      { at: "start90", i: 2, us: -1, answer: null },
      { at: "start90", i: 2, us: -1_000_000, answer: null },
      { at: "start90", i: 2, us: -2, answer: null },
      { at: "start90", i: 4, us: -1, answer: null },
      { at: "start90", i: 4, us: -5, answer: null },
      { at: "utc_midnight_start90", i: 4, us: -1, answer: null },
    ]);
    const p = await expectMatchesOracle(orgId, 14, asOf, "90-day rate");
    expect(p.today).toBe("2027-06-15");
    expect(p.criteria.response_rate).toMatchObject({ value_now: 83.3, met_now: false, changes_on: "2027-06-17", keep: null, value_at_horizon: 100 });
    expect(p.criteria.response_rate.days.slice(0, 3).map((d) => [d.value, d.met])).toEqual([[83.3, false], [83.3, false], [90.9, true]]);
    expect(p).toMatchObject({ meets_criteria_now: false, first_meeting_on: "2027-06-17", first_failing_on: null, meets_criteria_at_horizon: true });
  });

  it("average time: quick answers leaving push it to 48 h; what keeps it is new answers within 24 h", async () => {
    const orgId = await orgIn("Asia/Kolkata");
    await placeReviews(orgId, asOf, [
      ...Array.from({ length: 10 }, (_, j) => ({ at: "as_of" as const, us: -(20 + j) * 86_400_000_000, answer: 50 * HOUR })),
      { at: "start90", i: 5, us: -1, answer: 30 * HOUR },
      { at: "start90", i: 5, us: -2, answer: 30 * HOUR },
    ]);
    const p = await expectMatchesOracle(orgId, 30, asOf, "90-day time");
    // now (10 * 50 + 2 * 30) / 12 = 46.6 h; from the 6th date on 50 h.
    expect(p.criteria.avg_response_hours).toMatchObject({ value_now: 46.6, met_now: true, value_at_horizon: 50, met_at_horizon: false });
    const failsOn = p.criteria.avg_response_hours.changes_on!;
    // 10 answers of 50 h need k with 500 h + 24 h k < 48 h (10 + k): k > 20/24, so 1.
    expect(p.criteria.avg_response_hours.keep).toBe(`1 more review answered within 24 h before ${failsOn}`);
  });

  it("level B ending mid-horizon: the first failing date is the date it ends on (or the one before when it ends at midnight), and renewing keeps it", async () => {
    const orgId = await orgIn("Asia/Kolkata");
    await fixtures.caseStudy(orgId);
    await placeReviews(orgId, asOf, Array.from({ length: 20 }, (_, j) => ({ at: "as_of" as const, us: -(2 + j) * 86_400_000_000, answer: HOUR })));
    await bUntil(orgId, "((p.today + 10)::timestamp at time zone p.tz) + interval '15 hours'", asOf); // 15:00 local on today + 10
    const p = await expectMatchesOracle(orgId, 30, asOf, "B mid-horizon");
    expect(p.meets_criteria_now).toBe(true);
    expect(p.first_failing_on).toBe("2027-06-25");
    expect(p.criteria.has_active_b).toMatchObject({ met_now: true, changes_on: "2027-06-25", keep: "renew level B before 2027-06-25" });

    const atMidnight = await orgIn("Asia/Kolkata");
    await fixtures.caseStudy(atMidnight);
    await placeReviews(atMidnight, asOf, Array.from({ length: 20 }, (_, j) => ({ at: "as_of" as const, us: -(2 + j) * 86_400_000_000, answer: HOUR })));
    await bUntil(atMidnight, "(p.today + 10)::timestamp at time zone p.tz", asOf); // local midnight starting today + 10
    const q = await expectMatchesOracle(atMidnight, 30, asOf, "B ends at a local midnight");
    expect(q.first_failing_on).toBe("2027-06-24");
    expect(q.criteria.has_active_b.keep).toBe("renew level B before 2027-06-25");
  });

  it("dates are local: the same instant is another date in Kolkata, and a review at local midnight belongs to the date it ends", async () => {
    const late = "2027-03-31T20:00:00Z"; // 2027-04-01 01:30 in Kolkata
    const orgId = await orgIn("Asia/Kolkata");
    await placeReviews(orgId, late, [{ at: "end", i: 1, us: 0, answer: null }, { at: "end", i: 1, us: 1, answer: null }]);
    const p = await expectMatchesOracle(orgId, 3, late, "local dates");
    expect(p.today).toBe("2027-04-01");
    expect(p.criteria.review_count.days.map((d) => d.value)).toEqual([0, 1, 2, 2]);
  });
});

describe("public.project_level_c", () => {
  it("members and platform admins; outsiders 403, anonymous callers have no access; the horizon is 1 to 90 days", async () => {
    const o = await fixtures.orgWithPeople();
    await fixtures.meetsLevelC(o.orgId);
    const p = await rpcOk<Projection>(o.member.token, "project_level_c", { p_organization_id: o.orgId });
    expect(p).toMatchObject({ organization_id: o.orgId, horizon_days: 30, meets_criteria_now: true, time_zone: "UTC" });
    expect(p.days).toHaveLength(31);
    expect(Object.keys(p.criteria).sort()).toEqual([...CRITERIA].sort());
    expect((await rpcOk<Projection>(o.platformAdmin.token, "project_level_c", { p_organization_id: o.orgId, p_horizon_days: 90 })).days).toHaveLength(91);
    expect((await rpcOk<Projection>(o.owner.token, "project_level_c", { p_organization_id: o.orgId, p_horizon_days: 1 })).days).toHaveLength(2);
    expectApiError(await rpc(o.outsider.token, "project_level_c", { p_organization_id: o.orgId }), 403, "not_allowed");
    for (const bad of [0, 91, -1]) {
      expectApiError(await rpc(o.member.token, "project_level_c", { p_organization_id: o.orgId, p_horizon_days: bad }), 400, "invalid_horizon");
    }
    const anon = await rpc(null, "project_level_c", { p_organization_id: o.orgId });
    expect(anon.status).toBe(401);
  });
});

describe("public.list_level_c_at_risk", () => {
  it("C holders failing now first, then by the date they stop; those that hold are not listed; platform admins only", async () => {
    const admin = await fixtures.platformAdmin();
    const member = await fixtures.orgWithPeople();
    const asC = async (orgId: string) => fixtures.levelRow(orgId, "C");
    const now = new Date();
    const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
    const steady = (n: number) => Array.from({ length: n }, (_, j) => ({ publishedAt: daysAgo(2 + j), respondedAt: daysAgo(2 + j - 0.05) }));

    // Holds C and meets the criteria through the horizon: not listed.
    const fine = await fixtures.organization({ name: "At risk: fine" });
    await fixtures.meetsLevelC(fine);
    await asC(fine);
    // Fails now (no case study).
    const failingNow = await fixtures.organization({ name: "At risk: failing now" });
    await fixtures.levelRow(failingNow, "B");
    await fixtures.reviews(failingNow, steady(20));
    await asC(failingNow);
    // B ends in 10 days.
    const bEnds = await fixtures.organization({ name: "At risk: B ends" });
    await fixtures.levelRow(bEnds, "B", { validUntil: new Date(now.getTime() + 10 * 86_400_000) });
    await fixtures.reviews(bEnds, steady(20));
    await fixtures.caseStudy(bEnds);
    await asC(bEnds);
    // 15 reviews, the oldest leaving the 12-month window in 5 days.
    const reviewsLeave = await fixtures.organization({ name: "At risk: reviews leave" });
    await fixtures.levelRow(reviewsLeave, "B");
    await fixtures.reviews(reviewsLeave, [...steady(14), { publishedAt: new Date(now.getTime() - 360 * 86_400_000), respondedAt: null }]);
    await fixtures.caseStudy(reviewsLeave);
    await asC(reviewsLeave);
    // Not holding C: never listed.
    const noC = await fixtures.organization({ name: "At risk: no C" });
    await fixtures.levelRow(noC, "B");

    const list = await rpcOk<{ total: number; as_of: string; items: Array<{ organization: { id: string }; meets_criteria_now: boolean; first_failing_on: string | null; failing: Array<{ criterion: string }> }> }>(
      admin.token, "list_level_c_at_risk", { p_within_days: 30, p_limit: 200 },
    );
    const ours = list.items.filter((i) => [fine, failingNow, bEnds, reviewsLeave, noC].includes(i.organization.id));
    expect(ours.map((i) => i.organization.id)).toEqual([failingNow, reviewsLeave, bEnds]);
    expect(ours[0]).toMatchObject({ meets_criteria_now: false, first_failing_on: null, failing: [expect.objectContaining({ criterion: "public_cases" })] });
    expect(ours[1]!.failing).toEqual([expect.objectContaining({ criterion: "review_count" })]);
    expect(ours[2]!.failing).toEqual([expect.objectContaining({ criterion: "has_active_b" })]);
    // Failing now first, then by date, across the whole page.
    const keys = list.items.map((i) => `${i.meets_criteria_now ? 1 : 0} ${i.first_failing_on ?? ""}`);
    expect(keys).toEqual([...keys].sort());
    expect(list.total).toBeGreaterThanOrEqual(3);

    // A horizon of 7 days leaves out the B that ends in 10.
    const week = await rpcOk<typeof list>(admin.token, "list_level_c_at_risk", { p_within_days: 7, p_limit: 200 });
    expect(week.items.map((i) => i.organization.id).filter((id) => [failingNow, reviewsLeave, bEnds].includes(id))).toEqual([failingNow, reviewsLeave]);

    // A level change shows at once: renewing B takes bEnds off the list.
    await exec("update public.organization_status_levels set valid_until = now() + interval '400 days' where organization_id = $1 and level = 'B'", [bEnds]);
    const after = await rpcOk<typeof list>(admin.token, "list_level_c_at_risk", { p_within_days: 30, p_limit: 200 });
    expect(after.items.some((i) => i.organization.id === bEnds)).toBe(false);
    // Paging: the second page starts where the first ended.
    const page1 = await rpcOk<typeof list>(admin.token, "list_level_c_at_risk", { p_limit: 1, p_offset: 0 });
    const page2 = await rpcOk<typeof list>(admin.token, "list_level_c_at_risk", { p_limit: 1, p_offset: 1 });
    if (page1.total >= 2 && page1.as_of === page2.as_of) expect(page2.items[0]!.organization.id).not.toBe(page1.items[0]!.organization.id);

    expectApiError(await rpc(member.owner.token, "list_level_c_at_risk", {}), 403, "not_allowed");
    expectApiError(await rpc(member.member.token, "list_level_c_at_risk", {}), 403, "not_allowed");
    expect((await rpc(null, "list_level_c_at_risk", {})).status).toBe(401);
    expectApiError(await rpc(admin.token, "list_level_c_at_risk", { p_within_days: 91 }), 400, "invalid_horizon");
    expectApiError(await rpc(admin.token, "list_level_c_at_risk", { p_limit: 0 }), 400, "invalid_limit");
  });

  it("keeps what it computed for a few minutes (same as_of), and computes again after a level change", async () => {
    const admin = await fixtures.platformAdmin();
    const first = await rpcOk<{ as_of: string }>(admin.token, "list_level_c_at_risk", { p_within_days: 45 });
    const again = await rpcOk<{ as_of: string }>(admin.token, "list_level_c_at_risk", { p_within_days: 45 });
    // Another test's level change in between may have dropped it; otherwise it is the same.
    expect(new Date(again.as_of).getTime()).toBeGreaterThanOrEqual(new Date(first.as_of).getTime());
    // Any change to a level row drops what was kept (checked inside one transaction, so no other
    // test's list call can store a new one in between).
    const org = await fixtures.organization();
    const kept = await sql.begin(async (tx) => {
      const [before] = await tx`select count(*)::int as n from private.level_c_at_risk_snapshots where within_days = 45`;
      await tx`insert into public.organization_status_levels (organization_id, level, valid_until) values (${org}, 'B', now() + interval '1 year')`;
      const [after] = await tx`select count(*)::int as n from private.level_c_at_risk_snapshots where within_days = 45`;
      return { before: before!.n as number, after: after!.n as number };
    });
    expect(kept.after).toBe(0);
  });
});
