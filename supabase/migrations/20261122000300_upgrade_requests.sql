-- Upgrade requests: an organization's owner or admin asks for B or C (target_level); a platform
-- admin approves (granting in the same transaction) or rejects; the requester or an owner/admin
-- may cancel. pending -> approved | rejected | cancelled, nothing else. At most one pending request
-- per organization, and a rate limit that holds for direct PostgREST callers too.

-- Evidence links: https only, no credentials (user:pass@) in the authority, no blanks or spaces,
-- bounded length.
create or replace function private.all_https_urls(urls text[])
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(bool_and(u is not null and u ~ '^https://[^\s/?#@]+([/?#]\S*)?$' and char_length(u) <= 2048), true)
  from unnest(urls) as u
$$;

create table public.upgrade_requests (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  target_level text not null check (target_level in ('B', 'C')),
  status text not null default 'pending' check (status in ('pending', 'approved', 'rejected', 'cancelled')),
  message text check (char_length(message) <= 2000),
  evidence_urls text[] not null default '{}',
  -- null once the requester's account is deleted.
  requested_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  decided_by uuid references auth.users (id) on delete set null,
  decided_at timestamptz,
  decision_note text check (char_length(decision_note) <= 2000),
  granted_status_level_id uuid references public.organization_status_levels (id) on delete set null,
  constraint evidence_urls_bounded check (cardinality(evidence_urls) <= 10),
  constraint evidence_urls_https check (private.all_https_urls(evidence_urls)),
  constraint decided_requests_have_time check ((status = 'pending') = (decided_at is null)),
  constraint rejections_have_a_note check (status <> 'rejected' or decision_note ~ '\S')
);
comment on column public.upgrade_requests.decided_by is 'Who approved, rejected or cancelled it.';

-- At most one pending request per organization, also under concurrency.
create unique index upgrade_requests_one_pending on public.upgrade_requests (organization_id) where status = 'pending';
create index upgrade_requests_queue on public.upgrade_requests (created_at, id) where status = 'pending';
create index upgrade_requests_org on public.upgrade_requests (organization_id, created_at desc);
-- The rate limit counts a user's recent requests through this.
create index upgrade_requests_requester on public.upgrade_requests (requested_by, created_at desc);

alter table public.upgrade_requests enable row level security;
create policy upgrade_requests_read on public.upgrade_requests for select to authenticated
  using (private.is_org_member(organization_id) or (select private.is_platform_admin()));
revoke all on public.upgrade_requests from anon, authenticated, service_role;
grant select on public.upgrade_requests to authenticated;
grant all on public.upgrade_requests to service_role;

create or replace function private.request_json(r public.upgrade_requests)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', r.id,
    'organization_id', r.organization_id,
    'target_level', r.target_level,
    'status', r.status,
    'message', r.message,
    'evidence_urls', to_jsonb(r.evidence_urls),
    'requested_by', r.requested_by,
    'created_at', r.created_at,
    'decided_by', r.decided_by,
    'decided_at', r.decided_at,
    'decision_note', r.decision_note,
    'granted_status_level_id', r.granted_status_level_id
  )
$$;

-- The request, locked, if the caller may see it (members of its organization, platform admins).
create or replace function private.lock_request(p_request_id uuid)
returns public.upgrade_requests
language plpgsql
security definer
set search_path = ''
as $$
declare
  r public.upgrade_requests;
begin
  select * into r from public.upgrade_requests where id = p_request_id for update;
  if not found or not (private.is_org_member(r.organization_id) or private.is_platform_admin() or private.is_system()) then
    perform private.fail(404, 'request_not_found', format('no upgrade request %s is visible to you', p_request_id));
  end if;
  if r.status <> 'pending' then
    perform private.fail(409, 'request_not_pending', format('the request is already %s', r.status),
      'Only pending requests can be approved, rejected or cancelled.');
  end if;
  return r;
end;
$$;

-- How many upgrade requests may be created in a sliding window: per user (across organizations)
-- and per organization (all its owners and admins together). Each request can add two history
-- rows that are never deleted (created, cancelled), so this bounds what anyone can write, also
-- a member who calls PostgREST directly with their own token.
create or replace function private.upgrade_request_rate_limit()
returns table (per_user integer, per_organization integer, window_seconds integer)
language sql
immutable
set search_path = ''
as $$
  select 5, 10, 600
$$;

-- Raises 429 rate_limited when creating one more request would pass a limit. Counted in the
-- caller's transaction after serializing on the user (an advisory lock) and the organization (the
-- caller holds its row lock), so concurrent requests cannot both slip under the limit.
create or replace function private.enforce_upgrade_request_rate_limit(org uuid, actor uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  lim record;
  since timestamptz;
  by_user integer;
  by_org integer;
  oldest timestamptz;
  retry_after integer;
  scope text;
begin
  select * into lim from private.upgrade_request_rate_limit();
  since := now() - make_interval(secs => lim.window_seconds);
  perform pg_advisory_xact_lock(hashtextextended('upgrade_request_rate:' || actor::text, 0));
  select count(*), min(created_at) into by_user, oldest from (
    select created_at from public.upgrade_requests
    where requested_by = actor and created_at > since
    order by created_at desc limit lim.per_user
  ) r;
  if by_user >= lim.per_user then
    scope := format('at most %s per user', lim.per_user);
  else
    select count(*), min(created_at) into by_org, oldest from (
      select created_at from public.upgrade_requests
      where organization_id = org and created_at > since
      order by created_at desc limit lim.per_organization
    ) r;
    if by_org >= lim.per_organization then
      scope := format('at most %s per organization', lim.per_organization);
    end if;
  end if;
  if scope is not null then
    -- The window frees a slot when the oldest request counted leaves it.
    retry_after := greatest(1, ceil(extract(epoch from oldest + make_interval(secs => lim.window_seconds) - now())))::integer;
    raise exception using
      errcode = 'PT429',
      message = format('rate_limited: too many upgrade requests: %s every %s minutes; try again in %s s',
                       scope, lim.window_seconds / 60, retry_after),
      detail = jsonb_build_object('retry_after_seconds', retry_after)::text,
      hint = 'Wait for the window to pass; a pending request can be cancelled and re-created only within the limit.';
  end if;
end;
$$;

create or replace function public.create_upgrade_request(
  p_organization_id uuid,
  p_target_level text,
  p_message text default null,
  p_evidence_urls text[] default '{}'
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_b public.organization_status_levels;
  created public.upgrade_requests;
  actor uuid := auth.uid();
begin
  perform private.refuse_expired_request();
  perform private.require_organization(p_organization_id);
  if actor is null or not private.can_manage_org(p_organization_id) then
    perform private.fail(403, 'not_allowed', 'only owners and admins of the organization can ask for an upgrade');
  end if;
  perform private.require_level(p_target_level, array['B', 'C']);
  if char_length(p_message) > 2000 then
    perform private.fail(400, 'message_too_long', 'the message is limited to 2000 characters');
  end if;
  if cardinality(coalesce(p_evidence_urls, '{}')) > 10 then
    perform private.fail(400, 'too_many_evidence_urls', 'at most 10 evidence links');
  end if;
  if not private.all_https_urls(coalesce(p_evidence_urls, '{}')) then
    perform private.fail(400, 'invalid_evidence_url', 'evidence links must be https:// URLs without spaces');
  end if;

  perform private.lock_organization(p_organization_id);
  perform private.expire_lapsed_levels(p_organization_id);
  perform private.enforce_upgrade_request_rate_limit(p_organization_id, actor);

  if exists (select 1 from public.upgrade_requests where organization_id = p_organization_id and status = 'pending') then
    perform private.fail(409, 'request_already_pending', 'this organization already has a pending upgrade request',
      'Wait for the decision, or cancel the pending request first.');
  end if;

  select * into current_b from public.organization_status_levels
  where organization_id = p_organization_id and level = 'B' and is_active and valid_until > now();

  if p_target_level = 'C' then
    if exists (select 1 from public.organization_status_levels where organization_id = p_organization_id and level = 'C' and is_active and valid_until is null) then
      perform private.fail(409, 'level_already_active', 'level C is already active for this organization');
    end if;
    if current_b.id is null then
      perform private.fail(422, 'level_c_requires_b', 'level C can only be requested with an active level B');
    end if;
  elsif current_b.id is not null and current_b.valid_until > now() + interval '60 days' then
    perform private.fail(422, 'renewal_too_early',
      format('level B is active until %s; a renewal can be requested from %s',
        to_char(current_b.valid_until at time zone 'UTC', 'YYYY-MM-DD'),
        to_char((current_b.valid_until - interval '60 days') at time zone 'UTC', 'YYYY-MM-DD')));
  end if;

  begin
    insert into public.upgrade_requests (organization_id, target_level, message, evidence_urls, requested_by)
    values (p_organization_id, p_target_level, p_message, coalesce(p_evidence_urls, '{}'), actor)
    returning * into created;
  exception when unique_violation then
    perform private.fail(409, 'request_already_pending', 'this organization already has a pending upgrade request');
  end;

  insert into public.status_level_history (organization_id, upgrade_request_id, level, action, actor_id, notes)
  values (p_organization_id, created.id, p_target_level, 'request_created', actor, p_message);
  return private.request_json(created);
end;
$$;
comment on function public.create_upgrade_request(uuid, text, text, text[]) is
  'Owners/admins ask for B or C. One pending request per organization; C needs an active B; B while B is active only within 60 days of its end.';

create or replace function public.cancel_upgrade_request(p_request_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  r public.upgrade_requests;
  actor uuid := auth.uid();
begin
  perform private.refuse_expired_request();
  r := private.lock_request(p_request_id);
  if actor is null or not (r.requested_by = actor or private.can_manage_org(r.organization_id)) then
    perform private.fail(403, 'not_allowed', 'only the requester or an owner or admin of the organization can cancel it');
  end if;
  update public.upgrade_requests
  set status = 'cancelled', decided_by = actor, decided_at = now()
  where id = r.id
  returning * into r;
  insert into public.status_level_history (organization_id, upgrade_request_id, level, action, actor_id)
  values (r.organization_id, r.id, r.target_level, 'request_cancelled', actor);
  return private.request_json(r);
end;
$$;

create or replace function public.approve_upgrade_request(p_request_id uuid, p_notes text default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  r public.upgrade_requests;
  granted public.organization_status_levels;
  actor uuid := auth.uid();
begin
  perform private.refuse_expired_request();
  if not private.is_platform_admin() then
    perform private.fail(403, 'not_allowed', 'only platform admins can approve upgrade requests');
  end if;
  r := private.lock_request(p_request_id);
  -- Decided under the organization lock, so a revoke or a lapse between a check and the grant
  -- cannot make the approval fail: whatever state the lock finds is the one acted on.
  perform private.lock_organization(r.organization_id);
  perform private.expire_lapsed_levels(r.organization_id);
  -- A request for B while B is active is a renewal (re-verification); otherwise a grant. Either
  -- way it happens in this transaction: if the grant fails, the request stays pending.
  if r.target_level = 'B' and exists (
    select 1 from public.organization_status_levels
    where organization_id = r.organization_id and level = 'B' and is_active and valid_until > now()
  ) then
    granted := private.renew_level_b(r.organization_id, p_notes, actor, r.id);
  else
    granted := private.grant_level(r.organization_id, r.target_level, null, null, p_notes, actor, r.id);
  end if;
  update public.upgrade_requests
  set status = 'approved', decided_by = actor, decided_at = now(), decision_note = p_notes,
      granted_status_level_id = granted.id
  where id = r.id
  returning * into r;
  insert into public.status_level_history (organization_id, status_level_id, upgrade_request_id, level, action, actor_id, notes)
  values (r.organization_id, granted.id, r.id, r.target_level, 'request_approved', actor, p_notes);
  return jsonb_build_object('request', private.request_json(r), 'level', private.level_json(granted, true));
end;
$$;

create or replace function public.reject_upgrade_request(p_request_id uuid, p_note text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  r public.upgrade_requests;
  actor uuid := auth.uid();
begin
  perform private.refuse_expired_request();
  if not private.is_platform_admin() then
    perform private.fail(403, 'not_allowed', 'only platform admins can reject upgrade requests');
  end if;
  if p_note is null or p_note !~ '\S' then
    perform private.fail(400, 'decision_note_required', 'a rejection needs a note that tells the organization why');
  end if;
  if char_length(p_note) > 2000 then
    perform private.fail(400, 'note_too_long', 'the note is limited to 2000 characters');
  end if;
  r := private.lock_request(p_request_id);
  update public.upgrade_requests
  set status = 'rejected', decided_by = actor, decided_at = now(), decision_note = p_note
  where id = r.id
  returning * into r;
  insert into public.status_level_history (organization_id, upgrade_request_id, level, action, actor_id, reason)
  values (r.organization_id, r.id, r.target_level, 'request_rejected', actor, p_note);
  return private.request_json(r);
end;
$$;

create or replace function public.list_upgrade_requests(
  p_organization_id uuid,
  p_status text default null,
  p_limit integer default 50,
  p_offset integer default 0
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_page(p_limit, p_offset);
  if p_status is not null and p_status not in ('pending', 'approved', 'rejected', 'cancelled') then
    perform private.fail(400, 'invalid_status', 'status must be pending, approved, rejected or cancelled');
  end if;
  perform private.require_member_view(p_organization_id);
  return jsonb_build_object(
    'total', (select count(*) from public.upgrade_requests
              where organization_id = p_organization_id and (p_status is null or status = p_status)),
    'limit', p_limit,
    'offset', p_offset,
    'items', coalesce((
      select jsonb_agg(private.request_json(r) order by r.created_at desc, r.id)
      from (
        select * from public.upgrade_requests
        where organization_id = p_organization_id and (p_status is null or status = p_status)
        order by created_at desc, id
        limit p_limit offset p_offset
      ) r
    ), '[]'::jsonb)
  );
end;
$$;

-- The admin queue: pending requests, oldest first, with what a reviewer needs at hand.
create or replace function public.list_pending_upgrade_requests(p_limit integer default 50, p_offset integer default 0)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_page(p_limit, p_offset);
  if not (private.is_platform_admin() or private.is_system()) then
    perform private.fail(403, 'not_allowed', 'only platform admins can see the review queue');
  end if;
  return jsonb_build_object(
    'total', (select count(*) from public.upgrade_requests where status = 'pending'),
    'limit', p_limit,
    'offset', p_offset,
    'items', coalesce((
      select jsonb_agg(private.request_json(r) || jsonb_build_object(
        'organization', jsonb_build_object('id', o.id, 'name', o.name),
        'current_level', coalesce((
          select l.level from public.organization_status_levels l
          where l.organization_id = r.organization_id and l.is_active and (l.valid_until is null or l.valid_until > now())
          order by l.level desc limit 1), '0'),
        'level_c_progress', case when r.target_level = 'C' then c.level_c -> 'criteria' end,
        'level_c_checklist', case when r.target_level = 'C' then c.level_c - 'criteria' end
      ) order by r.created_at, r.id)
      from (
        select * from public.upgrade_requests where status = 'pending'
        order by created_at, id
        limit p_limit offset p_offset
      ) r
      join public.organizations o on o.id = r.organization_id
      cross join lateral (select case when r.target_level = 'C' then private.level_c_criteria(r.organization_id) end as level_c) c
    ), '[]'::jsonb)
  );
end;
$$;

revoke all on function
  public.create_upgrade_request(uuid, text, text, text[]),
  public.cancel_upgrade_request(uuid),
  public.approve_upgrade_request(uuid, text),
  public.reject_upgrade_request(uuid, text),
  public.list_upgrade_requests(uuid, text, integer, integer),
  public.list_pending_upgrade_requests(integer, integer)
  from public, anon;
grant execute on function
  public.create_upgrade_request(uuid, text, text, text[]),
  public.cancel_upgrade_request(uuid),
  public.approve_upgrade_request(uuid, text),
  public.reject_upgrade_request(uuid, text),
  public.list_upgrade_requests(uuid, text, integer, integer),
  public.list_pending_upgrade_requests(integer, integer)
  to authenticated, service_role;

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
