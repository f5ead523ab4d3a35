import { describe, expect, it } from "vitest";
import { exec, fixtures } from "../../scripts/test/node-harness.ts";
import { DAY, HOUR, SERVICE_ROLE, arrangeB, expectApiError, fromNow, rpc, rpcOk } from "./helpers.ts";

/**
 * Boundaries of the level C criteria (check_level_c_criteria / private.level_c_criteria): whole
 * UTC days come from the rollup private.review_daily_stats (kept by statement triggers on
 * reviews), the window edges from the reviews themselves. now() moves while a test runs, so
 * times "just inside" a window sit a minute inside (the window start only moves forward).
 */

interface Criterion {
  value: number | boolean | null;
  needed: number | boolean;
  comparison: "at_least" | "below" | "equals";
  met: boolean;
  missing: string | null;
}
interface Criteria {
  meets_criteria: boolean;
  evaluated_at: string;
  missing: string[];
  criteria: {
    has_active_b: boolean;
    review_count: number;
    review_count_needed: number;
    response_rate: number | null;
    response_rate_needed: number;
    avg_response_hours: number | null;
    avg_response_hours_max: number;
    public_cases: number;
    public_cases_needed: number;
  };
  items: {
    has_active_b: Criterion;
    review_count: Criterion;
    response_rate: Criterion;
    avg_response_hours: Criterion;
    public_cases: Criterion;
  };
}

type ReviewInput = { publishedAt: Date; respondedAt?: Date | null; status?: string };

/** The criteria as the API computes them (a superuser session is the system: full view). */
async function criteria(orgId: string): Promise<Criteria> {
  const [row] = await exec<{ c: Criteria }>("select public.check_level_c_criteria($1) as c", [orgId]);
  return row!.c;
}

/** The window starts, from the database clock. */
async function windows(): Promise<{ now: Date; start12: Date; start90: Date }> {
  const [row] = await exec<{ now: Date; start12: Date; start90: Date }>(
    "select now() as now, now() - interval '12 months' as start12, now() - interval '90 days' as start90",
  );
  return row!;
}

const at = (base: Date, ms: number) => new Date(base.getTime() + ms);
const MINUTE = 60_000;

/** n published reviews, one every `spacingDays` from `firstDaysAgo` back, answered after `answerHours` (null: unanswered). */
function spread(now: Date, n: number, { firstDaysAgo = 2, spacingDays = 3, answerHours = 2 as number | null } = {}): ReviewInput[] {
  return Array.from({ length: n }, (_, i) => {
    const publishedAt = at(now, -(firstDaysAgo + i * spacingDays) * DAY);
    return { publishedAt, respondedAt: answerHours === null ? null : at(publishedAt, answerHours * HOUR) };
  });
}

async function orgWithReviews(rows: ReviewInput[]): Promise<string> {
  const orgId = await fixtures.organization();
  if (rows.length) await fixtures.reviews(orgId, rows);
  return orgId;
}

describe("published reviews in the last 12 months (>= 15)", () => {
  it("14 is not met (1 more), 15 is; 12 says 3 more", async () => {
    const { now } = await windows();
    const fourteen = await orgWithReviews(spread(now, 14, { spacingDays: 20 }));
    const c14 = await criteria(fourteen);
    expect(c14.items.review_count).toMatchObject({ value: 14, needed: 15, met: false, missing: "1 more published review in the last 12 months" });
    expect(c14.missing).toContain("1 more published review in the last 12 months");

    await fixtures.reviews(fourteen, spread(now, 1, { firstDaysAgo: 300 }));
    const c15 = await criteria(fourteen);
    expect(c15.items.review_count).toMatchObject({ value: 15, needed: 15, met: true, missing: null });
    expect(c15.missing.some((m) => m.includes("published review"))).toBe(false);

    const twelve = await orgWithReviews(spread(now, 12, { spacingDays: 25 }));
    expect((await criteria(twelve)).items.review_count).toMatchObject({ value: 12, met: false, missing: "3 more published reviews in the last 12 months" });
  });

  it("a review a minute inside the 12-month window counts, one a minute outside does not", async () => {
    const { now, start12 } = await windows();
    const base = spread(now, 14, { firstDaysAgo: 100, spacingDays: 15 });
    const inside = await orgWithReviews([...base, { publishedAt: at(start12, MINUTE) }]);
    const outside = await orgWithReviews([...base, { publishedAt: at(start12, -MINUTE) }]);
    // The 12-month window is the calendar interval, not 360 or 366 days.
    const beyondCalendar = await orgWithReviews([...base, { publishedAt: at(start12, -DAY) }]);
    expect((await criteria(inside)).items.review_count).toMatchObject({ value: 15, met: true });
    expect((await criteria(outside)).items.review_count).toMatchObject({ value: 14, met: false });
    expect((await criteria(beyondCalendar)).items.review_count).toMatchObject({ value: 14, met: false });
  });

  it("the 12-month window is the calendar interval: across a leap day it is 366 days long (evaluated as of 2028-03-15 12:00 UTC)", async () => {
    const orgId = await orgWithReviews([
      { publishedAt: new Date("2027-03-15T11:59:00Z") }, // 12 months and a minute before: outside
      { publishedAt: new Date("2027-03-15T12:01:00Z") }, // inside 12 months, though 366 days before
      { publishedAt: new Date("2027-03-16T11:00:00Z") }, // inside 12 months, more than 365 days before
      { publishedAt: new Date("2027-09-01T00:00:00Z") },
      { publishedAt: new Date("2028-03-15T12:00:00Z") }, // at the evaluation time: counts
      { publishedAt: new Date("2028-03-15T12:00:01Z") }, // after it: not yet
    ]);
    const [row] = await exec<{ c: Criteria }>("select private.level_c_criteria($1, '2028-03-15T12:00:00Z'::timestamptz) as c", [orgId]);
    expect(row!.c.items.review_count.value).toBe(4);
  });

  it("reviews on the first whole day of the window, on the edge day and today all count once", async () => {
    const { now, start12 } = await windows();
    const edgeDayEnd = new Date(Date.UTC(start12.getUTCFullYear(), start12.getUTCMonth(), start12.getUTCDate() + 1) - 1); // 23:59:59.999 of the edge day
    const firstWholeDay = new Date(edgeDayEnd.getTime() + 1); // 00:00 of the next day
    const startOfToday = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
    const rows: ReviewInput[] = [
      { publishedAt: edgeDayEnd },
      { publishedAt: firstWholeDay },
      { publishedAt: at(firstWholeDay, DAY - 1) },
      { publishedAt: startOfToday },
      { publishedAt: at(now, -5_000) }, // today, a few seconds ago
      { publishedAt: at(now, HOUR) }, // dated in the future: not (yet) in the window
    ];
    const orgId = await orgWithReviews(rows);
    expect((await criteria(orgId)).items.review_count.value).toBe(5);
  });

  it("only published reviews count: pending, rejected and hidden ones are ignored everywhere", async () => {
    const { now } = await windows();
    const rows = (["pending", "rejected", "hidden"] as const).flatMap((status) => spread(now, 20, { spacingDays: 2 }).map((r) => ({ ...r, status })));
    const orgId = await orgWithReviews(rows);
    const c = await criteria(orgId);
    expect(c.items.review_count.value).toBe(0);
    expect(c.items.response_rate.value).toBeNull();
    expect(c.items.avg_response_hours.value).toBeNull();
    const [{ n }] = (await exec<{ n: number }>("select count(*)::int as n from private.review_daily_stats where organization_id = $1 and published_count <> 0", [orgId])) as [{ n: number }];
    expect(n).toBe(0);
  });
});

describe("response rate in the last 90 days (>= 85 %)", () => {
  it("84.9 % is not met, 85 % is (1000 reviews: 849 vs 850 answered)", async () => {
    const { now } = await windows();
    const make = (answered: number) =>
      Array.from({ length: 1000 }, (_, i) => {
        const publishedAt = at(now, -(2 * DAY + i * 1.8 * HOUR));
        return { publishedAt, respondedAt: i < answered ? at(publishedAt, HOUR) : null };
      });
    const below = await criteria(await orgWithReviews(make(849)));
    expect(below.items.response_rate).toMatchObject({ value: 84.9, needed: 85, met: false, missing: "answer 1 more of the last 90 days' reviews to reach 85 %" });
    const exactly = await criteria(await orgWithReviews(make(850)));
    expect(exactly.items.response_rate).toMatchObject({ value: 85, met: true, missing: null });
  });

  it("17 of 20 is met; 16 of 20 says 1 more; 45 of 53 (84.90 %) shows 84.9 and is not met", async () => {
    const { now } = await windows();
    const mix = (n: number, answered: number) => spread(now, n, { firstDaysAgo: 2, spacingDays: 1.5 }).map((r, i) => (i < answered ? r : { ...r, respondedAt: null }));
    expect((await criteria(await orgWithReviews(mix(20, 17)))).items.response_rate).toMatchObject({ value: 85, met: true });
    expect((await criteria(await orgWithReviews(mix(20, 16)))).items.response_rate).toMatchObject({
      value: 80, met: false, missing: "answer 1 more of the last 90 days' reviews to reach 85 %",
    });
    expect((await criteria(await orgWithReviews(mix(53, 45)))).items.response_rate).toMatchObject({
      value: 84.9, met: false, missing: "answer 1 more of the last 90 days' reviews to reach 85 %",
    });
    expect((await criteria(await orgWithReviews(mix(20, 0)))).items.response_rate).toMatchObject({
      value: 0, met: false, missing: "answer 17 more of the last 90 days' reviews to reach 85 %",
    });
  });

  it("reviews a minute inside the 90-day window count for rate and time, a minute outside do not", async () => {
    const { now, start90 } = await windows();
    const common = spread(now, 17, { firstDaysAgo: 3, spacingDays: 4, answerHours: 2 });
    const edge = (offset: number): ReviewInput[] => [
      { publishedAt: at(start90, offset), respondedAt: at(start90, offset + 200 * HOUR) },
      { publishedAt: at(start90, 2 * offset), respondedAt: null },
    ];
    const inside = await criteria(await orgWithReviews([...common, ...edge(MINUTE)]));
    const outside = await criteria(await orgWithReviews([...common, ...edge(-MINUTE)]));
    // inside: 19 reviews, 18 answered (94.7 %), (17 * 2 h + 200 h) / 18 = 13.0 h
    expect(inside.items.response_rate).toMatchObject({ value: 94.7, met: true });
    expect(inside.items.avg_response_hours).toMatchObject({ value: 13, met: true });
    // outside: only the 17 answered in 2 h
    expect(outside.items.response_rate).toMatchObject({ value: 100, met: true });
    expect(outside.items.avg_response_hours).toMatchObject({ value: 2, met: true });
    // Both are well inside 12 months.
    expect(inside.items.review_count.value).toBe(19);
    expect(outside.items.review_count.value).toBe(19);
  });

  it("no reviews in the last 90 days: rate and time are null and not met, and the missing texts say why", async () => {
    const { now } = await windows();
    const orgId = await orgWithReviews(spread(now, 20, { firstDaysAgo: 100, spacingDays: 10 }));
    await arrangeB(orgId, await fromNow(300 * DAY));
    await fixtures.caseStudy(orgId);
    const c = await criteria(orgId);
    expect(c.items.review_count).toMatchObject({ value: 20, met: true });
    expect(c.items.response_rate).toMatchObject({ value: null, met: false, missing: "no reviews in the last 90 days, so no response rate yet" });
    expect(c.items.avg_response_hours).toMatchObject({ value: null, met: false, missing: "no reviews in the last 90 days, so no response time yet" });
    expect(c.meets_criteria).toBe(false);
    expect(c.missing).toEqual(["no reviews in the last 90 days, so no response rate yet", "no reviews in the last 90 days, so no response time yet"]);
  });

  it("reviews in the last 90 days but none answered: time is null and says so", async () => {
    const { now } = await windows();
    const c = await criteria(await orgWithReviews(spread(now, 20, { answerHours: null })));
    expect(c.items.avg_response_hours).toMatchObject({ value: null, met: false, missing: "no answered reviews in the last 90 days, so no response time yet" });
  });
});

describe("average response time in the last 90 days (< 48 h)", () => {
  const withResponseSeconds = async (seconds: number[]) => {
    const { now } = await windows();
    return criteria(
      await orgWithReviews(
        seconds.map((s, i) => {
          const publishedAt = at(now, -(5 + i * 3) * DAY);
          return { publishedAt, respondedAt: at(publishedAt, s * 1000) };
        }),
      ),
    );
  };

  it("47.9 h is met; exactly 48 h is not (the rule is below 48 h)", async () => {
    const c479 = await withResponseSeconds(Array(20).fill(47.9 * 3600));
    expect(c479.items.avg_response_hours).toMatchObject({ value: 47.9, needed: 48, met: true, missing: null });
    const c48 = await withResponseSeconds(Array(20).fill(48 * 3600));
    expect(c48.items.avg_response_hours).toMatchObject({ value: 48, met: false, missing: "bring the average response time below 48 h (now 48.0 h)" });
  });

  it("the shown value is truncated, never rounded into a hit or a miss: 47.99 h shows 47.9 (met), 48 h + 1 s shows 48.0 (not met)", async () => {
    const justBelow = await withResponseSeconds([...Array(19).fill(48 * 3600), 47.8 * 3600]); // mean 47.99 h
    expect(justBelow.items.avg_response_hours).toMatchObject({ value: 47.9, met: true });
    const justAbove = await withResponseSeconds(Array(20).fill(48 * 3600 + 1));
    expect(justAbove.items.avg_response_hours).toMatchObject({ value: 48, met: false, missing: "bring the average response time below 48 h (now 48.0 h)" });
  });

  it("unanswered reviews do not count towards the average, only towards the rate", async () => {
    const { now } = await windows();
    const rows = spread(now, 20, { answerHours: 10 }).map((r, i) => (i % 5 === 0 ? { ...r, respondedAt: null } : r));
    const c = await criteria(await orgWithReviews(rows));
    expect(c.items.avg_response_hours).toMatchObject({ value: 10, met: true });
    expect(c.items.response_rate).toMatchObject({ value: 80, met: false });
  });
});

describe("case studies and the whole verdict", () => {
  it("only published case studies count (>= 1)", async () => {
    const orgId = await fixtures.organization();
    await fixtures.caseStudy(orgId, false);
    expect((await criteria(orgId)).items.public_cases).toMatchObject({ value: 0, needed: 1, met: false, missing: "publish at least one case study" });
    await fixtures.caseStudy(orgId, true);
    expect((await criteria(orgId)).items.public_cases).toMatchObject({ value: 1, needed: 1, met: true, missing: null });
    await fixtures.caseStudy(orgId, true);
    expect((await criteria(orgId)).items.public_cases).toMatchObject({ value: 2, met: true });
  });

  it("nothing at all: every criterion missing, in order; everything: eligible with nothing missing", async () => {
    const empty = await criteria(await fixtures.organization());
    expect(empty.meets_criteria).toBe(false);
    expect(empty.missing).toEqual([
      "an active level B: level C builds on a verified B",
      "15 more published reviews in the last 12 months",
      "no reviews in the last 90 days, so no response rate yet",
      "no reviews in the last 90 days, so no response time yet",
      "publish at least one case study",
    ]);
    expect(empty.items.has_active_b).toMatchObject({ value: false, met: false });

    const full = await fixtures.organization();
    await fixtures.meetsLevelC(full);
    const c = await criteria(full);
    expect(c).toMatchObject({ meets_criteria: true, missing: [] });
    expect(c.items.has_active_b).toMatchObject({ value: true, met: true, missing: null });
  });

  it("a B past its valid_until is not an active B, even with the flag still set", async () => {
    const orgId = await fixtures.organization();
    await fixtures.meetsLevelC(orgId);
    await exec("update public.organization_status_levels set valid_until = now() - interval '1 minute' where organization_id = $1", [orgId]);
    const c = await criteria(orgId);
    expect(c.meets_criteria).toBe(false);
    expect(c.missing).toEqual(["an active level B: level C builds on a verified B"]);
  });

  it("members and platform admins may read it; outsiders get 403, anonymous 401", async () => {
    const o = await fixtures.orgWithPeople();
    for (const token of [o.member.token, o.manager.token, o.platformAdmin.token, SERVICE_ROLE]) {
      expect(await rpcOk(token, "check_level_c_criteria", { p_organization_id: o.orgId })).toMatchObject({ meets_criteria: false });
    }
    expectApiError(await rpc(o.outsider.token, "check_level_c_criteria", { p_organization_id: o.orgId }), 403, "not_allowed");
    expect((await rpc(null, "check_level_c_criteria", { p_organization_id: o.orgId })).status).toBe(401);
  });
});

describe("the rollup follows every change to reviews", () => {
  it("answering later, deleting, hiding and re-dating reviews change the result", async () => {
    const { now } = await windows();
    // 15 reviews on whole days inside both windows, 12 answered in 10 h: 80 %, not met.
    const rows = spread(now, 15, { firstDaysAgo: 2, spacingDays: 5, answerHours: 10 }).map((r, i) => (i >= 12 ? { ...r, respondedAt: null } : r));
    const orgId = await orgWithReviews(rows);
    let c = await criteria(orgId);
    expect(c.items.review_count).toMatchObject({ value: 15, met: true });
    expect(c.items.response_rate).toMatchObject({ value: 80, met: false });

    // Two of them get their answer, 40 h after publication (one statement, two rows).
    await exec(
      `update public.reviews set responded_at = published_at + interval '40 hours'
       where id in (select id from public.reviews where organization_id = $1 and responded_at is null order by published_at limit 2)`,
      [orgId],
    );
    c = await criteria(orgId);
    expect(c.items.response_rate).toMatchObject({ value: 93.3, met: true }); // 14 / 15
    expect(c.items.avg_response_hours).toMatchObject({ value: 14.2, met: true }); // (12 * 10 + 2 * 40) / 14 = 14.28

    // The answer time of every answered review is corrected to 50 h.
    await exec("update public.reviews set responded_at = published_at + interval '50 hours' where organization_id = $1 and responded_at is not null", [orgId]);
    c = await criteria(orgId);
    expect(c.items.avg_response_hours).toMatchObject({ value: 50, met: false });

    // One review is deleted: 14 left.
    await exec("delete from public.reviews where id = (select id from public.reviews where organization_id = $1 order by published_at desc limit 1)", [orgId]);
    c = await criteria(orgId);
    expect(c.items.review_count).toMatchObject({ value: 14, met: false, missing: "1 more published review in the last 12 months" });

    // One is hidden by moderation: 13.
    await exec("update public.reviews set status = 'hidden' where id = (select id from public.reviews where organization_id = $1 and status = 'published' order by published_at limit 1)", [orgId]);
    c = await criteria(orgId);
    expect(c.items.review_count.value).toBe(13);

    // Two are re-dated to 13 months ago: out of both windows.
    await exec(
      `update public.reviews set published_at = now() - interval '13 months', responded_at = null
       where id in (select id from public.reviews where organization_id = $1 and status = 'published' order by published_at limit 2)`,
      [orgId],
    );
    c = await criteria(orgId);
    expect(c.items.review_count.value).toBe(11);

    // The hidden one is published again and the old ones are deleted.
    await exec("update public.reviews set status = 'published' where organization_id = $1 and status = 'hidden'", [orgId]);
    await exec("delete from public.reviews where organization_id = $1 and published_at < now() - interval '12 months'", [orgId]);
    c = await criteria(orgId);
    expect(c.items.review_count.value).toBe(12);
    await expectRollupMatchesReviews(orgId);
  });

  it("an upsert (insert ... on conflict do update) that inserts some reviews and updates others is counted once each", async () => {
    const { now } = await windows();
    const orgId = await orgWithReviews(spread(now, 10, { answerHours: null }));
    const existing = (await exec<{ id: string; published_at: Date }>("select id, published_at from public.reviews where organization_id = $1 order by published_at desc", [orgId]));
    const upserts = [
      ...existing.slice(0, 6).map((r) => ({ id: r.id, published_at: r.published_at.toISOString(), responded_at: at(r.published_at, 5 * HOUR).toISOString() })),
      ...spread(now, 6, { firstDaysAgo: 40, spacingDays: 2, answerHours: 1 }).map((r) => ({ id: crypto.randomUUID(), published_at: r.publishedAt.toISOString(), responded_at: r.respondedAt!.toISOString() })),
    ];
    await exec(
      `insert into public.reviews (id, organization_id, status, published_at, responded_at)
       select id, $1::uuid, 'published', published_at, responded_at
       from jsonb_to_recordset($2::text::jsonb) as r(id uuid, published_at timestamptz, responded_at timestamptz)
       on conflict (id) do update set responded_at = excluded.responded_at`,
      [orgId, JSON.stringify(upserts)],
    );
    const c = await criteria(orgId);
    expect(c.items.review_count.value).toBe(16);
    expect(c.items.response_rate.value).toBe(75); // 12 of 16
    expect(c.items.avg_response_hours.value).toBe(3); // (6 * 5 h + 6 * 1 h) / 12
    await expectRollupMatchesReviews(orgId);
  });

  it("deleting an organization (its reviews go with it) leaves no counts behind", async () => {
    const { now } = await windows();
    const orgId = await orgWithReviews(spread(now, 12));
    await exec("delete from public.organizations where id = $1", [orgId]);
    const [{ left }] = (await exec<{ left: number }>(
      "select count(*)::int as left from private.review_daily_stats where organization_id = $1 and (published_count <> 0 or answered_count <> 0 or response_seconds <> 0)",
      [orgId],
    )) as [{ left: number }];
    expect(left).toBe(0);
  });

  it("a review moved to another organization leaves one and joins the other", async () => {
    const { now } = await windows();
    const from = await orgWithReviews(spread(now, 15));
    const to = await orgWithReviews(spread(now, 14));
    await exec("update public.reviews set organization_id = $2 where id = (select id from public.reviews where organization_id = $1 limit 1)", [from, to]);
    expect((await criteria(from)).items.review_count.value).toBe(14);
    expect((await criteria(to)).items.review_count.value).toBe(15);
    await expectRollupMatchesReviews(from);
    await expectRollupMatchesReviews(to);
  });

  it("randomized: ~500 reviews over 2 years, then random updates and deletes; rollup and criteria equal a plain aggregate over public.reviews", async () => {
    const seed = Number(process.env.LEVEL_C_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = mulberry32(seed);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const { now } = await windows();
    const orgId = await fixtures.organization();
    await arrangeB(orgId, await fromNow(300 * DAY));

    const rows: ReviewInput[] = Array.from({ length: 500 }, () => {
      let publishedAt = at(now, -Math.floor(random() * 730 * DAY));
      if (random() < 0.1) {
        // Exactly at, or a millisecond before, a UTC midnight: the day boundaries of the rollup.
        const midnight = Date.UTC(publishedAt.getUTCFullYear(), publishedAt.getUTCMonth(), publishedAt.getUTCDate());
        publishedAt = new Date(midnight - (random() < 0.5 ? 0 : 1));
      }
      const respondedAt = random() < 0.3 ? null : at(publishedAt, Math.floor(random() * 200 * 3600) * 1000);
      const status = random() < 0.85 ? "published" : pick(["pending", "rejected", "hidden"]);
      return { publishedAt, respondedAt, status };
    });
    await fixtures.reviews(orgId, rows);

    const ids = (await exec<{ id: string }>("select id from public.reviews where organization_id = $1 order by id", [orgId])).map((r) => r.id);
    const sample = (n: number) => Array.from({ length: n }, () => pick(ids));
    // Multi-row statements of every kind the platform might run.
    await exec("update public.reviews set responded_at = published_at + make_interval(secs => 3600 * (1 + (abs(hashtext(id::text)) % 90))) where id = any($1::uuid[]) and responded_at is null", [sample(60)]);
    await exec("update public.reviews set responded_at = null where id = any($1::uuid[])", [sample(20)]);
    await exec("update public.reviews set status = case status when 'published' then 'hidden' else 'published' end where id = any($1::uuid[])", [sample(40)]);
    await exec("update public.reviews set published_at = published_at - interval '37 days', responded_at = responded_at - interval '37 days' where id = any($1::uuid[])", [sample(40)]);
    await exec("delete from public.reviews where id = any($1::uuid[])", [sample(30)]);

    await expectRollupMatchesReviews(orgId, `seed ${seed}`);

    // The criteria now, and at other moments (as_of) across the last year and a half.
    const asOfs = [now.toISOString(), ...Array.from({ length: 12 }, () => at(now, -Math.floor(random() * 550 * DAY)).toISOString())];
    for (const asOf of asOfs) {
      const [r] = await exec<{ c: Criteria; n12: number; n90: number; rate: string | null; avg: string | null; rate_met: boolean; time_met: boolean }>(
        `with p as (select $2::timestamptz as as_of),
         r as (select published_at, responded_at from public.reviews, p
               where organization_id = $1 and status = 'published' and published_at <= p.as_of),
         w as (select
           (select count(*) from r, p where published_at >= p.as_of - interval '12 months')::int as n12,
           (select count(*) from r, p where published_at >= p.as_of - interval '90 days')::int as n90,
           (select count(responded_at) from r, p where published_at >= p.as_of - interval '90 days')::int as a90,
           (select sum(extract(epoch from responded_at - published_at)) from r, p where published_at >= p.as_of - interval '90 days') as s90)
         select private.level_c_criteria($1, (select as_of from p)) as c, n12, n90,
                case when n90 > 0 then trunc(a90 * 100.0 / n90, 1)::text end as rate,
                case when a90 > 0 then trunc(s90 / a90 / 3600, 1)::text end as avg,
                n90 > 0 and a90 * 100 >= 85 * n90 as rate_met,
                a90 > 0 and s90 < 48 * 3600 * a90 as time_met
         from w`,
        [orgId, asOf],
      );
      const got = r!.c.items;
      const context = `seed ${seed}, as_of ${asOf}`;
      expect(got.review_count.value, context).toBe(r!.n12);
      expect(got.response_rate.value, context).toBe(r!.rate === null ? null : Number(r!.rate));
      expect(got.response_rate.met, context).toBe(r!.rate_met ?? false);
      expect(got.avg_response_hours.value, context).toBe(r!.avg === null ? null : Number(r!.avg));
      expect(got.avg_response_hours.met, context).toBe(r!.time_met ?? false);
    }
    // And the public function agrees with the private one at now().
    const [{ same }] = (await exec<{ same: boolean }>(
      "select (public.check_level_c_criteria($1) - 'evaluated_at') = (private.level_c_criteria($1, now()) - 'evaluated_at') as same",
      [orgId],
    )) as [{ same: boolean }];
    expect(same).toBe(true);
  });
});

/** Every non-empty rollup day equals a direct count over the organization's published reviews. */
async function expectRollupMatchesReviews(orgId: string, context = ""): Promise<void> {
  type Day = { day: string; published: number; answered: number; seconds: number };
  const rollup = await exec<Day>(
    `select day::text as day, published_count as published, answered_count as answered, response_seconds as seconds
     from private.review_daily_stats
     where organization_id = $1 and (published_count <> 0 or answered_count <> 0 or response_seconds <> 0)
     order by day`,
    [orgId],
  );
  const direct = await exec<Day>(
    `select (published_at at time zone 'UTC')::date::text as day, count(*)::int as published, count(responded_at)::int as answered,
            coalesce(sum(extract(epoch from responded_at - published_at)), 0)::float8 as seconds
     from public.reviews
     where organization_id = $1 and status = 'published' and published_at is not null
     group by 1 order by 1`,
    [orgId],
  );
  expect(rollup.map(({ day, published, answered }) => ({ day, published, answered })), context).toEqual(
    direct.map(({ day, published, answered }) => ({ day, published, answered })),
  );
  rollup.forEach((d, i) => expect(Math.abs(d.seconds - direct[i]!.seconds), `${context} ${d.day}`).toBeLessThan(1e-3));
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
