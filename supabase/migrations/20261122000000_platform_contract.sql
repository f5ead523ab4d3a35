-- The platform contract, and what every other migration builds on.
--
-- Organizations, their members, platform admins, reviews, case studies and subscriptions belong
-- to the wider platform, which already has them where this service is deployed (with more
-- columns, its own policies and grants). This migration never creates, alters or re-grants them
-- there. It first checks that every table and column the service uses is there and, if one is
-- missing, fails naming it, before anything is changed. Only where a table does not exist at all
-- (the local stack, the tests, an empty project) does it create a minimal stand-in, with row-level
-- security, policies and grants of its own, so the service runs alone.
--
-- Then what the other migrations build on: functions are not executable unless granted, the
-- private schema for internal helpers, the error and caller helpers every SQL function uses, the
-- API roles' statement timeout, the membership checks of the policies, and the health check's ping.

do $$
declare
  missing text;
begin
  -- (table, column, type) this service reads or writes. A table that does not exist is not
  -- checked: a stand-in is created below.
  select string_agg(format('%I.%I %s', need.tbl, need.col, need.typ), ', ' order by need.ord) into missing
  from (values
    (1, 'organizations', 'id', 'uuid'), (2, 'organizations', 'name', 'text'), (3, 'organizations', 'time_zone', 'text'),
    (4, 'organizations', 'is_public', 'boolean'),
    (5, 'organization_members', 'organization_id', 'uuid'), (6, 'organization_members', 'user_id', 'uuid'),
    (7, 'organization_members', 'role', 'text'),
    (8, 'platform_admins', 'user_id', 'uuid'), (9, 'platform_admins', 'revoked_at', 'timestamp with time zone'),
    (10, 'reviews', 'organization_id', 'uuid'), (11, 'reviews', 'status', 'text'),
    (12, 'reviews', 'published_at', 'timestamp with time zone'), (13, 'reviews', 'responded_at', 'timestamp with time zone'),
    (14, 'case_studies', 'organization_id', 'uuid'), (15, 'case_studies', 'is_published', 'boolean'),
    (16, 'subscriptions', 'id', 'uuid'), (17, 'subscriptions', 'organization_id', 'uuid'),
    (18, 'subscriptions', 'provider_subscription_id', 'text'), (19, 'subscriptions', 'status', 'text'),
    (20, 'subscriptions', 'current_period_end', 'timestamp with time zone'),
    (21, 'subscriptions', 'grace_started_at', 'timestamp with time zone'), (22, 'subscriptions', 'grace_until', 'timestamp with time zone'),
    (23, 'subscriptions', 'last_event_at', 'timestamp with time zone'), (24, 'subscriptions', 'last_event_id', 'text'),
    (25, 'subscriptions', 'created_at', 'timestamp with time zone'), (26, 'subscriptions', 'updated_at', 'timestamp with time zone')
  ) as need(ord, tbl, col, typ)
  where to_regclass(format('public.%I', need.tbl)) is not null
    and not exists (
      select 1 from pg_attribute a
      where a.attrelid = to_regclass(format('public.%I', need.tbl)) and a.attname = need.col and not a.attisdropped
        and format_type(a.atttypid, a.atttypmod) = need.typ
    );
  if missing is not null then
    raise exception 'the platform''s tables lack what the status-levels service uses: %', missing
      using hint = 'Add these columns (with these types) to the platform''s tables, or let an empty project get the stand-ins; nothing was changed.';
  end if;
  if to_regclass('public.subscriptions') is not null and not exists (
    select 1 from pg_index i
    where i.indrelid = to_regclass('public.subscriptions') and i.indisunique and i.indnkeyatts = 1
      and i.indkey[0] = (select attnum from pg_attribute where attrelid = to_regclass('public.subscriptions') and attname = 'provider_subscription_id')
  ) then
    raise exception 'the platform''s tables lack what the status-levels service uses: a unique index on public.subscriptions (provider_subscription_id)'
      using hint = 'Events name subscriptions by the provider''s id, which must identify one; nothing was changed.';
  end if;
  if to_regclass('auth.users') is null then
    raise exception 'auth.users is missing: this is not a Supabase database (locally, scripts/stack/supabase-bootstrap.sql provides it)';
  end if;
end
$$;

-- Functions are not executable by default: each API function is granted explicitly to the roles
-- that may call it. Postgres grants EXECUTE on every new function to PUBLIC, and Supabase's
-- default privileges grant everything in `public` (functions and sequences) to anon and
-- authenticated; both are taken back here, before this service creates anything, for objects
-- created by the role that runs the migrations. supabase/tests/rls-matrix.test.ts and the pgTAP
-- tests compare what each API role can execute with an explicit allow-list.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke all on functions from anon, authenticated, service_role;
alter default privileges in schema public revoke all on sequences from anon, authenticated;

create schema if not exists private;
comment on schema private is 'Helpers for policies and functions; not exposed through the API.';
grant usage on schema private to anon, authenticated, service_role;

-- The statement timeout of the API roles is shorter than the Worker's dependency timeout
-- (DEPENDENCY_TIMEOUT_MS, 5 s by default), so a write the Worker gave up on is cancelled and
-- rolled back by the database, never committed after the client got a 503. PostgREST applies the
-- impersonated role's settings to every request. Supabase's defaults are anon 3 s, authenticated
-- 8 s, service_role none; on a real project this applies to every PostgREST caller of the project.
-- Role settings belong to the whole cluster: set only what differs, and let a concurrent
-- migration of another database of the same cluster (parallel test runs) win the race.
do $$
declare
  r record;
begin
  for r in select * from (values ('anon', '3s'), ('authenticated', '4s'), ('service_role', '4s')) as t(role, timeout) loop
    if not exists (
      select 1 from pg_db_role_setting s join pg_roles o on o.oid = s.setrole
      where o.rolname = r.role and s.setdatabase = 0 and format('statement_timeout=%s', r.timeout) = any (s.setconfig)
    ) then
      begin
        execute format('alter role %I set statement_timeout = %L', r.role, r.timeout);
      exception when others then
        if sqlerrm !~ 'concurrently' then
          raise;
        end if;
      end;
    end if;
  end loop;
end
$$;
-- PostgREST reads role settings when it (re)loads its configuration.
notify pgrst, 'reload config';

-- Functions of `private` are internal steps of the security-definer API functions, several without
-- any check of their own (private.revoke_level, ...). Postgres grants EXECUTE on every new function
-- to PUBLIC, and `alter default privileges in schema ...` cannot take that back, so each migration
-- that creates a function in `private` ends with `select private.seal_functions();`: it revokes
-- EXECUTE from PUBLIC and the API roles on all of them and gives it back only to the helpers that
-- policies and check constraints call as the caller. supabase/tests/rls-matrix.test.ts fails when a
-- migration forgets.
create or replace function private.seal_functions()
returns void
language plpgsql
set search_path = ''
as $$
declare
  f regprocedure;
begin
  execute 'revoke execute on all functions in schema private from public, anon, authenticated';
  for f in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'private'::regnamespace
      and p.proname in ('is_platform_admin', 'org_role', 'is_org_member', 'can_manage_org',
                        'is_valid_time_zone', 'all_https_urls')
  loop
    execute format('grant execute on function %s to anon, authenticated, service_role', f);
  end loop;
end
$$;

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

create or replace function private.require_system()
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if not private.is_system() then
    perform private.fail(403, 'not_allowed', 'only the service role can call this');
  end if;
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

-- The stand-ins, each only where the platform's table does not exist. Which ones this migration
-- created is remembered for the rest of it, so their policies and grants are set and no one
-- else's are touched.
create temporary table status_levels_stand_ins (name text primary key);

create or replace function private.is_valid_time_zone(tz text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  perform timestamptz '2000-01-01 00:00:00+00' at time zone tz;
  return true;
exception when invalid_parameter_value then
  return false;
end;
$$;
comment on function private.is_valid_time_zone(text) is 'An IANA zone name Postgres knows (checked by converting a timestamp with it).';

do $$
begin
  if to_regclass('public.organizations') is null then
    create table public.organizations (
      id uuid primary key default gen_random_uuid(),
      name text not null check (char_length(name) between 1 and 200),
      time_zone text not null default 'UTC' check (private.is_valid_time_zone(time_zone)),
      is_public boolean not null default true,
      created_at timestamptz not null default now()
    );
    comment on column public.organizations.is_public is 'Public organizations show their level to anyone (badge, public projection).';
    insert into status_levels_stand_ins values ('organizations');
  end if;

  if to_regclass('public.organization_members') is null then
    create table public.organization_members (
      organization_id uuid not null references public.organizations (id) on delete cascade,
      user_id uuid not null references auth.users (id) on delete cascade,
      role text not null check (role in ('owner', 'admin', 'manager', 'member')),
      created_at timestamptz not null default now(),
      primary key (organization_id, user_id)
    );
    create index organization_members_user_idx on public.organization_members (user_id);
    insert into status_levels_stand_ins values ('organization_members');
  end if;

  -- Platform admins: a row per admin; revoking sets revoked_at (takes effect on the next
  -- statement) and keeps who and when for the audit trail.
  if to_regclass('public.platform_admins') is null then
    create table public.platform_admins (
      user_id uuid primary key references auth.users (id) on delete cascade,
      granted_by uuid references auth.users (id) on delete set null,
      granted_at timestamptz not null default now(),
      revoked_by uuid references auth.users (id) on delete set null,
      revoked_at timestamptz
    );
    insert into status_levels_stand_ins values ('platform_admins');
  end if;

  if to_regclass('public.reviews') is null then
    create table public.reviews (
      id uuid primary key default gen_random_uuid(),
      organization_id uuid not null references public.organizations (id) on delete cascade,
      status text not null default 'published' check (status in ('pending', 'published', 'rejected', 'hidden')),
      rating smallint check (rating between 1 and 5),
      published_at timestamptz,
      responded_at timestamptz,
      created_at timestamptz not null default now(),
      constraint reviews_published_has_time check (status <> 'published' or published_at is not null)
    );
    comment on column public.reviews.published_at is 'When the review went public: the "review time" of the response-time criterion.';
    comment on column public.reviews.responded_at is 'When the organization first answered it (null: unanswered).';
    insert into status_levels_stand_ins values ('reviews');
  end if;

  if to_regclass('public.case_studies') is null then
    create table public.case_studies (
      id uuid primary key default gen_random_uuid(),
      organization_id uuid not null references public.organizations (id) on delete cascade,
      title text not null check (char_length(title) between 1 and 300),
      is_published boolean not null default false,
      published_at timestamptz,
      created_at timestamptz not null default now()
    );
    create index case_studies_org_published_idx on public.case_studies (organization_id) where is_published;
    insert into status_levels_stand_ins values ('case_studies');
  end if;

  -- grace_started_at, grace_until, last_event_at and last_event_id are the fold of the payments
  -- events this service keeps (subscriptions migration): the platform's table must carry them.
  if to_regclass('public.subscriptions') is null then
    create table public.subscriptions (
      id uuid primary key default gen_random_uuid(),
      organization_id uuid not null references public.organizations (id) on delete cascade,
      provider text not null default 'payments',
      provider_subscription_id text not null unique check (char_length(provider_subscription_id) between 1 and 200),
      provider_customer_id text,
      status text not null check (status in ('incomplete', 'active', 'past_due', 'canceled', 'unpaid')),
      current_period_end timestamptz,
      grace_started_at timestamptz,
      grace_until timestamptz,
      last_event_at timestamptz,
      last_event_id text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create index subscriptions_org_idx on public.subscriptions (organization_id, updated_at desc);
    comment on column public.subscriptions.last_event_at is 'occurred_at of the newest event applied (ties broken by last_event_id).';
    insert into status_levels_stand_ins values ('subscriptions');
  end if;
end
$$;

-- Who is calling, for policies. security definer so a policy on one table can read another
-- without recursing through that table's own policies.
create or replace function private.is_platform_admin()
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.platform_admins
    where user_id = (select auth.uid()) and revoked_at is null
  )
$$;

create or replace function private.org_role(org uuid)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select role from public.organization_members
  where organization_id = org and user_id = (select auth.uid())
$$;

create or replace function private.is_org_member(org uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.organization_members
    where organization_id = org and user_id = (select auth.uid())
  )
$$;

create or replace function private.can_manage_org(org uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.organization_members
    where organization_id = org and user_id = (select auth.uid()) and role in ('owner', 'admin')
  )
$$;

-- The stand-ins' row-level security: read-only through the API; members read their
-- organization's rows, platform admins read all. Writes belong to the platform (service role).
do $$
declare
  t text;
  readers constant jsonb := jsonb_build_object(
    'organizations', '(select private.is_org_member(id)) or (select private.is_platform_admin())',
    'organization_members', '(select private.is_org_member(organization_id)) or (select private.is_platform_admin())',
    'platform_admins', 'user_id = (select auth.uid()) or (select private.is_platform_admin())',
    'reviews', '(select private.is_org_member(organization_id)) or (select private.is_platform_admin())',
    'case_studies', '(select private.is_org_member(organization_id)) or (select private.is_platform_admin())',
    'subscriptions', '(select private.can_manage_org(organization_id)) or (select private.is_platform_admin())'
  );
begin
  for t in select name from status_levels_stand_ins order by name loop
    execute format('alter table public.%I enable row level security', t);
    execute format('create policy %I on public.%I for select to authenticated using (%s)', t || '_read', t, readers ->> t);
    execute format('revoke all on public.%I from anon, authenticated', t);
    execute format('grant select on public.%I to authenticated', t);
    execute format('grant all on public.%I to service_role', t);
  end loop;
end
$$;

drop table status_levels_stand_ins;

-- A cheap round trip for the health check: proves PostgREST reaches the database with the
-- caller's role, without touching any table.
create or replace function public.status_levels_ping()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object('ok', true, 'time', now())
$$;

revoke all on function public.status_levels_ping() from public;
grant execute on function public.status_levels_ping() to anon, authenticated, service_role;

-- Internal functions stay internal (see private.seal_functions in the platform contract migration).
select private.seal_functions();
