-- The status-level operations, as SQL functions exposed through PostgREST RPC. Each one checks
-- who calls it (auth.uid() / the role claim, never an argument), runs as security definer with an
-- empty search_path where it must bypass RLS, writes its history row in the same transaction, and
-- raises stable errors: SQLSTATE PTxxx (PostgREST answers HTTP xxx) with the message
-- "<code>: <what happened and what to do>".


create or replace function private.fail(http_status integer, code text, message text, hint text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if hint is null then
    raise exception using errcode = 'PT' || http_status::text, message = code || ': ' || message;
  end if;
  raise exception using errcode = 'PT' || http_status::text, message = code || ': ' || message, hint = hint;
end;
$$;

-- A write the Worker has given up on must not start: the Worker sends, with every call, the
-- last moment a statement may start and still end (commit or be cancelled by the API roles'
-- statement timeout) before the Worker's own time limit. A call that waited longer than that for
-- a PostgREST connection is refused here, before it changes anything, so a client that got 503
-- from the Worker never sees the write commit later. Callers that do not send the header (direct
-- PostgREST clients) are not affected.
create or replace function private.refuse_expired_request()
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  not_after text := nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-status-levels-not-after';
begin
  if not_after ~ '^\d{12,14}$' and clock_timestamp() > to_timestamp(not_after::bigint / 1000.0) then
    perform private.fail(503, 'request_expired',
      'the request waited too long for the database and was not carried out; nothing was changed, try again');
  end if;
end;
$$;

-- The system: the service role (the daily job, subscription events) or a direct database
-- session of the platform's own backend (no JWT claims, a superuser login). Never an API user.
create or replace function private.is_system()
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce(auth.role(), '') = 'service_role'
      or (coalesce(auth.role(), '') = '' and session_user in ('postgres', 'supabase_admin'))
$$;

-- Who to record in history: the signed-in user, or null for the system.
create or replace function private.actor()
returns uuid
language sql
stable
set search_path = ''
as $$
  select case when private.is_system() then null else auth.uid() end
$$;

-- The organization, if the caller may know it exists: members, platform admins, the system, or
-- anyone when it is public. Otherwise 404, the same answer as for an id that does not exist.
create or replace function private.require_organization(org uuid)
returns public.organizations
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  o public.organizations;
begin
  select * into o from public.organizations where id = org;
  if not found or not (o.is_public or private.is_org_member(org) or private.is_platform_admin() or private.is_system()) then
    perform private.fail(404, 'organization_not_found', format('no organization %s is visible to you', org));
  end if;
  return o;
end;
$$;

-- Members-only views (progress, history, requests): 404 when invisible, 403 when merely public.
create or replace function private.require_member_view(org uuid)
returns public.organizations
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  o public.organizations := private.require_organization(org);
begin
  if not (private.is_org_member(org) or private.is_platform_admin() or private.is_system()) then
    perform private.fail(403, 'not_allowed', 'only members of the organization and platform admins can see this');
  end if;
  return o;
end;
$$;

-- Grant, renew, revoke and change validity: platform admins; level A also the system.
create or replace function private.require_level_admin(level text)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if private.is_platform_admin() or (level = 'A' and private.is_system()) then
    return;
  end if;
  if level = 'A' then
    perform private.fail(403, 'not_allowed', 'only platform admins or the subscription system can change level A');
  end if;
  perform private.fail(403, 'not_allowed', 'only platform admins can grant, renew, revoke or change level B and C');
end;
$$;

create or replace function private.require_level(level text, allowed text[] default array['A', 'B', 'C'])
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if level is null or not (level = any (allowed)) then
    perform private.fail(400, 'invalid_level', format('level must be one of %s, got %s', array_to_string(allowed, ', '), coalesce(level, 'nothing')));
  end if;
end;
$$;

-- Serializes every level change of one organization (grant vs grant, grant C vs revoke B, ...).
-- FOR NO KEY UPDATE does not block inserts that merely reference the organization.
create or replace function private.lock_organization(org uuid)
returns public.organizations
language plpgsql
security definer
set search_path = ''
as $$
declare
  o public.organizations;
begin
  select * into o from public.organizations where id = org for no key update;
  if not found then
    perform private.fail(404, 'organization_not_found', format('no organization %s', org));
  end if;
  return o;
end;
$$;

create or replace function private.level_json(l public.organization_status_levels, full_view boolean)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select case when full_view then jsonb_build_object(
    'id', l.id,
    'level', l.level,
    'is_active', l.is_active and (l.valid_until is null or l.valid_until > now()),
    'valid_from', l.valid_from,
    'valid_until', l.valid_until,
    'granted_at', l.granted_at,
    'granted_by', l.granted_by,
    'subscription_id', l.subscription_id,
    'notes', l.notes,
    'last_verified_at', l.last_verified_at,
    'ended_at', l.ended_at,
    'end_reason', l.end_reason,
    'revoke_reason', l.revoke_reason
  ) else jsonb_build_object(
    'level', l.level,
    'valid_from', l.valid_from,
    'valid_until', l.valid_until
  ) end
$$;

-- A lapsed A row that was living on a grace period ends as grace_ended; anything else as expired.
-- Read from the row itself (set together with its valid_until), not from the subscription's state
-- at the moment the row happens to be ended: the job's steps, the inline lapse of a writer and a
-- late event then all record the same reason, whatever the order they run in.
create or replace function private.lapse_reason(l public.organization_status_levels)
returns text
language sql
immutable
set search_path = ''
as $$
  select case when l.level = 'A' and l.in_grace then 'grace_ended' else 'expired' end
$$;

-- One organization's rows whose validity ended but whose flag is still set: flipped, with an
-- `expired` (or `grace_ended`) history row. Called by every writer under the organization lock
-- before it looks at what is active. It waits for a row the daily job is ending at the same moment
-- (no skip locked): re-checked after that commit, the row is no longer active and is left alone.
create or replace function private.expire_lapsed_levels(org uuid, as_of timestamptz default now())
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  n integer;
begin
  with lapsed as (
    select l.id, private.lapse_reason(l) as reason from public.organization_status_levels l
    where l.organization_id = org and l.is_active and l.valid_until <= as_of
    for update of l
  ), ended as (
    update public.organization_status_levels l
    set is_active = false, ended_at = l.valid_until, end_reason = lapsed.reason, updated_at = now()
    from lapsed where l.id = lapsed.id
    returning l.id, l.organization_id, l.level, l.valid_until, lapsed.reason
  )
  insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, old_valid_until)
  select organization_id, id, level, reason, null,
         case reason when 'grace_ended' then 'the grace period ended without payment' else 'the validity period ended' end,
         valid_until
  from ended;
  get diagnostics n = row_count;
  return n;
end;
$$;

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

create or replace function private.grant_level(
  org uuid,
  p_level text,
  p_valid_until timestamptz,
  p_subscription_id uuid,
  p_notes text,
  p_actor uuid,
  p_request_id uuid default null
)
returns public.organization_status_levels
language plpgsql
security definer
set search_path = ''
as $$
declare
  existing public.organization_status_levels;
  sub public.subscriptions;
  criteria jsonb;
  until_ts timestamptz;
  in_grace boolean := false;
  granted public.organization_status_levels;
begin
  perform private.require_level(p_level);
  if char_length(p_notes) > 2000 then
    perform private.fail(400, 'notes_too_long', 'notes are limited to 2000 characters');
  end if;
  perform private.lock_organization(org);
  perform private.expire_lapsed_levels(org);

  select * into existing from public.organization_status_levels
  where organization_id = org and level = p_level and is_active and (valid_until is null or valid_until > now());
  if found then
    perform private.fail(409, 'level_already_active',
      format('level %s is already active for this organization%s', p_level,
        case when existing.valid_until is not null then format(' until %s', existing.valid_until) else '' end),
      case p_level when 'B' then 'Renew it instead (re-verification), or revoke it first.'
                   else 'Revoke it first if it must be granted again.' end);
  end if;

  if p_level = 'A' then
    if p_subscription_id is null then
      perform private.fail(422, 'subscription_required', 'level A comes with a subscription: give subscription_id');
    end if;
    select * into sub from public.subscriptions where id = p_subscription_id;
    if not found then
      perform private.fail(404, 'subscription_not_found', format('no subscription %s', p_subscription_id));
    end if;
    if sub.organization_id <> org then
      perform private.fail(422, 'subscription_mismatch', 'the subscription belongs to another organization');
    end if;
    until_ts := coalesce(p_valid_until, greatest(sub.current_period_end, sub.grace_until));
    in_grace := p_valid_until is null and sub.status <> 'active' and sub.grace_until is not null;
    if until_ts is null then
      perform private.fail(422, 'valid_until_required', 'the subscription has no current period end: give valid_until');
    end if;
  elsif p_level = 'B' then
    if p_subscription_id is not null then
      perform private.fail(400, 'subscription_not_applicable', 'only level A is tied to a subscription');
    end if;
    until_ts := coalesce(p_valid_until, now() + interval '18 months');
  else
    if p_valid_until is not null then
      perform private.fail(422, 'level_c_is_permanent', 'level C has no end date; leave valid_until out');
    end if;
    if p_subscription_id is not null then
      perform private.fail(400, 'subscription_not_applicable', 'only level A is tied to a subscription');
    end if;
    criteria := private.level_c_criteria(org);
    if not (criteria #>> '{criteria,has_active_b}')::boolean then
      perform private.fail(422, 'level_c_requires_b', 'level C needs an active level B at the moment it is granted');
    end if;
    if not (criteria ->> 'meets_criteria')::boolean then
      perform private.fail(422, 'level_c_criteria_not_met',
        'the organization does not meet the level C criteria: ' || (select string_agg(m, '; ') from jsonb_array_elements_text(criteria -> 'missing') m));
    end if;
  end if;

  if until_ts is not null and until_ts <= now() then
    perform private.fail(422, 'valid_until_in_past', format('valid_until must be in the future, got %s', until_ts));
  end if;

  insert into public.organization_status_levels (organization_id, level, valid_until, granted_by, subscription_id, notes, last_verified_at, in_grace)
  values (org, p_level, until_ts, p_actor, p_subscription_id, p_notes, case when p_level in ('B', 'C') then now() end, in_grace)
  returning * into granted;

  insert into public.status_level_history (organization_id, status_level_id, upgrade_request_id, level, action, actor_id, notes, new_valid_until, subscription_id)
  values (org, granted.id, p_request_id, p_level, 'granted', p_actor, p_notes, until_ts, p_subscription_id);
  return granted;
end;
$$;

create or replace function private.revoke_level(
  org uuid,
  p_level text,
  p_reason text,
  p_actor uuid,
  p_end_reason text default 'revoked',
  p_subscription_event_id text default null,
  p_subscription_id uuid default null
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  ended public.organization_status_levels;
begin
  perform private.require_level(p_level);
  perform private.lock_organization(org);
  perform private.expire_lapsed_levels(org);
  update public.organization_status_levels
  set is_active = false,
      ended_at = now(),
      end_reason = p_end_reason,
      revoked_by = case when p_end_reason = 'revoked' then p_actor end,
      revoked_at = case when p_end_reason = 'revoked' then now() end,
      revoke_reason = p_reason,
      updated_at = now()
  where organization_id = org and level = p_level and is_active
  returning * into ended;
  if not found then
    return false;
  end if;
  insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, old_valid_until,
                                           subscription_event_id, subscription_id)
  values (org, ended.id, p_level, case when p_end_reason = 'grace_ended' then 'grace_ended' else 'revoked' end,
          p_actor, p_reason, ended.valid_until, p_subscription_event_id, coalesce(p_subscription_id, ended.subscription_id));
  return true;
end;
$$;

create or replace function private.renew_level_b(org uuid, p_notes text, p_actor uuid, p_request_id uuid default null)
returns public.organization_status_levels
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_b public.organization_status_levels;
  renewed public.organization_status_levels;
begin
  if char_length(p_notes) > 2000 then
    perform private.fail(400, 'notes_too_long', 'notes are limited to 2000 characters');
  end if;
  perform private.lock_organization(org);
  perform private.expire_lapsed_levels(org);
  select * into current_b from public.organization_status_levels
  where organization_id = org and level = 'B' and is_active and valid_until > now();
  if not found then
    perform private.fail(404, 'level_not_active', 'there is no active level B to renew; grant it instead');
  end if;
  update public.organization_status_levels
  set valid_until = now() + interval '18 months', last_verified_at = now(),
      notes = coalesce(p_notes, notes), updated_at = now()
  where id = current_b.id and is_active
  returning * into renewed;
  if not found then
    perform private.fail(404, 'level_not_active', 'there is no active level B to renew; grant it instead');
  end if;
  insert into public.status_level_history (organization_id, status_level_id, upgrade_request_id, level, action, actor_id, notes, old_valid_until, new_valid_until)
  values (org, renewed.id, p_request_id, 'B', 'renewed', p_actor, p_notes, current_b.valid_until, renewed.valid_until);
  return renewed;
end;
$$;

-- Public API -------------------------------------------------------------------------------

create or replace function public.get_current_status_level(p_organization_id uuid)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_organization(p_organization_id);
  return coalesce((
    select level from public.organization_status_levels
    where organization_id = p_organization_id and is_active and (valid_until is null or valid_until > now())
    order by level desc
    limit 1
  ), '0');
end;
$$;
comment on function public.get_current_status_level(uuid) is 'The highest active level (C > B > A), or 0. Public for public organizations.';

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

-- The whole status view in one round trip. Members and platform admins get the full view; anyone
-- else the public projection of a public organization (current level, active levels).
create or replace function public.get_organization_status(p_organization_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  viewer_role text;
  platform_admin boolean;
  full_view boolean;
  levels jsonb;
  level_c jsonb;
begin
  perform private.require_organization(p_organization_id);
  viewer_role := private.org_role(p_organization_id);
  platform_admin := private.is_platform_admin();
  full_view := viewer_role is not null or platform_admin or private.is_system();

  if full_view then
    level_c := private.level_c_criteria(p_organization_id);
  end if;

  select jsonb_agg(private.level_json(l, full_view) order by l.level desc) into levels
  from public.organization_status_levels l
  where l.organization_id = p_organization_id and l.is_active and (l.valid_until is null or l.valid_until > now());

  return jsonb_build_object(
    'organization_id', p_organization_id,
    'current_level', coalesce(levels -> 0 ->> 'level', '0'),
    'active_levels', coalesce(levels, '[]'::jsonb),
    'level_c_progress', level_c -> 'criteria',
    'level_c_checklist', case when full_view then level_c - 'criteria' end,
    'pending_upgrade_request', case when full_view then (
      select jsonb_build_object('id', r.id, 'target_level', r.target_level, 'created_at', r.created_at, 'requested_by', r.requested_by)
      from public.upgrade_requests r
      where r.organization_id = p_organization_id and r.status = 'pending'
    ) end,
    'can_manage', coalesce(viewer_role in ('owner', 'admin'), false) or platform_admin,
    'visibility', case when full_view then 'full' else 'public' end,
    'viewer', jsonb_build_object('role', viewer_role, 'platform_admin', platform_admin),
    'evaluated_at', now()
  );
end;
$$;
comment on function public.get_organization_status(uuid) is 'Current level, active levels, level C progress and the caller''s rights, in one call.';

create or replace function public.grant_status_level(
  p_organization_id uuid,
  p_level text,
  p_valid_until timestamptz default null,
  p_subscription_id uuid default null,
  p_notes text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.refuse_expired_request();
  perform private.require_level(p_level);
  perform private.require_level_admin(p_level);
  return private.level_json(
    private.grant_level(p_organization_id, p_level, p_valid_until, p_subscription_id, p_notes, private.actor()),
    true);
end;
$$;
comment on function public.grant_status_level(uuid, text, timestamptz, uuid, text) is
  'Grants a level. Platform admins (A also the system). 409 when already active; C needs an active B and the criteria.';

create or replace function public.revoke_status_level(p_organization_id uuid, p_level text, p_reason text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.refuse_expired_request();
  perform private.require_level(p_level);
  perform private.require_level_admin(p_level);
  if p_reason is null or p_reason !~ '\S' then
    perform private.fail(400, 'reason_required', 'say why the level is revoked (reason)');
  end if;
  if char_length(p_reason) > 2000 then
    perform private.fail(400, 'reason_too_long', 'the reason is limited to 2000 characters');
  end if;
  return private.revoke_level(p_organization_id, p_level, p_reason, private.actor());
end;
$$;
comment on function public.revoke_status_level(uuid, text, text) is
  'Revokes the active row of a level; true when one was active. Revoking B leaves C alone.';

create or replace function public.renew_status_level_b(p_organization_id uuid, p_notes text default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.refuse_expired_request();
  perform private.require_level_admin('B');
  return private.level_json(private.renew_level_b(p_organization_id, p_notes, private.actor()), true);
end;
$$;
comment on function public.renew_status_level_b(uuid, text) is 'Re-verification: the active B is valid for 18 months from now.';

create or replace function public.update_status_validity(
  p_organization_id uuid,
  p_level text,
  p_valid_until timestamptz,
  p_reason text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_row public.organization_status_levels;
  updated public.organization_status_levels;
begin
  perform private.refuse_expired_request();
  perform private.require_level(p_level, array['A', 'B', 'C']);
  perform private.require_level_admin(p_level);
  if p_level = 'C' then
    perform private.fail(422, 'level_c_is_permanent', 'level C has no end date to change');
  end if;
  if p_valid_until is null or p_valid_until <= now() then
    perform private.fail(422, 'valid_until_in_past', 'valid_until must be a time in the future');
  end if;
  perform private.lock_organization(p_organization_id);
  perform private.expire_lapsed_levels(p_organization_id);
  select * into current_row from public.organization_status_levels
  where organization_id = p_organization_id and level = p_level and is_active and (valid_until is null or valid_until > now());
  if not found then
    perform private.fail(404, 'level_not_active', format('there is no active level %s to change', p_level));
  end if;
  update public.organization_status_levels
  set valid_until = p_valid_until, in_grace = false, updated_at = now()
  where id = current_row.id and is_active
  returning * into updated;
  if not found then
    perform private.fail(404, 'level_not_active', format('there is no active level %s to change', p_level));
  end if;
  insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, old_valid_until, new_valid_until)
  values (p_organization_id, updated.id, p_level, 'validity_updated', private.actor(), p_reason, current_row.valid_until, p_valid_until);
  return private.level_json(updated, true);
end;
$$;
comment on function public.update_status_validity(uuid, text, timestamptz, text) is 'Moves the end of an active A or B. Platform admins (A also the system).';

create or replace function private.require_page(p_limit integer, p_offset integer, max_limit integer default 200)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_limit is null or p_limit < 1 or p_limit > max_limit then
    perform private.fail(400, 'invalid_limit', format('limit must be between 1 and %s', max_limit));
  end if;
  if p_offset is null or p_offset < 0 or p_offset > 1000000 then
    perform private.fail(400, 'invalid_offset', 'offset must be between 0 and 1000000');
  end if;
end;
$$;

create or replace function public.get_status_level_history(p_organization_id uuid, p_limit integer default 50, p_offset integer default 0)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_page(p_limit, p_offset);
  perform private.require_member_view(p_organization_id);
  return jsonb_build_object(
    'total', (select count(*) from public.status_level_history where organization_id = p_organization_id),
    'limit', p_limit,
    'offset', p_offset,
    'items', coalesce((
      select jsonb_agg(jsonb_build_object(
        'id', h.id, 'level', h.level, 'action', h.action, 'actor_id', h.actor_id, 'reason', h.reason,
        'notes', h.notes, 'old_valid_until', h.old_valid_until, 'new_valid_until', h.new_valid_until,
        'status_level_id', h.status_level_id, 'upgrade_request_id', h.upgrade_request_id,
        'subscription_event_id', h.subscription_event_id, 'subscription_id', h.subscription_id, 'created_at', h.created_at
      ) order by h.created_at desc, h.id desc)
      from (
        select * from public.status_level_history
        where organization_id = p_organization_id
        order by created_at desc, id desc
        limit p_limit offset p_offset
      ) h
    ), '[]'::jsonb)
  );
end;
$$;
comment on function public.get_status_level_history(uuid, integer, integer) is 'The audit trail, newest first, with the total count. Members and platform admins.';

revoke all on function
  public.get_current_status_level(uuid),
  public.check_level_c_criteria(uuid),
  public.get_organization_status(uuid),
  public.grant_status_level(uuid, text, timestamptz, uuid, text),
  public.revoke_status_level(uuid, text, text),
  public.renew_status_level_b(uuid, text),
  public.update_status_validity(uuid, text, timestamptz, text),
  public.get_status_level_history(uuid, integer, integer)
  from public, anon;
grant execute on function
  public.get_current_status_level(uuid),
  public.get_organization_status(uuid)
  to anon;
grant execute on function
  public.get_current_status_level(uuid),
  public.check_level_c_criteria(uuid),
  public.get_organization_status(uuid),
  public.grant_status_level(uuid, text, timestamptz, uuid, text),
  public.revoke_status_level(uuid, text, text),
  public.renew_status_level_b(uuid, text),
  public.update_status_validity(uuid, text, timestamptz, text),
  public.get_status_level_history(uuid, integer, integer)
  to authenticated, service_role;

-- Internal functions stay internal (see private.seal_functions in the platform tables migration).
select private.seal_functions();
