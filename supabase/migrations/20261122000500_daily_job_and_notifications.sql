-- The daily job's steps as set-based SQL: one statement per batch, no per-row round trips from the
-- Worker. Every step is batched (p_batch rows per call) and resumable: a run cut off half way leaves
-- consistent rows behind and the next call picks up the rest. All of them are service-role only and
-- take an "as of" time (backfills, tests) and an optional list of organizations (targeted re-runs).
-- Levels lapse here too: the inline lapse every writer runs and the job's steps end rows the
-- same way (private.end_lapsed_rows), so a level is announced once, whoever ends it.

-- Expiry notices: exactly one per (level row, validity end, threshold). The validity end is part
-- of the key so a renewed level gets its notices again for its new end date.
-- No foreign keys, on purpose: only the daily job writes here, set-based, from level rows it has
-- just read, and the per-row checks of two foreign keys were more than half the cost of the
-- notice step (100,000 notices: 258 ms of 473 ms per batch of 5,000). The cascade they gave is a
-- statement trigger on organization_status_levels instead (below).
-- Its natural key is its primary key (no surrogate id): one index less to maintain per notice.
create table public.expiry_notices (
  status_level_id uuid not null,
  organization_id uuid not null,
  level text not null check (level in ('A', 'B', 'C')),
  valid_until timestamptz not null,
  threshold_days integer not null check (threshold_days in (60, 30, 7, 1)),
  state text not null check (state in ('sent', 'skipped')),
  created_at timestamptz not null default now(),
  primary key (status_level_id, valid_until, threshold_days)
);
create index expiry_notices_org on public.expiry_notices (organization_id, created_at desc);

-- In-app notifications for the organization's owners and admins.
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  kind text not null check (kind in ('expiry_notice', 'level_expired', 'grace_ended', 'level_granted', 'level_revoked',
                                     'level_c_at_risk', 'level_c_eligible')),
  title text not null,
  body text not null,
  data jsonb not null default '{}'::jsonb,
  dedupe_key text not null,
  created_at timestamptz not null default now(),
  read_at timestamptz,
  unique (user_id, dedupe_key)
);
create index notifications_user on public.notifications (user_id, created_at desc);

-- E-mail outbox: rendered messages waiting for, or done with, delivery.
create table public.email_outbox (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  recipient text not null,
  kind text not null,
  subject text not null,
  body_text text not null,
  dedupe_key text not null unique,
  state text not null default 'pending' check (state in ('pending', 'sent', 'failed', 'dead')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  provider_message_id text,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sent_rows_have_time check ((state = 'sent') = (sent_at is not null))
);
create index email_outbox_due on public.email_outbox (next_attempt_at) where state in ('pending', 'failed');
create index email_outbox_dead on public.email_outbox (updated_at desc) where state = 'dead';

-- Work waiting to be turned into in-app notifications and e-mails (step 5).
-- Like expiry_notices, without foreign keys (written only by the job's set-based statements);
-- rows of a deleted level go with it through the trigger below.
create table public.notification_queue (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  kind text not null check (kind in ('expiry_notice', 'level_expired', 'grace_ended', 'level_c_at_risk', 'level_c_eligible')),
  -- The level row the notice is about: for level C's notices the C row (at risk) or the B row it
  -- builds on (eligible), so the notice goes with its level like the others.
  status_level_id uuid not null,
  level text not null check (level in ('A', 'B', 'C')),
  valid_until timestamptz,
  threshold_days integer,
  -- Level C's notices: what the projection said when the episode began (dates, failing criteria),
  -- so the text says what was true then, whenever it is delivered.
  details jsonb,
  created_at timestamptz not null default now(),
  processed_at timestamptz
);
create index notification_queue_pending on public.notification_queue (id) where processed_at is null;
alter table public.notification_queue enable row level security;
revoke all on public.notification_queue from anon, authenticated, service_role;
grant all on public.notification_queue to service_role;

-- The cascade the job's bookkeeping tables do not get from foreign keys: when level rows go (an
-- organization deleted cascades to its level rows, and so fires this), their notices and queued
-- work go too, in the same statement. Set-based, through the deleted rows' transition table.

alter table public.expiry_notices enable row level security;
alter table public.notifications enable row level security;
alter table public.email_outbox enable row level security;
create policy expiry_notices_read on public.expiry_notices for select to authenticated
  using (private.can_manage_org(organization_id) or (select private.is_platform_admin()));
create policy notifications_read_own on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy email_outbox_read on public.email_outbox for select to authenticated
  using ((select private.is_platform_admin()));
revoke all on public.expiry_notices, public.notifications, public.email_outbox from anon, authenticated, service_role;
grant select on public.expiry_notices, public.notifications, public.email_outbox to authenticated;
grant all on public.expiry_notices, public.notifications, public.email_outbox to service_role;

-- The cascade the job's bookkeeping tables do not get from foreign keys: when level rows go (an
-- organization deleted cascades to its level rows, and so fires this), their notices and queued
-- work go too, in the same statement. Set-based, through the deleted rows' transition table.
create or replace function private.forget_deleted_levels()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from public.expiry_notices n using gone g where n.status_level_id = g.id;
  delete from public.notification_queue q using gone g where q.status_level_id = g.id;
  return null;
end;
$$;

create trigger forget_deleted_levels
  after delete on public.organization_status_levels
  referencing old table as gone
  for each statement execute function private.forget_deleted_levels();

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

-- Ends lapsed level rows the caller has locked: the flag goes off at valid_until, the system
-- writes the history row (`expired`, or `grace_ended` for an A whose grace ran out) and the
-- owners' notification is queued, in one statement. The one place rows lapse, for the inline lapse
-- and the job's steps alike, so a level that lapses between two runs of the job is still
-- announced once, whoever ends it.
create or replace function private.end_lapsed_rows(ids uuid[])
returns table (ended_id uuid, ended_organization_id uuid)
language sql
security definer
set search_path = ''
as $$
  with ended as (
    update public.organization_status_levels l
    set is_active = false, ended_at = l.valid_until, end_reason = private.lapse_reason(l), updated_at = now()
    where l.id = any (ids) and l.is_active
    returning l.id, l.organization_id, l.level, l.valid_until, l.end_reason as reason, l.subscription_id
  ), history as (
    insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, old_valid_until, subscription_id)
    select organization_id, id, level, reason, null,
           case reason when 'grace_ended' then 'the grace period ended without payment' else 'the validity period ended' end,
           valid_until, subscription_id
    from ended
  ), queued as (
    insert into public.notification_queue (organization_id, kind, status_level_id, level, valid_until)
    select organization_id, case reason when 'grace_ended' then 'grace_ended' else 'level_expired' end, id, level, valid_until
    from ended
  )
  select id, organization_id from ended
$$;

-- The inline lapse (run by every level change of one organization, under its lock, before it
-- looks at the current levels), redefined on top of end_lapsed_rows now that the queue exists.
create or replace function private.expire_lapsed_levels(org uuid, as_of timestamptz default now())
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  ids uuid[];
begin
  select array_agg(s.id) into ids from (
    select l.id from public.organization_status_levels l
    where l.organization_id = org and l.is_active and l.valid_until <= as_of
    for update of l
  ) s;
  if ids is null then
    return 0;
  end if;
  return (select count(*) from private.end_lapsed_rows(ids));
end;
$$;

-- Steps 1 and 2: lapsed rows end (expired, or grace_ended for A after a failed payment), a batch
-- at a time; rows another transaction holds are left to the next batch or run.
create or replace function private.job_end_lapsed(reason text, as_of timestamptz, batch integer, orgs uuid[])
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  ids uuid[];
  result jsonb;
begin
  select coalesce(array_agg(s.id), '{}') into ids from (
    select l.id from public.organization_status_levels l
    where l.is_active and l.valid_until <= as_of
      and (orgs is null or l.organization_id = any (orgs))
      and private.lapse_reason(l) = reason
    order by l.valid_until
    limit batch
    for update of l skip locked
  ) s;
  select jsonb_build_object(
    'count', count(*),
    'organization_ids', coalesce(jsonb_agg(distinct e.ended_organization_id), '[]'::jsonb),
    'more', count(*) >= batch
  ) into result from private.end_lapsed_rows(ids) e;
  return result;
end;
$$;

-- Step 3: expiry notices at 60, 30, 7 and 1 days before valid_until, for B, and for A only when it
-- will not renew by itself (the subscription is not active: grace or cancelled). For each row the
-- most urgent due threshold is sent; higher due thresholds not yet recorded are recorded as skipped
-- (catch-up after missed runs). The unique key makes each (row, end, threshold) happen once, also
-- when two runs overlap: the loser of the insert race gets no row back and queues nothing.
-- Batches walk the candidates in (valid_until, id) order: each returns a cursor (its last row) and
-- the next starts after it, so a batch reads about `batch` rows instead of skipping again over
-- every row the earlier batches already noticed. A run without a cursor starts from the beginning
-- (a resumed run just skips what is recorded).
create or replace function private.job_expiry_notices(as_of timestamptz, batch integer, orgs uuid[], after jsonb default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  result jsonb;
begin
  with candidates as (
    select l.id, l.organization_id, l.level, l.valid_until,
           case
             when l.valid_until <= as_of + interval '1 day' then 1
             when l.valid_until <= as_of + interval '7 days' then 7
             when l.valid_until <= as_of + interval '30 days' then 30
             else 60
           end as urgent
    from public.organization_status_levels l
    left join public.subscriptions s on s.id = l.subscription_id
    where l.is_active
      and l.valid_until > as_of
      and l.valid_until <= as_of + interval '60 days'
      and (l.level = 'B' or (l.level = 'A' and s.status is distinct from 'active'))
      and (orgs is null or l.organization_id = any (orgs))
      and (after is null or (l.valid_until, l.id) > ((after ->> 'valid_until')::timestamptz, (after ->> 'id')::uuid))
  ), todo as (
    select c.* from candidates c
    where not exists (
      select 1 from public.expiry_notices n
      where n.status_level_id = c.id and n.valid_until = c.valid_until and n.threshold_days = c.urgent
    )
    order by c.valid_until, c.id
    limit batch
  ), notices as (
    insert into public.expiry_notices (status_level_id, organization_id, level, valid_until, threshold_days, state)
    select t.id, t.organization_id, t.level, t.valid_until, d.days, case when d.days = t.urgent then 'sent' else 'skipped' end
    from todo t
    cross join lateral (values (60), (30), (7), (1)) as d(days)
    where d.days >= t.urgent
    on conflict (status_level_id, valid_until, threshold_days) do nothing
    returning organization_id, status_level_id, level, valid_until, threshold_days, state
  ), queued as (
    insert into public.notification_queue (organization_id, kind, status_level_id, level, valid_until, threshold_days)
    select organization_id, 'expiry_notice', status_level_id, level, valid_until, threshold_days
    from notices where state = 'sent'
  )
  select jsonb_build_object(
    'candidates', (select count(*) from todo),
    'sent', count(*) filter (where state = 'sent'),
    'skipped', count(*) filter (where state = 'skipped'),
    'sent_by_threshold', jsonb_build_object(
      '60', count(*) filter (where state = 'sent' and threshold_days = 60),
      '30', count(*) filter (where state = 'sent' and threshold_days = 30),
      '7', count(*) filter (where state = 'sent' and threshold_days = 7),
      '1', count(*) filter (where state = 'sent' and threshold_days = 1)
    ),
    'more', (select count(*) from todo) >= batch,
    'cursor', (select jsonb_build_object('valid_until', t.valid_until, 'id', t.id) from todo t order by t.valid_until desc, t.id desc limit 1)
  ) into result from notices;
  return result;
end;
$$;

-- Step 4, level C notices: the episodes they are sent for. An organization holding C is "at risk"
-- from the run whose 30-day projection first fails (it fails now, or stops meeting the criteria
-- within 30 days) until a run whose projection passes through the whole horizon again
-- (`recovered`) or it no longer holds C; an organization without C is "eligible" from the run
-- that finds it meeting the criteria until one that does not (or it holds C). One notice per
-- episode, at its start: the partial unique index allows one open episode per (organization,
-- kind), so of two overlapping runs only one opens it and queues the notice (like expiry_notices).
-- `skipped`: an episode begun without a notice (eligible while a request for C was pending: the
-- organization already asked). Private: only the job reads and writes it; platform admins see the
-- organizations at risk through public.list_level_c_at_risk.
create table private.level_c_episodes (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  kind text not null check (kind in ('at_risk', 'eligible')),
  notice text not null check (notice in ('sent', 'skipped')),
  -- The level row it is about: the C row (at risk), the B row C would build on (eligible).
  status_level_id uuid not null,
  -- The as_of of the run that saw it begin and end.
  started_at timestamptz not null,
  -- The first local date the criteria are not met (today: not met now); eligible: null unless it
  -- stops meeting them within the horizon.
  first_failing_on date,
  -- What the notice says: the projection at the start (local dates, failing criteria, and for
  -- eligible the values of every criterion).
  details jsonb not null,
  ended_at timestamptz,
  end_reason text check (end_reason in ('recovered', 'level_c_ended', 'no_longer_met', 'level_c_granted')),
  created_at timestamptz not null default now(),
  constraint ended_episodes_say_why check ((ended_at is null) = (end_reason is null))
);
create unique index level_c_episodes_open on private.level_c_episodes (organization_id, kind) where ended_at is null;
alter table private.level_c_episodes enable row level security;
revoke all on private.level_c_episodes from anon, authenticated, service_role;

-- The step walks level C holders in organization order (a cursor from batch to batch) through this.
create index organization_status_levels_active_by_level
  on public.organization_status_levels (level, organization_id) where is_active;

-- Step 4: level C notices, from the 30-day projection (private.level_c_projection_for, which
-- assumes no new reviews, responses, case studies or level changes) as of the run's as_of.
-- A batch takes the next `batch` organizations after the cursor, in id order, among those that can
-- need a notice or end an episode: C holders, organizations with an active B and a published case
-- study (without both nobody meets the criteria, and evaluating every organization costs ~15 s
-- per 100,000), and those with an open episode. A level counts from its valid_from, so a run as
-- of an earlier time (a backfill) leaves later levels alone.
-- Per organization: holding C, an at-risk episode begins (notice `level_c_at_risk`) when the
-- projection fails within the horizon and none is open, and ends as `recovered` when it passes
-- through the whole horizon; not holding C, an eligible episode begins (notice `level_c_eligible`,
-- or none while a request for C is pending: `skipped`) when it meets the criteria now, and ends
-- when it does not. An organization told it is eligible that stops meeting the criteria and meets
-- them again later is told again: a new episode.
create or replace function private.job_level_c_notices(as_of timestamptz, batch integer, orgs uuid[], after uuid default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  ids uuid[];
  result jsonb;
begin
  -- Each source in id order after the cursor, at most `batch` each; the first `batch` of their
  -- union are the batch.
  select coalesce(array_agg(u.id order by u.id), '{}') into ids from (
    select u.id from (
      (select l.organization_id as id from public.organization_status_levels l
       where l.level = 'C' and l.is_active and l.valid_from <= as_of and (l.valid_until is null or l.valid_until > as_of)
         and (after is null or l.organization_id > after) and (orgs is null or l.organization_id = any (orgs))
       order by l.organization_id limit batch)
      union
      (select distinct c.organization_id from public.case_studies c
       where c.is_published
         and (after is null or c.organization_id > after) and (orgs is null or c.organization_id = any (orgs))
         and exists (select 1 from public.organization_status_levels b
                     where b.organization_id = c.organization_id and b.level = 'B' and b.is_active
                       and b.valid_from <= as_of and b.valid_until > as_of)
       order by c.organization_id limit batch)
      union
      (select e.organization_id from private.level_c_episodes e
       where e.ended_at is null and e.started_at <= as_of
         and (after is null or e.organization_id > after) and (orgs is null or e.organization_id = any (orgs))
       order by e.organization_id limit batch)
    ) u
    order by u.id
    limit batch
  ) u;

  with projected as materialized (
    select p.* from private.level_c_projection_for(ids, 30, as_of) p
  ), state as (
    select p.*,
           c.id as c_level_id,
           b.id as b_level_id,
           exists (select 1 from public.upgrade_requests r
                   where r.organization_id = p.organization_id and r.status = 'pending' and r.target_level = 'C') as c_requested,
           risk.id as open_at_risk,
           elig.id as open_eligible,
           not p.meets_now or p.first_failing_on is not null as fails_within_horizon,
           jsonb_build_object('today', p.today, 'time_zone', p.time_zone, 'horizon_days', 30,
                              'meets_criteria_now', p.meets_now, 'failing', p.failing) as details
    from projected p
    left join lateral (
      select l.id from public.organization_status_levels l
      where l.organization_id = p.organization_id and l.level = 'C' and l.is_active
        and l.valid_from <= as_of and (l.valid_until is null or l.valid_until > as_of)
    ) c on true
    left join lateral (
      select l.id from public.organization_status_levels l
      where l.organization_id = p.organization_id and l.level = 'B' and l.is_active and l.valid_until > as_of
    ) b on true
    -- One index lookup per organization (limit 1 keeps these from being flattened into a join the
    -- planner sizes from statistics that lag behind a table this step itself fills: with 11,000
    -- open episodes it rescanned all of them per organization, 1.7 s for a batch of 2,000 instead
    -- of 10 ms).
    left join lateral (
      select e.id from private.level_c_episodes e
      where e.organization_id = p.organization_id and e.kind = 'at_risk' and e.ended_at is null and e.started_at <= as_of
      limit 1
    ) risk on true
    left join lateral (
      select e.id from private.level_c_episodes e
      where e.organization_id = p.organization_id and e.kind = 'eligible' and e.ended_at is null and e.started_at <= as_of
      limit 1
    ) elig on true
  ), beginning as (
    select s.organization_id, 'at_risk' as kind, 'sent' as notice, s.c_level_id as status_level_id,
           case when s.meets_now then s.first_failing_on else s.today end as first_failing_on, s.details
    from state s
    where s.c_level_id is not null and s.fails_within_horizon and s.open_at_risk is null
    union all
    select s.organization_id, 'eligible', case when s.c_requested then 'skipped' else 'sent' end, s.b_level_id, s.first_failing_on,
           s.details || jsonb_build_object('criteria', s.criteria)
    from state s
    where s.c_level_id is null and s.meets_now and s.open_eligible is null
  ), opened as (
    insert into private.level_c_episodes (organization_id, kind, notice, status_level_id, started_at, first_failing_on, details)
    select organization_id, kind, notice, status_level_id, as_of, first_failing_on, details || jsonb_build_object('first_failing_on', first_failing_on)
    from beginning
    on conflict (organization_id, kind) where ended_at is null do nothing
    returning id, organization_id, kind, notice, status_level_id, details
  ), ending as (
    select s.open_at_risk as id, case when s.c_level_id is null then 'level_c_ended' else 'recovered' end as reason
    from state s
    where s.open_at_risk is not null and (s.c_level_id is null or not s.fails_within_horizon)
    union all
    select s.open_eligible, case when s.c_level_id is not null then 'level_c_granted' else 'no_longer_met' end
    from state s
    where s.open_eligible is not null and (s.c_level_id is not null or not s.meets_now)
  ), ended as (
    -- A row another run ended meanwhile is re-checked (ended_at is null) and left alone.
    update private.level_c_episodes e set ended_at = as_of, end_reason = x.reason
    from ending x
    where e.id = x.id and e.ended_at is null
    returning e.end_reason
  ), queued as (
    insert into public.notification_queue (organization_id, kind, status_level_id, level, details)
    select organization_id, 'level_c_' || kind, status_level_id, 'C', details || jsonb_build_object('episode_id', id)
    from opened
    where notice = 'sent'
    returning kind
  )
  select jsonb_build_object(
    'evaluated', cardinality(ids),
    'at_risk_notices', (select count(*) from queued where kind = 'level_c_at_risk'),
    'eligible_notices', (select count(*) from queued where kind = 'level_c_eligible'),
    'skipped', (select count(*) from opened where notice = 'skipped'),
    'recovered', (select count(*) from ended where end_reason = 'recovered'),
    'no_longer_met', (select count(*) from ended where end_reason = 'no_longer_met'),
    'episodes_ended', (select count(*) from ended where end_reason in ('level_c_ended', 'level_c_granted')),
    'more', cardinality(ids) >= batch,
    'cursor', case when cardinality(ids) >= batch then jsonb_build_object('organization_id', ids[cardinality(ids)]) end
  ) into result;
  return result;
end;
$$;

-- A date as the notices show it: 14 January 2027.
-- Like the other renderers below (level_c_notice_line, render_level_c_notice, render_notice) it
-- has no SET clause: see render_notice.
create or replace function private.notice_day(d date)
returns text
language sql
stable
as $$
  select to_char(d, 'FMDD FMMonth YYYY')
$$;

-- One line per criterion of level C, as its notices list them: the value now and what is needed;
-- for a failing one (an element of the projection's `failing`) whether it fails today or the date
-- it stops being met, and what would keep it. The projection's `keep` ends with its date in ISO
-- form; the notice shows that date as it shows every other.
create or replace function private.level_c_notice_line(criterion text, value_now jsonb, failing jsonb default null, b_valid_until text default null)
returns text
language sql
stable
as $$
  select '- ' || case criterion
      when 'has_active_b' then
        case when failing is null then 'Level B, on which level C builds: active until ' || b_valid_until
             when (failing ->> 'met_now')::boolean then 'Level B, on which level C builds: active now'
             else 'Level B, on which level C builds: not active' end
      when 'review_count' then format('Published reviews in the last 12 months: %s', value_now #>> '{}')
      when 'response_rate' then format('Response rate over the last 90 days: %s', coalesce((value_now #>> '{}') || ' %', 'none'))
      when 'avg_response_hours' then format('Average response time over the last 90 days: %s', coalesce((value_now #>> '{}') || ' h', 'none'))
      else format('Published case studies: %s', value_now #>> '{}')
    end
    || case when criterion = 'has_active_b' then ''
            when failing is null then ' ' else ' now ' end
    || case criterion
         when 'review_count' then '(at least 15 needed)'
         when 'response_rate' then '(at least 85 % needed)'
         when 'avg_response_hours' then '(below 48 h needed)'
         when 'public_cases' then '(at least 1 needed)'
         else '' end
    || case
         when failing is null then ''
         when (failing ->> 'met_now')::boolean then
           format('; stops being met on %s.', private.notice_day((failing ->> 'fails_on')::date))
           || case when failing ->> 'keep' is not null then
                format(' To keep it: %s before %s.', regexp_replace(failing ->> 'keep', ' before \S+$', ''), private.notice_day((failing ->> 'fails_on')::date))
              else '' end
         else '; not met today. ' || case criterion
           when 'has_active_b' then 'Ask for level B again from your status page.'
           when 'review_count' then format('%s more published review%s needed.', 15 - (value_now #>> '{}')::integer,
                                           case when 15 - (value_now #>> '{}')::integer = 1 then ' is' else 's are' end)
           when 'response_rate' then 'Answer more of the last 90 days'' reviews.'
           when 'avg_response_hours' then 'Answer reviews sooner: within 48 h on average.'
           else 'Publish a case study.' end
       end
$$;

-- The texts of level C's notices, from what the projection said when the episode began
-- (notification_queue.details): dates are local dates of the organization's time zone.
create or replace function private.render_level_c_notice(kind text, org_name text, tz text, details jsonb)
returns table (title text, subject text, body text)
language sql
stable
rows 1
as $$
  with d as (
    select private.notice_day((details ->> 'today')::date) as today,
           private.notice_day((details ->> 'first_failing_on')::date) as fails_on,
           coalesce((details ->> 'meets_criteria_now')::boolean, false) as meets_now,
           (select string_agg(private.level_c_notice_line(f ->> 'criterion', f -> 'value_now', f), E'\n' order by n)
            from jsonb_array_elements(details -> 'failing') with ordinality as x(f, n)) as failing_lines,
           (select string_agg(private.level_c_notice_line(c, details -> 'criteria' -> c -> 'value_now', null,
                                private.notice_day(((details -> 'criteria' -> 'has_active_b' ->> 'valid_until')::timestamptz at time zone tz)::date)),
                              E'\n' order by n)
            from unnest(array['has_active_b', 'review_count', 'response_rate', 'avg_response_hours', 'public_cases']) with ordinality as x(c, n)) as criteria_lines
  )
  select
    case
      when kind = 'level_c_eligible' then 'You now meet level C''s criteria: you can ask for an upgrade'
      when d.meets_now then format('Level C at risk: its criteria stop being met on %s', d.fails_on)
      else 'Level C at risk: its criteria are not met'
    end,
    case
      when kind = 'level_c_eligible' then format('[%s] You now meet level C''s criteria', org_name)
      when d.meets_now then format('[%s] Your level C is at risk from %s', org_name, d.fails_on)
      else format('[%s] Your level C is at risk: its criteria are not met', org_name)
    end,
    case
      when kind = 'level_c_eligible' then format(
        E'Hello,\n\nAs of %s (%s), %s meets every criterion of level C, the top level:\n\n%s\n\n'
        'You can ask for an upgrade to level C from your status page; a platform admin reviews the request.%s\n\nThe platform team',
        d.today, tz, org_name, d.criteria_lines,
        case when d.fails_on is not null then format(
          E'\n\nWithout new reviews, %s stops meeting them on %s, as older reviews leave the 12-month and 90-day windows: ask before then.',
          org_name, d.fails_on) else '' end)
      else format(
        E'Hello,\n\nLevel C of %s stays until a platform admin revokes it, but its criteria must keep holding, and platform admins '
        'see the holders that no longer meet them. %s\n\n%s\n\n'
        'This assumes no new reviews, responses or case studies from today on: each review published, and each answered in time, '
        'counts. Dates are in %s; a criterion that stops being met on a date no longer holds at the end of that day.\n\nThe platform team',
        org_name,
        case when d.meets_now then format('As older reviews leave the 12-month and 90-day windows, %s stops meeting them on %s:', org_name, d.fails_on)
             else format('As of %s, %s does not meet them:', d.today, org_name) end,
        d.failing_lines, tz)
    end
  from d
$$;

-- The text of a notice, with dates in the organization's time zone. No SET clause, unlike the
-- other functions (nor in the renderers it calls): Postgres inlines a SQL function into the
-- statement that calls it only without one, and the fan-out renders ~130,000 notices a day through
-- them (as calls, 0.1 ms each for an expiry notice and 0.3 ms for a level C notice, whose lines
-- call two more: most of the fan-out's time). Without the SET they resolve names in their caller's
-- search_path; their one caller, job_fan_out, runs with search_path '' (pg_catalog only), and no
-- API role may execute them (seal_functions, the allow-list tests), so nobody can call them with a
-- search_path that puts another to_char or format first. They are not security definer.
create or replace function private.render_notice(kind text, level text, valid_until timestamptz, org_name text, tz text, as_of timestamptz, details jsonb default null)
returns table (title text, subject text, body text)
language sql
stable
rows 1
as $$
  select * from private.render_level_c_notice(kind, org_name, tz, details) where kind in ('level_c_at_risk', 'level_c_eligible')
  union all
  (with d as (
    select to_char(valid_until at time zone tz, 'FMDD FMMonth YYYY') as day,
           to_char(valid_until at time zone tz, 'FMDD FMMonth YYYY "at" HH24:MI') || ' (' || tz || ')' as moment,
           greatest(ceil(extract(epoch from valid_until - as_of) / 86400), 1)::integer as days_left
  )
  select
    case kind
      when 'expiry_notice' then format('Level %s ends in %s day%s, on %s', level, d.days_left, case when d.days_left = 1 then '' else 's' end, d.day)
      when 'level_expired' then format('Level %s has ended', level)
      else 'Level A has ended: the payment did not arrive'
    end,
    case kind
      when 'expiry_notice' then format('[%s] Your level %s ends in %s day%s, on %s', org_name, level, d.days_left, case when d.days_left = 1 then '' else 's' end, d.day)
      when 'level_expired' then format('[%s] Your level %s has ended', org_name, level)
      else format('[%s] Your level A has ended', org_name)
    end,
    case kind
      when 'expiry_notice' then format(E'Hello,\n\nLevel %s of %s ends on %s.\n\n%s\n\nThe platform team', level, org_name, d.moment,
        case level
          when 'B' then 'To keep it, ask for a renewal (re-verification) from your status page. Renewals open 60 days before the end.'
          else 'Your subscription will not renew by itself: update your payment details to keep level A.'
        end)
      when 'level_expired' then format(E'Hello,\n\nLevel %s of %s ended on %s.\n\n%s\n\nThe platform team', level, org_name, d.moment,
        case level when 'B' then 'Ask for level B again from your status page when you are ready for a new verification.'
                   else 'Renew your subscription to get level A back.' end)
      else format(E'Hello,\n\nThe grace period after a failed payment ended on %s, so level A of %s has ended.\n\nUpdate your payment details to get it back.\n\nThe platform team', d.moment, org_name)
    end
  from d
  where kind not in ('level_c_at_risk', 'level_c_eligible'))
$$;

-- Step 5a: queued work becomes in-app notifications for the organization's owners and admins and
-- rendered e-mails in the outbox. Dedupe keys make a replayed batch harmless. The batch's queue rows
-- are picked (and locked) first, and everything after reaches them by id, organizations and members
-- by index: the queue keeps its processed rows and the organizations are many, and a plan that
-- scans either per batch grows with them instead of with the batch.
create or replace function private.job_fan_out(as_of timestamptz, batch integer, orgs uuid[])
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  ids bigint[];
  result jsonb;
begin
  select coalesce(array_agg(w.id), '{}') into ids from (
    select q.id from public.notification_queue q
    where q.processed_at is null and (orgs is null or q.organization_id = any (orgs))
    order by q.id
    limit batch
    for update skip locked
  ) w;
  if cardinality(ids) = 0 then
    return jsonb_build_object('processed', 0, 'notifications', 0, 'emails', 0, 'more', false);
  end if;
  with rendered as materialized (
    select w.id as queue_id, w.organization_id, w.kind, w.level, w.valid_until, w.threshold_days, w.status_level_id, w.details,
           r.user_id, r.email, t.title, t.subject, t.body
    from public.notification_queue w
    cross join lateral (
      -- offset 0 keeps these lookups per queue row (by primary key) rather than a join the planner
      -- may answer by reading every organization or member.
      select o.name, o.time_zone from public.organizations o where o.id = w.organization_id offset 0
    ) o
    cross join lateral (
      select m.user_id, u.email
      from public.organization_members m
      join auth.users u on u.id = m.user_id
      where m.organization_id = w.organization_id and m.role in ('owner', 'admin')
      offset 0
    ) r
    cross join lateral private.render_notice(w.kind, w.level, w.valid_until, o.name, o.time_zone, as_of, w.details) t
    where w.id = any (ids)
  ), in_app as (
    insert into public.notifications (user_id, organization_id, kind, title, body, data, dedupe_key)
    select user_id, organization_id, kind, title, body,
           jsonb_build_object('level', level, 'valid_until', valid_until, 'threshold_days', threshold_days, 'status_level_id', status_level_id)
             || coalesce(details, '{}'),
           'queue:' || queue_id
    from rendered
    on conflict (user_id, dedupe_key) do nothing
    returning 1
  ), mails as (
    insert into public.email_outbox (organization_id, user_id, recipient, kind, subject, body_text, dedupe_key, next_attempt_at)
    select organization_id, user_id, email, kind, subject, body, 'queue:' || queue_id || ':' || user_id, least(as_of, now())
    from rendered
    where email is not null
    on conflict (dedupe_key) do nothing
    returning 1
  ), done as (
    update public.notification_queue q set processed_at = now()
    where q.id = any (ids)
    returning 1
  )
  select jsonb_build_object(
    'processed', (select count(*) from done),
    'notifications', (select count(*) from in_app),
    'emails', (select count(*) from mails),
    'more', cardinality(ids) >= batch
  ) into result;
  return result;
end;
$$;

-- Step 5b: lease a batch of e-mails that are due (pending, or failed and due for a retry). A lease
-- that runs out (the sender died mid-way) makes the rows claimable again. The lease (600 s, at most
-- 2,000 e-mails a claim) is longer than the worst case of one batch: the Worker sizes each claim so
-- that its calls, were each to take its whole timeout at the configured concurrency and rate limit,
-- and the recording after them end inside it (functions/scheduled/email-delivery.ts), and ends every
-- batch before its run's hard end; a shorter lease would let an overlapping run claim and send the
-- same e-mails again. The answer says the lease, so a Worker sized for a longer one refuses to send.
create or replace function private.job_claim_emails(as_of timestamptz, batch integer, lease_seconds integer, orgs uuid[])
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  result jsonb;
begin
  with due as (
    select e.id from public.email_outbox e
    where e.state in ('pending', 'failed') and e.next_attempt_at <= as_of
      and (e.locked_until is null or e.locked_until < now())
      and (orgs is null or e.organization_id = any (orgs))
    order by e.next_attempt_at, e.id
    limit batch
    for update skip locked
  ), leased as (
    update public.email_outbox e
    set locked_until = now() + make_interval(secs => lease_seconds), updated_at = now()
    from due where e.id = due.id
    returning e.id, e.recipient, e.subject, e.body_text, e.attempts, e.kind
  )
  select coalesce(jsonb_agg(jsonb_build_object('id', id, 'recipient', recipient, 'subject', subject, 'body_text', body_text,
                                               'attempts', attempts, 'kind', kind)), '[]'::jsonb)
  into result from leased;
  return result;
end;
$$;

-- Step 5b, after sending: sent rows are final; failures back off exponentially (5 min, 10, 20, ...,
-- at most 12 h) and become `dead` after max_attempts, visible to platform admins. An entry
-- `{id, attempted: false}` is an e-mail the sender leased but did not try (its run's time was up):
-- its lease is released so the next run takes it at once, and no attempt is counted.
create or replace function private.job_complete_emails(results jsonb, as_of timestamptz, max_attempts integer)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  result jsonb;
begin
  with r as (
    select (x ->> 'id')::uuid as id, coalesce((x ->> 'attempted')::boolean, true) as attempted,
           (x ->> 'ok')::boolean as ok, x ->> 'provider_message_id' as provider_message_id, left(x ->> 'error', 1000) as error
    from jsonb_array_elements(results) x
  ), released as (
    update public.email_outbox e
    set locked_until = null, updated_at = now()
    from r
    where e.id = r.id and not r.attempted and e.state in ('pending', 'failed')
    returning e.id
  ), updated as (
    update public.email_outbox e
    set attempts = e.attempts + 1,
        state = case when r.ok then 'sent' when e.attempts + 1 >= max_attempts then 'dead' else 'failed' end,
        sent_at = case when r.ok then now() end,
        provider_message_id = case when r.ok then r.provider_message_id else e.provider_message_id end,
        last_error = case when r.ok then e.last_error else r.error end,
        next_attempt_at = case when r.ok then e.next_attempt_at
                               else greatest(as_of, now()) + least(interval '5 minutes' * power(2, e.attempts), interval '12 hours') end,
        locked_until = null,
        updated_at = now()
    from r
    where e.id = r.id and r.attempted and e.state in ('pending', 'failed')
    returning e.state
  )
  select jsonb_build_object(
    'sent', count(*) filter (where state = 'sent'),
    'failed', count(*) filter (where state = 'failed'),
    'dead', count(*) filter (where state = 'dead'),
    'released', (select count(*) from released)
  ) into result from updated;
  return result;
end;
$$;

-- What a run that ran out of time leaves to the next one: e-mails due now and not leased.
create or replace function private.job_emails_due(as_of timestamptz, orgs uuid[])
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('due', count(*))
  from public.email_outbox e
  where e.state in ('pending', 'failed') and e.next_attempt_at <= as_of
    and (e.locked_until is null or e.locked_until < now())
    and (orgs is null or e.organization_id = any (orgs))
$$;

-- One entry point for the Worker: runs one batch of one step.
create or replace function public.run_daily_job_step(
  p_step text,
  p_as_of timestamptz default null,
  p_batch integer default 5000,
  p_organization_ids uuid[] default null,
  p_after jsonb default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
-- A batch's statements are short; compiling them with LLVM (JIT, on where Postgres has it, when a
-- plan's estimated cost is high, as a batch of thousands of rows' is) took more CPU than running
-- them: half the fan-out's time.
set jit = off
as $$
declare
  as_of timestamptz := coalesce(p_as_of, now());
begin
  perform private.require_system();
  if p_batch is null or p_batch < 1 or p_batch > 50000 then
    perform private.fail(400, 'invalid_batch', 'batch must be between 1 and 50000');
  end if;
  case p_step
    when 'expire' then return private.job_end_lapsed('expired', as_of, p_batch, p_organization_ids);
    when 'end_grace' then return private.job_end_lapsed('grace_ended', as_of, p_batch, p_organization_ids);
    when 'expiry_notices' then
      if p_after is not null and (jsonb_typeof(p_after) <> 'object'
          or (p_after ->> 'valid_until') !~ '^\d{4}-\d{2}-\d{2}' or (p_after ->> 'id') !~* '^[0-9a-f-]{36}$') then
        perform private.fail(400, 'invalid_cursor', 'after must be the cursor {valid_until, id} the previous batch returned');
      end if;
      return private.job_expiry_notices(as_of, p_batch, p_organization_ids, p_after);
    when 'level_c_notices' then
      if p_after is not null and (jsonb_typeof(p_after) <> 'object' or (p_after ->> 'organization_id') !~* '^[0-9a-f-]{36}$') then
        perform private.fail(400, 'invalid_cursor', 'after must be the cursor {organization_id} the previous batch returned');
      end if;
      -- At most 2,000 organizations a batch: their projection takes about 0.3 s, far from the
      -- service role's statement timeout.
      return private.job_level_c_notices(as_of, least(p_batch, 2000), p_organization_ids, (p_after ->> 'organization_id')::uuid);
    when 'fan_out' then return private.job_fan_out(as_of, p_batch, p_organization_ids);
    when 'claim_emails' then
      return jsonb_build_object('emails', private.job_claim_emails(as_of, least(p_batch, 2000), 600, p_organization_ids), 'lease_seconds', 600);
    when 'emails_due' then return private.job_emails_due(as_of, p_organization_ids);
    else
      perform private.fail(400, 'invalid_step', 'step must be expire, end_grace, expiry_notices, level_c_notices, fan_out, claim_emails or emails_due');
      return null;
  end case;
end;
$$;
comment on function public.run_daily_job_step(text, timestamptz, integer, uuid[], jsonb) is
  'One batch of one daily-job step (service role). as_of: the time the job acts as of; organization_ids: limit the run to these; after: the cursor the previous expiry_notices or level_c_notices batch returned.';

create or replace function public.complete_email_deliveries(p_results jsonb, p_as_of timestamptz default null, p_max_attempts integer default 5)
returns jsonb
language plpgsql
security definer
set search_path = ''
set jit = off
as $$
begin
  perform private.require_system();
  if jsonb_typeof(p_results) is distinct from 'array' then
    perform private.fail(400, 'invalid_results', 'results must be an array of {id, ok, provider_message_id?, error?} or {id, attempted: false}');
  end if;
  return private.job_complete_emails(p_results, coalesce(p_as_of, now()), p_max_attempts);
end;
$$;

-- Every run of the daily job, started and finished, so the health check can say when it last
-- succeeded: the old system's first risk was a cron that silently did not run.
create table public.daily_job_runs (
  id uuid primary key,
  trigger text not null check (trigger in ('cron', 'admin', 'service')),
  started_at timestamptz not null,
  as_of timestamptz not null,
  finished_at timestamptz,
  ok boolean,
  summary jsonb,
  constraint finished_runs_say_how check ((finished_at is null) = (ok is null))
);
create index daily_job_runs_finished on public.daily_job_runs (finished_at desc) where finished_at is not null;
create index daily_job_runs_succeeded on public.daily_job_runs (finished_at desc) where ok;
alter table public.daily_job_runs enable row level security;
create policy daily_job_runs_read on public.daily_job_runs for select to authenticated
  using ((select private.is_platform_admin()));
revoke all on public.daily_job_runs from anon, authenticated, service_role;
grant select on public.daily_job_runs to authenticated;
grant all on public.daily_job_runs to service_role;

-- The job records its start (no finished_at) and its end (finished_at, ok, the summary).
create or replace function public.record_daily_job_run(
  p_run_id uuid,
  p_trigger text,
  p_started_at timestamptz,
  p_as_of timestamptz,
  p_finished_at timestamptz default null,
  p_ok boolean default null,
  p_summary jsonb default null
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.require_system();
  insert into public.daily_job_runs as r (id, trigger, started_at, as_of, finished_at, ok, summary)
  values (p_run_id, p_trigger, p_started_at, p_as_of, p_finished_at, p_ok, p_summary)
  on conflict (id) do update set finished_at = excluded.finished_at, ok = excluded.ok, summary = excluded.summary;
end;
$$;

-- What the health check reports beyond reachability: when the daily job last finished and last
-- succeeded, and the e-mail outbox's backlog and dead letters. Counts for anyone (an uptime
-- monitor); the last run's summary for platform admins and the system only.
create or replace function public.status_levels_health()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  with last_run as (
    select finished_at, ok, summary from public.daily_job_runs
    where finished_at is not null order by finished_at desc limit 1
  )
  select jsonb_build_object(
    'daily_job', jsonb_build_object(
      'last_finished_at', (select finished_at from last_run),
      'last_ok', (select ok from last_run),
      'last_success_at', (select max(finished_at) from public.daily_job_runs where ok),
      'last_summary', case when private.is_platform_admin() or private.is_system() then (select summary from last_run) end
    ),
    'email_outbox', jsonb_build_object(
      'pending', (select count(*) from public.email_outbox where state = 'pending'),
      'failed', (select count(*) from public.email_outbox where state = 'failed'),
      'dead', (select count(*) from public.email_outbox where state = 'dead')
    ),
    'checked_at', now()
  )
$$;

-- The Worker runs the job with the service role when a platform admin asks it to (POST
-- /admin/jobs/daily): this is that check, in SQL like every other admin check.
create or replace function public.authorize_daily_job_run()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if not (private.is_platform_admin() or private.is_system()) then
    perform private.fail(403, 'not_allowed', 'only platform admins can run the daily job');
  end if;
  return true;
end;
$$;

-- E-mail deliveries by state for platform admins (the dead letters, by default), newest first.
create or replace function public.list_email_outbox(p_state text default 'dead', p_limit integer default 50, p_offset integer default 0)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_page(p_limit, p_offset);
  if p_state is null or p_state not in ('pending', 'sent', 'failed', 'dead') then
    perform private.fail(400, 'invalid_state', 'state must be pending, sent, failed or dead');
  end if;
  if not (private.is_platform_admin() or private.is_system()) then
    perform private.fail(403, 'not_allowed', 'only platform admins can see the e-mail outbox');
  end if;
  return jsonb_build_object(
    'total', (select count(*) from public.email_outbox where state = p_state),
    'items', coalesce((
      select jsonb_agg(jsonb_build_object(
        'id', e.id, 'organization_id', e.organization_id, 'recipient', e.recipient, 'kind', e.kind, 'subject', e.subject,
        'state', e.state, 'attempts', e.attempts, 'next_attempt_at', e.next_attempt_at, 'last_error', e.last_error,
        'sent_at', e.sent_at, 'created_at', e.created_at, 'updated_at', e.updated_at
      ) order by e.updated_at desc, e.id)
      from (
        select * from public.email_outbox where state = p_state
        order by updated_at desc, id
        limit p_limit offset p_offset
      ) e
    ), '[]'::jsonb)
  );
end;
$$;

-- In-app notifications: a signed-in user marks theirs as read (all, or the given ones).
create or replace function public.mark_notifications_read(p_ids uuid[] default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  n integer;
begin
  perform private.refuse_expired_request();
  if auth.uid() is null then
    perform private.fail(401, 'unauthorized', 'sign in to mark notifications as read');
  end if;
  if p_ids is not null and cardinality(p_ids) > 500 then
    perform private.fail(400, 'too_many_ids', 'at most 500 notifications at a time');
  end if;
  update public.notifications
  set read_at = now()
  where user_id = auth.uid() and read_at is null and (p_ids is null or id = any (p_ids));
  get diagnostics n = row_count;
  return n;
end;
$$;

revoke all on function
  public.record_daily_job_run(uuid, text, timestamptz, timestamptz, timestamptz, boolean, jsonb),
  public.status_levels_health()
  from public, anon, authenticated;
grant execute on function public.record_daily_job_run(uuid, text, timestamptz, timestamptz, timestamptz, boolean, jsonb) to service_role;
grant execute on function public.status_levels_health() to anon, authenticated, service_role;
revoke all on function
  public.run_daily_job_step(text, timestamptz, integer, uuid[], jsonb),
  public.complete_email_deliveries(jsonb, timestamptz, integer),
  public.mark_notifications_read(uuid[]),
  public.authorize_daily_job_run(),
  public.list_email_outbox(text, integer, integer)
  from public, anon, authenticated;
grant execute on function
  public.authorize_daily_job_run(),
  public.list_email_outbox(text, integer, integer)
  to authenticated, service_role;
grant execute on function
  public.run_daily_job_step(text, timestamptz, integer, uuid[], jsonb),
  public.complete_email_deliveries(jsonb, timestamptz, integer)
  to service_role;
grant execute on function public.mark_notifications_read(uuid[]) to authenticated;

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
