-- Level C's measured criteria: published reviews in 12 months, response rate and average response
-- time over 90 days, published case studies (plus an active B). A daily rollup of reviews per
-- organization, kept by statement triggers, makes the check cost the same whatever the number of
-- reviews; the window edges are counted from the reviews themselves, so they are exact.

-- Published reviews per organization and UTC day, kept by statement-level triggers, so the
-- level C check sums at most ~366 rows whatever the number of reviews (exact window edges are
-- read from the reviews themselves).
create table private.review_daily_stats (
  organization_id uuid not null,
  day date not null,
  published_count integer not null default 0,
  answered_count integer not null default 0,
  response_seconds double precision not null default 0,
  primary key (organization_id, day)
);

-- The one index and the three statement triggers this service adds to the platform's reviews
-- table (it changes none of its columns, policies or grants): the edges of the windows are read
-- through the index, and the triggers keep the rollup in step with every change to reviews.
create index if not exists reviews_published_by_org on public.reviews (organization_id, published_at)
  include (responded_at) where status = 'published';

-- One function for the three statement triggers; each sees only its own transition tables, so
-- the source rows are chosen by TG_OP and the upsert runs as dynamic SQL.
create or replace function private.review_stats_apply()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  source text := case tg_op
    when 'INSERT' then 'select organization_id, status, published_at, responded_at, 1 as sign from new_rows'
    when 'DELETE' then 'select organization_id, status, published_at, responded_at, -1 as sign from old_rows'
    else 'select organization_id, status, published_at, responded_at, 1 as sign from new_rows
          union all select organization_id, status, published_at, responded_at, -1 from old_rows'
  end;
begin
  -- Sorted upserts: concurrent statements lock the day rows in the same order (no deadlocks).
  execute format($q$
    insert into private.review_daily_stats as s (organization_id, day, published_count, answered_count, response_seconds)
    select organization_id, day, sum(sign)::integer, sum(sign * answered)::integer, sum(sign * seconds)
    from (
      select organization_id, (published_at at time zone 'UTC')::date as day, sign,
             (responded_at is not null)::integer as answered,
             coalesce(extract(epoch from responded_at - published_at), 0)::double precision as seconds
      from (%s) r
      where status = 'published' and published_at is not null
    ) c
    group by organization_id, day
    having sum(sign) <> 0 or sum(sign * answered) <> 0 or sum(sign * seconds) <> 0
    order by organization_id, day
    on conflict (organization_id, day) do update set
      published_count = s.published_count + excluded.published_count,
      answered_count = s.answered_count + excluded.answered_count,
      response_seconds = s.response_seconds + excluded.response_seconds
  $q$, source);
  return null;
end;
$$;

create or replace trigger reviews_stats_after_insert after insert on public.reviews
  referencing new table as new_rows
  for each statement execute function private.review_stats_apply();
create or replace trigger reviews_stats_after_update after update on public.reviews
  referencing old table as old_rows new table as new_rows
  for each statement execute function private.review_stats_apply();
create or replace trigger reviews_stats_after_delete after delete on public.reviews
  referencing old table as old_rows
  for each statement execute function private.review_stats_apply();

alter table private.review_daily_stats enable row level security;
revoke all on private.review_daily_stats from anon, authenticated, service_role;
grant select on private.review_daily_stats to service_role;

-- The sums behind level C's review criteria at as_of, for many organizations at once (one row
-- per distinct id): published reviews in [as_of - 12 months, as_of], and in [as_of - 90 days,
-- as_of] how many, how many answered and their response seconds. Whole UTC days inside each window
-- come from the daily rollup; the window edges (the partial first day, and today up to as_of) are
-- counted from the reviews themselves, so the windows are exact to the microsecond and the cost does
-- not grow with the review count. The interval arithmetic is Postgres' (in the session's time zone,
-- as everywhere in the service), so every caller sees the same windows.
-- Without SET or SECURITY DEFINER, so the planner inlines it into its callers (security definer
-- functions with an empty search_path; every name here is schema-qualified) and their cached plans
-- include it: no planning per call.
create or replace function private.review_window_totals(orgs uuid[], as_of timestamptz)
returns table (organization_id uuid, reviews_12m bigint, reviews_90d bigint, answered_90d bigint, seconds_90d double precision)
language sql
stable
as $$
  -- Materialized: the bounds are computed once, not for every rollup row they filter.
  with w as materialized (
    select as_of - interval '12 months' as start12, as_of - interval '90 days' as start90,
           (as_of at time zone 'UTC')::date as today,
           ((as_of - interval '12 months') at time zone 'UTC')::date as day12,
           ((as_of - interval '90 days') at time zone 'UTC')::date as day90
  )
  select o.org, d.n12 + e.n12, d.n90 + e.n90, d.a90 + e.a90, d.s90 + e.s90
  from w
  cross join (select distinct unnest(orgs) as org) o
  cross join lateral (
    select coalesce(sum(s.published_count), 0)::bigint as n12,
           coalesce(sum(s.published_count) filter (where s.day > w.day90), 0)::bigint as n90,
           coalesce(sum(s.answered_count) filter (where s.day > w.day90), 0)::bigint as a90,
           coalesce(sum(s.response_seconds) filter (where s.day > w.day90), 0)::double precision as s90
    from private.review_daily_stats s
    where s.organization_id = o.org and s.day > w.day12 and s.day < w.today
  ) d
  cross join lateral (
    select count(*) filter (where edges.part <> 'edge90') as n12,
           count(*) filter (where edges.part <> 'edge12') as n90,
           count(edges.responded_at) filter (where edges.part <> 'edge12') as a90,
           coalesce(sum(extract(epoch from edges.responded_at - edges.published_at)) filter (where edges.part <> 'edge12'), 0)::double precision as s90
    from (
      select 'edge12' as part, r.published_at, r.responded_at from public.reviews r
      where r.organization_id = o.org and r.status = 'published'
        and r.published_at >= w.start12 and r.published_at < (w.day12 + 1)::timestamp at time zone 'UTC'
      union all
      select 'edge90', r.published_at, r.responded_at from public.reviews r
      where r.organization_id = o.org and r.status = 'published'
        and r.published_at >= w.start90 and r.published_at < (w.day90 + 1)::timestamp at time zone 'UTC'
      union all
      select 'today', r.published_at, r.responded_at from public.reviews r
      where r.organization_id = o.org and r.status = 'published'
        and r.published_at >= w.today::timestamp at time zone 'UTC' and r.published_at <= as_of
    ) edges
  ) e
$$;

-- The rules of the two 90-day criteria, in one place for the check and the projection. Values are
-- shown truncated to one decimal, so a value shown as 85.0 % or 48.0 h is never a miss or a hit by
-- rounding; met or not compares the exact figures. No reviews (or no answered ones) in the window:
-- no value, not met.
create or replace function private.level_c_response_rate(reviews_90d bigint, answered_90d bigint)
returns numeric
language sql
immutable
as $$
  select case when reviews_90d > 0 then trunc(answered_90d * 100.0 / reviews_90d, 1) end
$$;

create or replace function private.level_c_response_rate_met(reviews_90d bigint, answered_90d bigint)
returns boolean
language sql
immutable
as $$
  select reviews_90d > 0 and answered_90d * 100 >= 85 * reviews_90d
$$;

create or replace function private.level_c_avg_response_hours(answered_90d bigint, seconds_90d double precision)
returns numeric
language sql
immutable
as $$
  select case when answered_90d > 0 then trunc((seconds_90d / answered_90d / 3600)::numeric, 1) end
$$;

create or replace function private.level_c_avg_response_met(answered_90d bigint, seconds_90d double precision)
returns boolean
language sql
immutable
as $$
  select answered_90d > 0 and seconds_90d < 48 * 3600.0 * answered_90d
$$;

-- Level C criteria at as_of (now by default), from the sums above.
create or replace function private.level_c_criteria(org uuid, as_of timestamptz default now())
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  reviews_12m bigint;
  reviews_90d bigint;
  answered_90d bigint;
  seconds_90d double precision;
  has_b boolean;
  case_studies bigint;
  rate numeric;
  avg_hours numeric;
  need_answers bigint;
  c_b jsonb;
  c_reviews jsonb;
  c_rate jsonb;
  c_time jsonb;
  c_cases jsonb;
begin
  select t.reviews_12m, t.reviews_90d, t.answered_90d, t.seconds_90d
    into reviews_12m, reviews_90d, answered_90d, seconds_90d
  from private.review_window_totals(array[org], as_of) t;

  select exists (
    select 1 from public.organization_status_levels
    where organization_id = org and level = 'B' and is_active and valid_until > as_of
  ) into has_b;
  select count(*) into case_studies from public.case_studies where organization_id = org and is_published;

  rate := private.level_c_response_rate(reviews_90d, answered_90d);
  avg_hours := private.level_c_avg_response_hours(answered_90d, seconds_90d);
  need_answers := greatest(ceil(reviews_90d * 0.85) - answered_90d, 0);

  c_b := jsonb_build_object('value', has_b, 'needed', true, 'comparison', 'equals', 'window', 'now', 'met', has_b,
    'missing', case when not has_b then 'an active level B: level C builds on a verified B' end);
  c_reviews := jsonb_build_object('value', reviews_12m, 'needed', 15, 'comparison', 'at_least', 'window', '12 months',
    'met', reviews_12m >= 15,
    'missing', case when reviews_12m < 15 then
      format('%s more published review%s in the last 12 months', 15 - reviews_12m, case when 15 - reviews_12m = 1 then '' else 's' end) end);
  c_rate := jsonb_build_object('value', rate, 'needed', 85.0, 'unit', 'percent', 'comparison', 'at_least', 'window', '90 days',
    'met', private.level_c_response_rate_met(reviews_90d, answered_90d),
    'missing', case
      when reviews_90d = 0 then 'no reviews in the last 90 days, so no response rate yet'
      when not private.level_c_response_rate_met(reviews_90d, answered_90d) then
        format('answer %s more of the last 90 days'' reviews to reach 85 %%', need_answers) end);
  c_time := jsonb_build_object('value', avg_hours, 'needed', 48.0, 'unit', 'hours', 'comparison', 'below', 'window', '90 days',
    'met', private.level_c_avg_response_met(answered_90d, seconds_90d),
    'missing', case
      when reviews_90d = 0 then 'no reviews in the last 90 days, so no response time yet'
      when answered_90d = 0 then 'no answered reviews in the last 90 days, so no response time yet'
      when not private.level_c_avg_response_met(answered_90d, seconds_90d) then
        format('bring the average response time below 48 h (now %s h)', avg_hours) end);
  c_cases := jsonb_build_object('value', case_studies, 'needed', 1, 'comparison', 'at_least', 'window', 'any time',
    'met', case_studies >= 1,
    'missing', case when case_studies < 1 then 'publish at least one case study' end);

  -- `criteria` is the shape the platform's pages have always read (the service this one
  -- replaced): values and thresholds only. `items` says, per criterion, whether it is met and
  -- what is missing, under the same names.
  return jsonb_build_object(
    'meets_criteria', (c_b ->> 'met')::boolean and (c_reviews ->> 'met')::boolean and (c_rate ->> 'met')::boolean
                      and (c_time ->> 'met')::boolean and (c_cases ->> 'met')::boolean,
    'evaluated_at', as_of,
    'criteria', jsonb_build_object(
      'has_active_b', has_b,
      'review_count', reviews_12m,
      'review_count_needed', 15,
      'response_rate', rate,
      'response_rate_needed', 85.0,
      'avg_response_hours', avg_hours,
      'avg_response_hours_max', 48.0,
      'public_cases', case_studies,
      'public_cases_needed', 1
    ),
    'items', jsonb_build_object(
      'has_active_b', c_b,
      'review_count', c_reviews,
      'response_rate', c_rate,
      'avg_response_hours', c_time,
      'public_cases', c_cases
    ),
    'missing', (
      select coalesce(jsonb_agg(c -> 'missing' order by ord), '[]'::jsonb)
      from unnest(array[c_b, c_reviews, c_rate, c_time, c_cases]) with ordinality as t(c, ord)
      where c ->> 'missing' is not null
    )
  );
end;
$$;

create or replace function public.check_level_c_criteria(p_organization_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_member_view(p_organization_id);
  return private.level_c_criteria(p_organization_id);
end;
$$;
comment on function public.check_level_c_criteria(uuid) is 'Level C criteria: meets_criteria, the values and thresholds (criteria), per criterion whether it is met and what is missing (items). Members and platform admins.';

revoke all on function public.check_level_c_criteria(uuid) from public, anon;
grant execute on function public.check_level_c_criteria(uuid) to authenticated, service_role;

-- The projection: level C's criteria over the coming days, assuming nothing new happens (no new
-- reviews, responses, case studies or level changes), as the windows slide.
--
-- Dates are calendar dates in the organization's time zone (organizations.time_zone). "Today" is
-- the local date of as_of. The value ON date X is the value at the END of local day X, i.e.
-- private.level_c_criteria(org, e) at e = the local midnight that starts X + 1; so today's value is
-- the one at tonight's midnight, and the value now (at as_of) is given beside it. A criterion
-- "stops being met on X" when X is the first date whose end-of-day value fails (and "starts being
-- met" likewise). B counts as long as valid_until > e, as in the check.
--
-- How it stays cheap whatever the number of reviews: the values now are the check's (rollup plus
-- exact edges, private.review_window_totals). Only the reviews that LEAVE a window within the horizon
-- are read one by one: those published in [as_of - window, start of the window at the last end of
-- day), each one leaving at the first end of day whose window start is past it, which
-- width_bucket over the sorted window starts gives at once. A review dated after as_of (the
-- platform may date one ahead) enters at the first end of day at or after it. Values change only
-- at those days and when B ends, so only those days ("change points") are computed: one row per
-- change point, plus day_index -1 for as_of itself; every_day adds every day of the horizon.
-- Inlined into its caller, as private.review_window_totals is.
create or replace function private.level_c_timeline(orgs uuid[], horizon_days integer, as_of timestamptz, every_day boolean default false)
returns table (
  organization_id uuid,
  time_zone text,
  day_index integer,
  on_date date,
  b_valid_until timestamptz,
  has_active_b boolean,
  review_count bigint,
  reviews_90d bigint,
  answered_90d bigint,
  seconds_90d double precision,
  public_cases bigint
)
language sql
stable
as $$
  with org as (
    select o.id, coalesce(o.time_zone, 'UTC') as tz, (as_of at time zone coalesce(o.time_zone, 'UTC'))::date as today
    from public.organizations o
    where o.id = any (orgs)
  ),
  -- The end of each day of the horizon (index i: the end of today + i days) and the window starts at
  -- those instants, as sorted arrays; once per (zone, today), a handful whatever the number of orgs.
  zone as (
    select z.tz, z.today,
           array_agg(e.at order by i) as ends,
           array_agg(e.at - interval '12 months' order by i) as starts12,
           array_agg(e.at - interval '90 days' order by i) as starts90
    from (select distinct tz, today from org) z
    cross join generate_series(0, horizon_days) i
    cross join lateral (select (z.today + i + 1)::timestamp at time zone z.tz as at) e
    group by z.tz, z.today
  ),
  o as (
    select org.id, org.tz, org.today, zone.ends, zone.starts12, zone.starts90,
           (select max(l.valid_until) from public.organization_status_levels l
            where l.organization_id = org.id and l.level = 'B' and l.is_active) as b_until,
           (select count(*) from public.case_studies c where c.organization_id = org.id and c.is_published) as cases
    from org join zone using (tz, today)
  ),
  -- What changes, and from which day index on: (org, day index, change of each sum). Seconds in
  -- float8 (date_part), as the rollup keeps them.
  change as (
    -- In the 12-month window now, out of it by the end of the horizon.
    select o.id, width_bucket(r.published_at, o.starts12) as idx,
           -count(*) as d12, 0::bigint as d90, 0::bigint as da90, 0::double precision as ds90
    from o
    join public.reviews r on r.organization_id = o.id and r.status = 'published'
      and r.published_at >= as_of - interval '12 months' and r.published_at < o.starts12[horizon_days + 1]
    group by o.id, 2
    union all
    -- In the 90-day window now, out of it by the end of the horizon.
    select o.id, width_bucket(r.published_at, o.starts90),
           0, -count(*), -count(r.responded_at), -coalesce(sum(date_part('epoch', r.responded_at - r.published_at)), 0)
    from o
    join public.reviews r on r.organization_id = o.id and r.status = 'published'
      and r.published_at >= as_of - interval '90 days' and r.published_at < o.starts90[horizon_days + 1] and r.published_at <= as_of
    group by o.id, 2
    union all
    -- Dated after as_of: in both windows from the first end of day at or after it (lo); out of the
    -- 90-day window again at the first end of day whose window start is past it (hi), which a
    -- horizon of at most 90 days can reach; the 12-month window it cannot leave.
    select o.id, x.idx, sum(x.d12)::bigint, sum(x.d90)::bigint, sum(x.da90)::bigint, sum(x.ds90)::double precision
    from o
    join public.reviews r on r.organization_id = o.id and r.status = 'published'
      and r.published_at > as_of and r.published_at <= o.ends[horizon_days + 1]
    cross join lateral (
      select width_bucket(r.published_at - interval '1 microsecond', o.ends) as lo, width_bucket(r.published_at, o.starts90) as hi,
             (r.responded_at is not null)::integer as answered,
             coalesce(date_part('epoch', r.responded_at - r.published_at), 0) as seconds
    ) b
    cross join lateral (values (b.lo, 1, 1, b.answered, b.seconds), (b.hi, 0, -1, -b.answered, -b.seconds)) as x(idx, d12, d90, da90, ds90)
    group by o.id, x.idx
  ),
  change_by_day as (
    select c.id, c.idx, sum(c.d12) as d12, sum(c.d90) as d90, sum(c.da90) as da90, sum(c.ds90) as ds90
    from change c
    where c.idx <= horizon_days
    group by c.id, c.idx
  ),
  point as (
    select id, idx from change_by_day
    union
    select o.id, i from o cross join unnest(array[0, horizon_days]) i
    union
    -- B ends: has_active_b is false from the first end of day at or after valid_until.
    select o.id, width_bucket(o.b_until - interval '1 microsecond', o.ends) from o
    where o.b_until > as_of and o.b_until <= o.ends[horizon_days + 1]
    union
    select o.id, i from o cross join generate_series(0, horizon_days) i where every_day
  ),
  running as (
    select p.id, p.idx,
           sum(coalesce(c.d12, 0)) over w as d12, sum(coalesce(c.d90, 0)) over w as d90,
           sum(coalesce(c.da90, 0)) over w as da90, sum(coalesce(c.ds90, 0)) over w as ds90
    from point p left join change_by_day c using (id, idx)
    window w as (partition by p.id order by p.idx)
  ),
  now_ as materialized (
    select o.*, n.reviews_12m, n.reviews_90d, n.answered_90d, n.seconds_90d
    from o join private.review_window_totals(orgs, as_of) n on n.organization_id = o.id
  )
  select n.id, n.tz, -1, n.today, n.b_until, coalesce(n.b_until > as_of, false),
         n.reviews_12m, n.reviews_90d, n.answered_90d, n.seconds_90d, n.cases
  from now_ n
  union all
  select n.id, n.tz, r.idx, n.today + r.idx, n.b_until, coalesce(n.b_until > n.ends[r.idx + 1], false),
         n.reviews_12m + r.d12::bigint, n.reviews_90d + r.d90::bigint, n.answered_90d + r.da90::bigint,
         n.seconds_90d + r.ds90::double precision, n.cases
  from now_ n
  join running r on r.id = n.id
$$;

create or replace function private.require_horizon(horizon_days integer)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if horizon_days is null or horizon_days < 1 or horizon_days > 90 then
    perform private.fail(400, 'invalid_horizon', 'the horizon must be between 1 and 90 days');
  end if;
end;
$$;

-- The projection of many organizations at once (one set-based statement), for the daily job, the
-- admin list and an organization's own projection: one row per existing organization with whether
-- it meets the criteria now and at the end of the horizon, the first date it stops meeting them (if
-- it meets them now) or starts meeting them (if it does not), and per criterion (has_active_b,
-- review_count, response_rate, avg_response_hours, public_cases; the check's names and units) the
-- value and verdict now and at the horizon, the first date the verdict differs from now
-- (changes_on) and, for one that stops being met, what would keep it met through the horizon
-- (keep). failing lists the criteria not met now (fails_on: today) or stopping within the horizon
-- (fails_on: changes_on), soonest first. with_days adds the value and verdict on every date (days).
create or replace function private.level_c_projection_for(orgs uuid[], horizon_days integer, as_of timestamptz default now(), with_days boolean default false)
returns table (
  organization_id uuid,
  time_zone text,
  today date,
  meets_now boolean,
  meets_at_horizon boolean,
  first_failing_on date,
  first_meeting_on date,
  criteria jsonb,
  failing jsonb,
  days jsonb
)
language plpgsql
stable
security definer
set search_path = ''
-- Compiling the plan's expressions costs more than evaluating them here.
set jit = off
as $$
begin
  perform private.require_horizon(horizon_days);
  return query
  with point as (
    -- The verdicts at each point of the timeline (day_index -1: now), and beside them the verdicts now.
    select v.*,
           first_value(v.has_active_b) over w as b_now, first_value(v.count_met) over w as count_now,
           first_value(v.rate_met) over w as rate_now, first_value(v.time_met) over w as time_now,
           first_value(v.cases_met) over w as cases_now,
           first_value(v.has_active_b and v.count_met and v.rate_met and v.time_met and v.cases_met) over w as meets_now
    from (
      select t.*,
             t.review_count >= 15 as count_met,
             private.level_c_response_rate(t.reviews_90d, t.answered_90d) as rate,
             private.level_c_response_rate_met(t.reviews_90d, t.answered_90d) as rate_met,
             private.level_c_avg_response_hours(t.answered_90d, t.seconds_90d) as hours,
             private.level_c_avg_response_met(t.answered_90d, t.seconds_90d) as time_met,
             t.public_cases >= 1 as cases_met
      from private.level_c_timeline(orgs, horizon_days, as_of, with_days) t
    ) v
    window w as (partition by v.organization_id order by v.day_index)
  ),
  -- One row per organization: values now and at the horizon, the first date each verdict differs
  -- from now, and the most a failing day lacks in what keep proposes (all of it before the first
  -- failing date): published reviews; reviews answered within 48 h, as 100 (a + k) >= 85 (n + k)
  -- needs k >= (85 n - 100 a) / 15; reviews answered within 24 h, as s + 24 h k < 48 h (a + k)
  -- needs k > (s - 48 h a) / 24 h.
  org as (
    select p.organization_id, min(p.time_zone) as time_zone, min(p.on_date) as today, min(p.b_valid_until) as b_valid_until,
           bool_and(p.meets_now) as meets_now,
           bool_and(p.has_active_b and p.count_met and p.rate_met and p.time_met and p.cases_met) filter (where p.day_index = horizon_days) as meets_at_horizon,
           min(p.on_date) filter (where p.day_index >= 0 and not (p.has_active_b and p.count_met and p.rate_met and p.time_met and p.cases_met)) as first_not_met,
           min(p.on_date) filter (where p.day_index >= 0 and p.has_active_b and p.count_met and p.rate_met and p.time_met and p.cases_met) as first_met,
           jsonb_agg(jsonb_build_array(
             p.has_active_b, p.review_count, p.rate, p.hours, p.public_cases,
             p.has_active_b, p.count_met, p.rate_met, p.time_met, p.cases_met) order by p.day_index)
             filter (where p.day_index in (-1, horizon_days)) as ends,
           min(p.on_date) filter (where p.day_index >= 0 and p.has_active_b <> p.b_now) as b_on,
           min(p.on_date) filter (where p.day_index >= 0 and p.count_met <> p.count_now) as count_on,
           min(p.on_date) filter (where p.day_index >= 0 and p.rate_met <> p.rate_now) as rate_on,
           min(p.on_date) filter (where p.day_index >= 0 and p.time_met <> p.time_now) as time_on,
           min(p.on_date) filter (where p.day_index >= 0 and p.cases_met <> p.cases_now) as cases_on,
           max(15 - p.review_count) filter (where p.day_index >= 0 and not p.count_met) as count_short,
           max(greatest(ceil((85 * p.reviews_90d - 100 * p.answered_90d) / 15.0), 1)) filter (where p.day_index >= 0 and not p.rate_met) as rate_short,
           max(floor((p.seconds_90d - 48 * 3600.0 * p.answered_90d) / (24 * 3600.0)) + 1) filter (where p.day_index >= 0 and not p.time_met) as time_short,
           case when with_days then jsonb_build_object(
             'has_active_b', jsonb_agg(jsonb_build_object('date', p.on_date, 'value', p.has_active_b, 'met', p.has_active_b) order by p.day_index) filter (where p.day_index >= 0),
             'review_count', jsonb_agg(jsonb_build_object('date', p.on_date, 'value', p.review_count, 'met', p.count_met) order by p.day_index) filter (where p.day_index >= 0),
             'response_rate', jsonb_agg(jsonb_build_object('date', p.on_date, 'value', p.rate, 'met', p.rate_met) order by p.day_index) filter (where p.day_index >= 0),
             'avg_response_hours', jsonb_agg(jsonb_build_object('date', p.on_date, 'value', p.hours, 'met', p.time_met) order by p.day_index) filter (where p.day_index >= 0),
             'public_cases', jsonb_agg(jsonb_build_object('date', p.on_date, 'value', p.public_cases, 'met', p.cases_met) order by p.day_index) filter (where p.day_index >= 0),
             'overall', jsonb_agg(jsonb_build_object('date', p.on_date, 'meets_criteria', p.has_active_b and p.count_met and p.rate_met and p.time_met and p.cases_met) order by p.day_index) filter (where p.day_index >= 0)
           ) end as days
    from point p
    group by p.organization_id
  )
  select o.organization_id, o.time_zone, o.today, o.meets_now, o.meets_at_horizon,
         case when o.meets_now then o.first_not_met end,
         case when not o.meets_now then o.first_met end,
         k.criteria, k.failing, o.days -> 'overall'
  from org o
  cross join lateral (
    -- ends: [now, horizon], each [5 values, 5 verdicts] in the order below.
    select jsonb_object_agg(c.criterion,
             jsonb_build_object('value_now', o.ends -> 0 -> c.i, 'met_now', c.met_now,
                                'value_at_horizon', o.ends -> 1 -> c.i, 'met_at_horizon', o.ends -> 1 -> (c.i + 5),
                                'needed', c.needed, 'changes_on', c.changes_on, 'keep', c.keep)
             || case when c.i = 0 then jsonb_build_object('valid_until', o.b_valid_until) else '{}' end
             || case when with_days then jsonb_build_object('days', o.days -> c.criterion) else '{}' end) as criteria,
           coalesce(jsonb_agg(jsonb_build_object('criterion', c.criterion, 'fails_on', c.fails_on, 'value_now', o.ends -> 0 -> c.i,
                                                 'met_now', c.met_now, 'needed', c.needed, 'keep', c.keep)
                              order by c.fails_on, c.i) filter (where c.fails_on is not null), '[]') as failing
    from (
      select k.*, (o.ends -> 0 -> (k.i + 5))::boolean as met_now,
             case when not (o.ends -> 0 -> (k.i + 5))::boolean then o.today else k.changes_on end as fails_on,
             case when (o.ends -> 0 -> (k.i + 5))::boolean and k.changes_on is not null then case k.criterion
               when 'has_active_b' then format('renew level B before %s', (o.b_valid_until at time zone o.time_zone)::date)
               when 'review_count' then format('%s more published review%s before %s', o.count_short, case when o.count_short = 1 then '' else 's' end, k.changes_on)
               when 'response_rate' then format('%s more review%s answered within 48 h before %s', o.rate_short, case when o.rate_short = 1 then '' else 's' end, k.changes_on)
               when 'avg_response_hours' then format('%s more review%s answered within 24 h before %s', o.time_short, case when o.time_short = 1 then '' else 's' end, k.changes_on)
             end end as keep
      from (values
        (0, 'has_active_b', to_jsonb(true), o.b_on),
        (1, 'review_count', to_jsonb(15), o.count_on),
        (2, 'response_rate', to_jsonb(85.0), o.rate_on),
        (3, 'avg_response_hours', to_jsonb(48.0), o.time_on),
        (4, 'public_cases', to_jsonb(1), o.cases_on)
      ) as k(i, criterion, needed, changes_on)
    ) c
  ) k;
end;
$$;

-- One organization's projection, as the API shows it (private.level_c_projection_for with every day).
-- plpgsql, so its plan is cached per session (a SQL function is planned on every call), and the
-- generic plan of the projection's query is used for one organization: planning it anew for each
-- call (a custom plan) costs more than running it. Many organizations at once keep custom plans.
-- For one organization the planner expects a handful of leaving reviews and sorts them to group
-- them by day; there can be thousands (4,000 a window for 100,000 reviews), which hashing groups
-- in a third of the time.
create or replace function private.level_c_projection(org uuid, horizon_days integer, as_of timestamptz default now(), with_days boolean default true)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_sort = off
as $$
begin
  return (
    select jsonb_build_object(
      'organization_id', p.organization_id,
      'as_of', as_of,
      'time_zone', p.time_zone,
      'today', p.today,
      'horizon_days', horizon_days,
      'horizon_date', p.today + horizon_days,
      'meets_criteria_now', p.meets_now,
      'meets_criteria_at_horizon', p.meets_at_horizon,
      'first_failing_on', p.first_failing_on,
      'first_meeting_on', p.first_meeting_on,
      'criteria', p.criteria,
      'failing', p.failing
    ) || case when with_days then jsonb_build_object('days', p.days) else '{}' end
    from private.level_c_projection_for(array[org], horizon_days, as_of, with_days) p
  );
end;
$$;

create or replace function public.project_level_c(p_organization_id uuid, p_horizon_days integer default 30)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_horizon(p_horizon_days);
  perform private.require_member_view(p_organization_id);
  return private.level_c_projection(p_organization_id, p_horizon_days);
end;
$$;
comment on function public.project_level_c(uuid, integer) is
  'Level C criteria over the next p_horizon_days (1-90) days, assuming nothing new happens: per criterion the value now and at the end of each local date, when it stops (or starts) being met and what would keep it. Members and platform admins.';

-- The admin list of C holders at risk. Evaluating every C holder takes about a second and a half
-- with 10,000 of them (private.level_c_projection_for, mostly reading each one's rollup), too long
-- for a page, so the list keeps what it computed, per horizon, for at most 5 minutes (as_of says
-- when it was computed), and any change to a level row drops it at once (a C granted or revoked, a
-- B renewed or ended), so an admin's own change shows on the next call; reviews and case studies
-- count again at the next computation.
create table private.level_c_at_risk_snapshots (
  within_days integer primary key,
  as_of timestamptz not null,
  total integer not null
);
create table private.level_c_at_risk_items (
  within_days integer not null references private.level_c_at_risk_snapshots (within_days) on delete cascade,
  position integer not null,
  organization_id uuid not null,
  item jsonb not null,
  primary key (within_days, position)
);
alter table private.level_c_at_risk_snapshots enable row level security;
alter table private.level_c_at_risk_items enable row level security;
revoke all on private.level_c_at_risk_snapshots, private.level_c_at_risk_items from anon, authenticated, service_role;

create or replace function private.forget_level_c_at_risk()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from private.level_c_at_risk_snapshots;
  return null;
end;
$$;

create or replace trigger organization_status_levels_forget_at_risk
  after insert or update or delete on public.organization_status_levels
  for each statement execute function private.forget_level_c_at_risk();

-- Organizations holding C that do not meet the criteria now or will stop meeting them within the
-- horizon: failing now first, then by the date they stop; platform admins and the system. Volatile:
-- it may store a fresh snapshot (PostgREST calls it with POST).
create or replace function public.list_level_c_at_risk(p_within_days integer default 30, p_limit integer default 50, p_offset integer default 0)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  snapshot private.level_c_at_risk_snapshots;
begin
  perform private.require_horizon(p_within_days);
  perform private.require_page(p_limit, p_offset);
  if not (private.is_platform_admin() or private.is_system()) then
    perform private.fail(403, 'not_allowed', 'only platform admins can see which level C holders are at risk');
  end if;

  select * into snapshot from private.level_c_at_risk_snapshots
  where within_days = p_within_days and as_of > now() - interval '5 minutes';
  if not found then
    -- One caller computes; the others wait for it and read what it stored.
    perform pg_advisory_xact_lock(hashtext('private.level_c_at_risk'), p_within_days);
    select * into snapshot from private.level_c_at_risk_snapshots
    where within_days = p_within_days and as_of > now() - interval '5 minutes';
    if not found then
      delete from private.level_c_at_risk_snapshots where within_days = p_within_days;
      insert into private.level_c_at_risk_snapshots (within_days, as_of, total) values (p_within_days, now(), 0)
      returning * into snapshot;
      insert into private.level_c_at_risk_items (within_days, position, organization_id, item)
      select p_within_days,
             row_number() over (order by p.meets_now, p.first_failing_on, o.name, p.organization_id),
             p.organization_id,
             jsonb_build_object(
               'organization', jsonb_build_object('id', o.id, 'name', o.name, 'time_zone', p.time_zone),
               'level_c_granted_at', l.granted_at,
               'today', p.today,
               'meets_criteria_now', p.meets_now,
               'first_failing_on', p.first_failing_on,
               'meets_criteria_at_horizon', p.meets_at_horizon,
               'failing', p.failing)
      from private.level_c_projection_for(
        array(select c.organization_id from public.organization_status_levels c where c.level = 'C' and c.is_active), p_within_days, snapshot.as_of
      ) p
      join public.organization_status_levels l on l.organization_id = p.organization_id and l.level = 'C' and l.is_active
      join public.organizations o on o.id = p.organization_id
      where not p.meets_now or p.first_failing_on is not null;
      update private.level_c_at_risk_snapshots set total = (select count(*) from private.level_c_at_risk_items where within_days = p_within_days)
      where within_days = p_within_days
      returning * into snapshot;
    end if;
  end if;

  return jsonb_build_object(
    'total', snapshot.total,
    'within_days', p_within_days,
    'as_of', snapshot.as_of,
    'limit', p_limit,
    'offset', p_offset,
    'items', coalesce((
      select jsonb_agg(i.item order by i.position)
      from private.level_c_at_risk_items i
      where i.within_days = p_within_days and i.position > p_offset and i.position <= p_offset + p_limit
    ), '[]')
  );
end;
$$;
comment on function public.list_level_c_at_risk(integer, integer, integer) is
  'Organizations holding level C that do not meet its criteria now or will not within p_within_days (1-90) days, most urgent first, with the failing criteria and dates, as of at most 5 minutes ago (as_of). Platform admins and the system.';

revoke all on function public.project_level_c(uuid, integer), public.list_level_c_at_risk(integer, integer, integer) from public, anon;
grant execute on function public.project_level_c(uuid, integer), public.list_level_c_at_risk(integer, integer, integer) to authenticated, service_role;

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
