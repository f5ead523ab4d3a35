-- Subscriptions drive level A.
--
-- Events are applied atomically: the event id is recorded (unique) in the same transaction as its
-- effect, so a replay changes nothing and gets the first delivery's answer again; the same id with
-- a different body is refused (409 event_id_reused). The subscription's state is the fold of all
-- its events in provider order (occurred_at, then event id), so any delivery order and any number
-- of replays end in the same state. The newest event decides the status; an event older than the
-- newest applied one is recorded as `stale` and never changes the status - it can only add what
-- the newer events rely on (the past_due that started the grace period a later cancellation keeps).
--
-- Entitlement of one subscription: active -> until current_period_end; past_due -> a 14-day grace
-- period from the provider's occurred_at, until the later of the period end and the grace end;
-- canceled/unpaid -> until a running grace ends, otherwise nothing. A grace period is one episode:
-- it starts at the first past_due and no later past_due, unpaid or canceled moves it; only an
-- active event ends it.
--
-- Level A of an organization is active while ANY of its subscriptions entitles it, valid until
-- the latest entitlement end among them: an event for one subscription (a new checkout left
-- incomplete, an old one cancelled) never ends or shortens what another still pays for.

-- Subscription events applied (idempotency): the event id is recorded in the same transaction
-- as its effect, so a replay finds it and changes nothing.
create table public.subscription_events (
  event_id text primary key check (char_length(event_id) between 1 and 200),
  subscription_id uuid not null references public.subscriptions (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  status text not null check (status in ('active', 'past_due', 'canceled', 'unpaid', 'incomplete')),
  occurred_at timestamptz not null,
  current_period_end timestamptz,
  grace_days integer not null default 14 check (grace_days between 1 and 90),
  -- baseline: the platform's record of the subscription before its first event (see apply_subscription_event).
  source text not null default 'webhook' check (source in ('webhook', 'service', 'baseline')),
  outcome text not null default 'applied' check (outcome in ('applied', 'stale')),
  effects jsonb not null default '[]'::jsonb,
  reply jsonb,
  received_at timestamptz not null default now()
);
comment on column public.subscription_events.reply is 'What the first delivery was answered: a replay gets the same answer (outcome duplicate) and changes nothing.';
comment on column public.subscription_events.outcome is 'stale: older than an event already applied; recorded, and folded in without changing status or period.';
create index subscription_events_fold on public.subscription_events (subscription_id, occurred_at, event_id);

alter table public.subscription_events enable row level security;
create policy subscription_events_read on public.subscription_events for select to authenticated
  using ((select private.is_platform_admin()));
revoke all on public.subscription_events from anon, authenticated, service_role;
grant select on public.subscription_events to authenticated;
grant all on public.subscription_events to service_role;

create or replace function private.subscription_state(sub_id uuid)
returns table (status text, current_period_end timestamptz, grace_started_at timestamptz, grace_until timestamptz,
               last_event_at timestamptz, last_event_id text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  e record;
  -- Paid at some point: only then does a failed payment open a grace period.
  was_entitled boolean := false;
begin
  status := null; current_period_end := null; grace_started_at := null; grace_until := null;
  for e in
    select * from public.subscription_events where subscription_id = sub_id order by occurred_at, event_id
  loop
    if e.status = 'active' then
      current_period_end := coalesce(e.current_period_end, current_period_end);
      grace_started_at := null;
      grace_until := null;
      was_entitled := true;
    elsif e.status = 'past_due' then
      -- The platform's own record of a subscription before its first event (source baseline)
      -- counts as having paid: it could not be past due otherwise.
      was_entitled := was_entitled or e.source = 'baseline';
      -- One grace period per episode, from the first past_due after the subscription was
      -- entitled: only an active event (above) ends it.
      if grace_started_at is null and was_entitled then
        grace_started_at := e.occurred_at;
        grace_until := e.occurred_at + make_interval(days => e.grace_days);
      end if;
    end if;
    current_period_end := coalesce(current_period_end, case when e.source = 'baseline' then e.current_period_end end);
    status := e.status;
    last_event_at := e.occurred_at;
    last_event_id := e.event_id;
  end loop;
  return next;
end;
$$;

-- Until when the subscription entitles the organization to A (null: not entitled).
create or replace function private.entitled_until(
  status text, current_period_end timestamptz, grace_until timestamptz, as_of timestamptz default now()
)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select case
    when status = 'active' then current_period_end
    when status = 'past_due' then greatest(current_period_end, grace_until)
    when status in ('canceled', 'unpaid', 'incomplete') and grace_until > as_of then grace_until
    else null
  end
$$;

-- What the organization's subscriptions together entitle it to: level A until the latest
-- entitlement end among them (none: no row), the subscription that gives it, and whether that
-- end comes from a grace period (the row then ends as grace_ended).
create or replace function private.level_a_entitlement(org uuid, as_of timestamptz default now())
returns table (valid_until timestamptz, subscription_id uuid, provider_subscription_id text, status text, in_grace boolean)
language sql
stable
security definer
set search_path = ''
as $$
  select e.until, s.id, s.provider_subscription_id, s.status, s.status <> 'active' and s.grace_until is not null
  from public.subscriptions s
  cross join lateral (select private.entitled_until(s.status, s.current_period_end, s.grace_until, as_of) as until) e
  where s.organization_id = org and e.until > as_of
  order by e.until desc, s.status = 'active' desc, s.id
  limit 1
$$;

-- Brings the organization's level A in line with all its subscriptions after an event for `sub`;
-- returns the effects (`entitled_by`: the provider's id of the subscription level A now comes
-- from). History names the subscription whose event caused each change (subscription_id,
-- subscription_event_id); the level row names the one that entitles it. The caller holds the
-- organization lock.
create or replace function private.sync_level_a(
  org uuid,
  sub public.subscriptions,
  p_event_id text,
  grace_started boolean
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  wanted record;
  current_a public.organization_status_levels;
  action text;
  grace_note text := 'payment failed: grace period until ' || to_char(sub.grace_until at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"');
  effects jsonb := '[]'::jsonb;
begin
  perform private.expire_lapsed_levels(org);
  select * into current_a from public.organization_status_levels
  where organization_id = org and level = 'A' and is_active and valid_until > now();
  select * into wanted from private.level_a_entitlement(org);
  -- A grace period of this subscription concerns level A only while this subscription is what entitles it.
  grace_started := grace_started and wanted.subscription_id is not distinct from sub.id;

  if wanted.valid_until is not null then
    if current_a.id is null then
      insert into public.organization_status_levels (organization_id, level, valid_until, granted_by, subscription_id, in_grace)
      values (org, 'A', wanted.valid_until, null, wanted.subscription_id, wanted.in_grace)
      returning * into current_a;
      insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, new_valid_until,
                                               subscription_event_id, subscription_id)
      values (org, current_a.id, 'A', 'granted', null, 'subscription_' || sub.status, wanted.valid_until, p_event_id, sub.id);
      effects := effects || jsonb_build_object('effect', 'granted', 'valid_until', wanted.valid_until,
                                               'entitled_by', wanted.provider_subscription_id);
    elsif (current_a.valid_until, current_a.subscription_id, current_a.in_grace)
          is distinct from (wanted.valid_until, wanted.subscription_id, wanted.in_grace) then
      update public.organization_status_levels
      set valid_until = wanted.valid_until, subscription_id = wanted.subscription_id, in_grace = wanted.in_grace, updated_at = now()
      where id = current_a.id;
      action := case when grace_started then 'grace_started' else 'validity_updated' end;
      insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, old_valid_until,
                                               new_valid_until, subscription_event_id, subscription_id)
      values (org, current_a.id, 'A', action, null, case when grace_started then grace_note else 'subscription_' || sub.status end,
              current_a.valid_until, wanted.valid_until, p_event_id, sub.id);
      effects := effects || jsonb_build_object('effect', action, 'old_valid_until', current_a.valid_until, 'valid_until', wanted.valid_until,
                                               'entitled_by', wanted.provider_subscription_id);
    elsif grace_started then
      insert into public.status_level_history (organization_id, status_level_id, level, action, actor_id, reason, old_valid_until,
                                               new_valid_until, subscription_event_id, subscription_id)
      values (org, current_a.id, 'A', 'grace_started', null, grace_note, current_a.valid_until, current_a.valid_until, p_event_id, sub.id);
      effects := effects || jsonb_build_object('effect', 'grace_started', 'valid_until', current_a.valid_until,
                                               'entitled_by', sub.provider_subscription_id);
    end if;
  elsif current_a.id is not null then
    -- No subscription entitles the organization any more (this one was the last).
    if private.revoke_level(org, 'A', 'subscription_' || sub.status, null, 'revoked', p_event_id, sub.id) then
      effects := effects || jsonb_build_object('effect', 'revoked', 'reason', 'subscription_' || sub.status);
    end if;
  end if;
  return effects;
end;
$$;

create or replace function private.apply_subscription_event(
  p_event_id text,
  p_provider_subscription_id text,
  p_organization_id uuid,
  p_status text,
  p_occurred_at timestamptz,
  p_current_period_end timestamptz,
  p_grace_days integer default 14,
  p_source text default 'webhook'
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  sub public.subscriptions;
  prior record;
  state record;
  was_newest boolean;
  old_grace timestamptz;
  applied_effects jsonb;
  level_a_id uuid;
  created_id uuid;
  answer jsonb;
begin
  if p_status is null or p_status not in ('active', 'past_due', 'canceled', 'unpaid', 'incomplete') then
    perform private.fail(400, 'invalid_status', 'status must be active, past_due, canceled, unpaid or incomplete');
  end if;
  if p_status = 'active' and p_current_period_end is null then
    perform private.fail(400, 'current_period_end_required', 'an active event must carry current_period_end');
  end if;
  if p_occurred_at is null or p_occurred_at > now() + interval '5 minutes' then
    perform private.fail(400, 'invalid_occurred_at', 'occurred_at must be given and not in the future');
  end if;

  -- Deliveries of one event id go one at a time, and a delivery seen before is answered from its
  -- record before anything is written: a replay changes nothing at all.
  perform pg_advisory_xact_lock(hashtextextended('subscription_event:' || p_event_id, 0));
  select e.organization_id, e.status, e.occurred_at, e.current_period_end, e.reply, s.provider_subscription_id
    into prior
  from public.subscription_events e
  join public.subscriptions s on s.id = e.subscription_id
  where e.event_id = p_event_id;
  if found then
    if (prior.provider_subscription_id, prior.organization_id, prior.status, prior.occurred_at, prior.current_period_end)
       is distinct from (p_provider_subscription_id, p_organization_id, p_status, p_occurred_at, p_current_period_end) then
      perform private.fail(409, 'event_id_reused',
        format('event %s was already received with a different body; nothing was changed', p_event_id),
        'An event id names one event: send a new id for a new event.');
    end if;
    return coalesce(prior.reply, jsonb_build_object('event_id', p_event_id, 'subscription_id', p_provider_subscription_id, 'effects', '[]'::jsonb))
           || jsonb_build_object('outcome', 'duplicate');
  end if;

  perform private.lock_organization(p_organization_id);

  insert into public.subscriptions (organization_id, provider_subscription_id, status, current_period_end)
  values (p_organization_id, p_provider_subscription_id, p_status, p_current_period_end)
  on conflict (provider_subscription_id) do nothing
  returning id into created_id;
  select * into sub from public.subscriptions where provider_subscription_id = p_provider_subscription_id for update;
  if sub.organization_id <> p_organization_id then
    perform private.fail(422, 'subscription_mismatch', 'this subscription belongs to another organization');
  end if;
  -- A subscription the platform recorded before its first event (as every existing one is where
  -- this service is deployed): its state is the fold's starting point, as a baseline event, so
  -- the first event does not forget the paid period (a first past_due keeps A to the period end).
  if created_id is null and not exists (select 1 from public.subscription_events where subscription_id = sub.id) then
    insert into public.subscription_events (event_id, subscription_id, organization_id, status, occurred_at, current_period_end, grace_days, source, outcome)
    values ('baseline:' || sub.id, sub.id, sub.organization_id, sub.status,
            case when sub.status = 'past_due' then coalesce(sub.grace_started_at, sub.updated_at) else '-infinity' end,
            sub.current_period_end,
            case when sub.status = 'past_due' and sub.grace_started_at is not null and sub.grace_until is not null
                 then least(greatest(round(extract(epoch from sub.grace_until - sub.grace_started_at) / 86400), 1), 90)::integer
                 else 14 end,
            'baseline', 'applied');
  end if;

  was_newest := sub.last_event_at is null or (p_occurred_at, p_event_id) > (sub.last_event_at, sub.last_event_id);
  old_grace := sub.grace_started_at;

  insert into public.subscription_events (event_id, subscription_id, organization_id, status, occurred_at, current_period_end, grace_days, source, outcome)
  values (p_event_id, sub.id, p_organization_id, p_status, p_occurred_at, p_current_period_end, p_grace_days, p_source,
          case when was_newest then 'applied' else 'stale' end);

  select * into state from private.subscription_state(sub.id);
  update public.subscriptions
  set status = state.status, current_period_end = state.current_period_end, grace_started_at = state.grace_started_at,
      grace_until = state.grace_until, last_event_at = state.last_event_at, last_event_id = state.last_event_id,
      updated_at = now()
  where id = sub.id
  returning * into sub;

  applied_effects := private.sync_level_a(p_organization_id, sub, p_event_id,
    sub.grace_started_at is not null and sub.grace_started_at is distinct from old_grace);
  select id into level_a_id from public.organization_status_levels
  where organization_id = p_organization_id and level = 'A' and is_active and valid_until > now();
  -- The subscription is named as the payments service sent it. status_level_id and action are
  -- what the replaced service's ensure_level_a answered: the active A row after the event, and
  -- whether this event granted it; both null when no level A is active afterwards.
  answer := jsonb_build_object(
    'outcome', case when was_newest then 'applied' else 'stale' end,
    'event_id', p_event_id,
    'organization_id', p_organization_id,
    'subscription_id', p_provider_subscription_id,
    'status', sub.status,
    'current_period_end', sub.current_period_end,
    'grace_until', sub.grace_until,
    'effects', applied_effects,
    'status_level_id', level_a_id,
    'action', case
      when level_a_id is null then null
      when applied_effects @> '[{"effect": "granted"}]' then 'granted'
      else 'already_active'
    end
  );
  update public.subscription_events set effects = applied_effects, reply = answer where event_id = p_event_id;
  return answer;
end;
$$;

create or replace function public.apply_subscription_event(
  p_event_id text,
  p_provider_subscription_id text,
  p_organization_id uuid,
  p_status text,
  p_occurred_at timestamptz,
  p_current_period_end timestamptz default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.refuse_expired_request();
  perform private.require_system();
  if nullif(btrim(p_event_id), '') is null or char_length(p_event_id) > 200 then
    perform private.fail(400, 'invalid_event_id', 'event_id must be 1 to 200 characters');
  end if;
  if nullif(btrim(p_provider_subscription_id), '') is null or char_length(p_provider_subscription_id) > 200 then
    perform private.fail(400, 'invalid_subscription_id', 'subscription_id must be 1 to 200 characters');
  end if;
  return private.apply_subscription_event(p_event_id, p_provider_subscription_id, p_organization_id, p_status,
                                          p_occurred_at, p_current_period_end);
end;
$$;
comment on function public.apply_subscription_event(text, text, uuid, text, timestamptz, timestamptz) is
  'Applies one payments-service event atomically and idempotently. Service role only.';

create or replace function public.ensure_level_a(p_organization_id uuid, p_subscription_id uuid)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  sub public.subscriptions;
  until_ts timestamptz;
begin
  perform private.require_system();
  perform private.lock_organization(p_organization_id);
  perform private.expire_lapsed_levels(p_organization_id);
  if exists (select 1 from public.organization_status_levels
             where organization_id = p_organization_id and level = 'A' and is_active and valid_until > now()) then
    return 'already_active';
  end if;
  select * into sub from public.subscriptions where id = p_subscription_id;
  if not found then
    perform private.fail(404, 'subscription_not_found', format('no subscription %s', p_subscription_id));
  end if;
  until_ts := private.entitled_until(sub.status, sub.current_period_end, sub.grace_until);
  if until_ts is null or until_ts <= now() then
    perform private.fail(422, 'subscription_not_entitled', format('the subscription (%s) does not entitle the organization to level A now', sub.status));
  end if;
  perform private.grant_level(p_organization_id, 'A', until_ts, sub.id, null, null);
  return 'granted';
end;
$$;

create or replace function public.handle_subscription_status_change(
  p_subscription_id uuid,
  p_status text,
  p_occurred_at timestamptz default now(),
  p_current_period_end timestamptz default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  sub public.subscriptions;
begin
  perform private.require_system();
  select * into sub from public.subscriptions where id = p_subscription_id;
  if not found then
    perform private.fail(404, 'subscription_not_found', format('no subscription %s', p_subscription_id));
  end if;
  return private.apply_subscription_event('service:' || gen_random_uuid(), sub.provider_subscription_id, sub.organization_id,
    p_status, p_occurred_at, coalesce(p_current_period_end, case when p_status = 'active' then sub.current_period_end end), 14, 'service');
end;
$$;

-- Starts a grace period of p_days now for the organization's current subscription (as a past_due
-- event of the service, so the event fold keeps it). Returns when the grace ends.
create or replace function public.start_grace_period(p_organization_id uuid, p_days integer default 14)
returns timestamptz
language plpgsql
security definer
set search_path = ''
as $$
declare
  sub public.subscriptions;
begin
  perform private.require_system();
  if p_days is null or p_days < 1 or p_days > 90 then
    perform private.fail(400, 'invalid_days', 'a grace period lasts 1 to 90 days');
  end if;
  -- The subscription that entitles the organization to A now, else its most recent one.
  select s.* into sub from public.subscriptions s
  left join private.level_a_entitlement(p_organization_id) e on e.subscription_id = s.id
  where s.organization_id = p_organization_id
  order by e.subscription_id is not null desc, s.updated_at desc
  limit 1;
  if not found then
    perform private.fail(404, 'subscription_not_found', 'the organization has no subscription');
  end if;
  perform private.apply_subscription_event('service:' || gen_random_uuid(), sub.provider_subscription_id, p_organization_id,
    'past_due', now(), null, p_days, 'service');
  return (select grace_until from public.subscriptions where id = sub.id);
end;
$$;

create or replace function public.is_grace_period_ended(p_organization_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_system();
  -- Ended: no subscription entitles the organization any more, and the latest grace period is over.
  return not exists (select 1 from private.level_a_entitlement(p_organization_id))
     and coalesce((
       select s.grace_until <= now()
       from public.subscriptions s
       where s.organization_id = p_organization_id and s.grace_until is not null
       order by s.grace_until desc
       limit 1
     ), false);
end;
$$;

revoke all on function
  public.apply_subscription_event(text, text, uuid, text, timestamptz, timestamptz),
  public.ensure_level_a(uuid, uuid),
  public.handle_subscription_status_change(uuid, text, timestamptz, timestamptz),
  public.start_grace_period(uuid, integer),
  public.is_grace_period_ended(uuid)
  from public, anon, authenticated;
grant execute on function
  public.apply_subscription_event(text, text, uuid, text, timestamptz, timestamptz),
  public.ensure_level_a(uuid, uuid),
  public.handle_subscription_status_change(uuid, text, timestamptz, timestamptz),
  public.start_grace_period(uuid, integer),
  public.is_grace_period_ended(uuid)
  to service_role;

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
