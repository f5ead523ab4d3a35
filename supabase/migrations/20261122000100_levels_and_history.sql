-- Status levels: the level rows and their append-only history, the checks every level operation
-- makes (who calls, which organization, its lock), and the operations: grant, revoke, renew B,
-- move an end date, the status view and the audit trail. Rules a race could get around are
-- constraints and unique indexes; the SQL functions are the only writers for API roles.
-- A level that lapses is ended by private.expire_lapsed_levels (daily job migration), which every
-- writer here calls under the organization lock before it looks at what is active.

create table public.organization_status_levels (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  level text not null check (level in ('A', 'B', 'C')),
  is_active boolean not null default true,
  valid_from timestamptz not null default now(),
  valid_until timestamptz,
  granted_by uuid references auth.users (id) on delete set null,
  granted_at timestamptz not null default now(),
  -- No foreign key to the platform's subscriptions: the platform may delete a subscription, and
  -- the row keeps saying which one gave level A.
  subscription_id uuid,
  notes text check (char_length(notes) <= 2000),
  last_verified_at timestamptz,
  revoked_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  revoke_reason text check (char_length(revoke_reason) <= 2000),
  ended_at timestamptz,
  end_reason text check (end_reason in ('revoked', 'expired', 'grace_ended')),
  in_grace boolean not null default false,
  updated_at timestamptz not null default now(),
  constraint level_c_is_permanent check (level <> 'C' or valid_until is null),
  constraint level_b_has_validity check (level <> 'B' or valid_until is not null),
  constraint level_a_has_subscription check (level <> 'A' or subscription_id is not null),
  constraint only_level_a_has_grace check (level = 'A' or not in_grace),
  constraint active_rows_have_not_ended check (is_active = (ended_at is null)),
  constraint ended_rows_say_why check (ended_at is null or end_reason is not null),
  constraint revoked_rows_say_when check ((end_reason = 'revoked') = (revoked_at is not null))
);
comment on table public.organization_status_levels is
  'A level an organization holds or held. Active means is_active and (valid_until is null or valid_until > now()): every read uses the time predicate.';
comment on column public.organization_status_levels.granted_by is 'null: granted by the system (subscriptions).';
comment on column public.organization_status_levels.in_grace is
  'Level A whose validity comes from a grace period after a failed payment: when it lapses, it ends as grace_ended. Set with valid_until, so every path that ends the row agrees.';

-- At most one active row per (organization, level): concurrent grants cannot produce two.
create unique index organization_status_levels_one_active
  on public.organization_status_levels (organization_id, level) where is_active;
-- The daily job finds lapsed and soon-expiring rows through this, walking it in (valid_until, id)
-- order with a cursor from batch to batch.
create index organization_status_levels_active_until
  on public.organization_status_levels (valid_until, id) where is_active and valid_until is not null;
create index organization_status_levels_org on public.organization_status_levels (organization_id, level);
create index organization_status_levels_subscription
  on public.organization_status_levels (subscription_id) where subscription_id is not null;

create table public.status_level_history (
  id bigint generated always as identity primary key,
  -- No foreign keys: the audit trail outlives what it speaks of (the platform may delete an
  -- organization, which takes its level rows and requests with it), and an append-only table
  -- cannot take part in a cascade.
  organization_id uuid not null,
  status_level_id uuid,
  upgrade_request_id uuid,
  level text not null check (level in ('A', 'B', 'C')),
  action text not null check (action in (
    'granted', 'renewed', 'revoked', 'expired', 'grace_started', 'grace_ended', 'validity_updated',
    'request_created', 'request_approved', 'request_rejected', 'request_cancelled'
  )),
  actor_id uuid,
  reason text,
  notes text,
  old_valid_until timestamptz,
  new_valid_until timestamptz,
  subscription_event_id text,
  subscription_id uuid,
  created_at timestamptz not null default now()
);
comment on column public.status_level_history.subscription_id is 'For level A: the subscription whose state caused this change.';
comment on table public.status_level_history is 'Append-only audit trail: one row per change, written in the same transaction. actor_id null = the system.';
create index status_level_history_org on public.status_level_history (organization_id, created_at desc, id desc);
create index status_level_history_level on public.status_level_history (status_level_id) where status_level_id is not null;

create or replace function private.history_is_append_only()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'PT403',
    message = 'history_append_only: status level history cannot be changed or deleted',
    hint = 'Write a new history row instead.';
end;
$$;

create trigger status_level_history_no_update_delete
  before update or delete on public.status_level_history
  for each row execute function private.history_is_append_only();
create trigger status_level_history_no_truncate
  before truncate on public.status_level_history
  for each statement execute function private.history_is_append_only();

-- Row-level security: default deny. Members of the organization and platform admins read; the
-- public sees levels only through get_organization_status / get_current_status_level. No
-- insert/update/delete policies: API roles change data only through the SQL functions.
alter table public.organization_status_levels enable row level security;
alter table public.status_level_history enable row level security;
create policy organization_status_levels_read on public.organization_status_levels for select to authenticated
  using (private.is_org_member(organization_id) or (select private.is_platform_admin()));
create policy status_level_history_read on public.status_level_history for select to authenticated
  using (private.is_org_member(organization_id) or (select private.is_platform_admin()));
revoke all on public.organization_status_levels, public.status_level_history from anon, authenticated, service_role;
grant select on public.organization_status_levels, public.status_level_history to authenticated;
grant all on public.organization_status_levels to service_role;
-- History: the service role may add rows, never change or remove them (the trigger also stops
-- the table owner).
grant select, insert on public.status_level_history to service_role;

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
    -- The criteria over the next 30 days, assuming nothing new happens (level C migration).
    'level_c_projection', case when full_view then private.level_c_projection(p_organization_id, 30, now(), false) end,
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
  public.get_organization_status(uuid),
  public.grant_status_level(uuid, text, timestamptz, uuid, text),
  public.revoke_status_level(uuid, text, text),
  public.renew_status_level_b(uuid, text),
  public.update_status_validity(uuid, text, timestamptz, text),
  public.get_status_level_history(uuid, integer, integer)
  to authenticated, service_role;

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
