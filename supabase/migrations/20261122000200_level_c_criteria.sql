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

-- Level C criteria. Whole UTC days inside each window come from the daily rollup; the window
-- edges (the partial first day, and today up to as_of) are counted from the reviews themselves,
-- so the windows are exact to the microsecond and the cost does not grow with the review count.
create or replace function private.level_c_criteria(org uuid, as_of timestamptz default now())
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  start12 constant timestamptz := as_of - interval '12 months';
  start90 constant timestamptz := as_of - interval '90 days';
  today constant date := (as_of at time zone 'UTC')::date;
  day12 constant date := (start12 at time zone 'UTC')::date;
  day90 constant date := (start90 at time zone 'UTC')::date;
  reviews_12m bigint;
  reviews_90d bigint;
  answered_90d bigint;
  seconds_90d double precision;
  e record;
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
  select coalesce(sum(published_count), 0),
         coalesce(sum(published_count) filter (where day > day90), 0),
         coalesce(sum(answered_count) filter (where day > day90), 0),
         coalesce(sum(response_seconds) filter (where day > day90), 0)
    into reviews_12m, reviews_90d, answered_90d, seconds_90d
  from private.review_daily_stats
  where organization_id = org and day > day12 and day < today;

  select
    count(*) filter (where part <> 'edge90') as n12,
    count(*) filter (where part <> 'edge12') as n90,
    count(responded_at) filter (where part <> 'edge12') as a90,
    coalesce(sum(extract(epoch from responded_at - published_at)) filter (where part <> 'edge12'), 0) as s90
    into e
  from (
    select 'edge12' as part, published_at, responded_at from public.reviews
    where organization_id = org and status = 'published'
      and published_at >= start12 and published_at < (day12 + 1)::timestamp at time zone 'UTC'
    union all
    select 'edge90', published_at, responded_at from public.reviews
    where organization_id = org and status = 'published'
      and published_at >= start90 and published_at < (day90 + 1)::timestamp at time zone 'UTC'
    union all
    select 'today', published_at, responded_at from public.reviews
    where organization_id = org and status = 'published'
      and published_at >= today::timestamp at time zone 'UTC' and published_at <= as_of
  ) edges;

  reviews_12m := reviews_12m + e.n12;
  reviews_90d := reviews_90d + e.n90;
  answered_90d := answered_90d + e.a90;
  seconds_90d := seconds_90d + e.s90;

  select exists (
    select 1 from public.organization_status_levels
    where organization_id = org and level = 'B' and is_active and valid_until > as_of
  ) into has_b;
  select count(*) into case_studies from public.case_studies where organization_id = org and is_published;

  -- Shown truncated to one decimal, so a value shown as 85.0 % or 48.0 h is never a miss or a hit
  -- by rounding; met/not met compares the exact figures.
  rate := case when reviews_90d > 0 then trunc(answered_90d * 100.0 / reviews_90d, 1) end;
  avg_hours := case when answered_90d > 0 then trunc((seconds_90d / answered_90d / 3600)::numeric, 1) end;
  need_answers := greatest(ceil(reviews_90d * 0.85) - answered_90d, 0);

  c_b := jsonb_build_object('value', has_b, 'needed', true, 'comparison', 'equals', 'window', 'now', 'met', has_b,
    'missing', case when not has_b then 'an active level B: level C builds on a verified B' end);
  c_reviews := jsonb_build_object('value', reviews_12m, 'needed', 15, 'comparison', 'at_least', 'window', '12 months',
    'met', reviews_12m >= 15,
    'missing', case when reviews_12m < 15 then
      format('%s more published review%s in the last 12 months', 15 - reviews_12m, case when 15 - reviews_12m = 1 then '' else 's' end) end);
  c_rate := jsonb_build_object('value', rate, 'needed', 85.0, 'unit', 'percent', 'comparison', 'at_least', 'window', '90 days',
    'met', reviews_90d > 0 and answered_90d * 100 >= 85 * reviews_90d,
    'missing', case
      when reviews_90d = 0 then 'no reviews in the last 90 days, so no response rate yet'
      when answered_90d * 100 < 85 * reviews_90d then
        format('answer %s more of the last 90 days'' reviews to reach 85 %%', need_answers) end);
  c_time := jsonb_build_object('value', avg_hours, 'needed', 48.0, 'unit', 'hours', 'comparison', 'below', 'window', '90 days',
    'met', answered_90d > 0 and seconds_90d < 48 * 3600.0 * answered_90d,
    'missing', case
      when reviews_90d = 0 then 'no reviews in the last 90 days, so no response time yet'
      when answered_90d = 0 then 'no answered reviews in the last 90 days, so no response time yet'
      when seconds_90d >= 48 * 3600.0 * answered_90d then
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

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
