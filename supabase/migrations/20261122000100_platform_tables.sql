-- Minimal versions of the wider platform's tables that this service reads, so the service runs
-- on its own. On the real platform these exist already; the status-level migrations depend only
-- on the columns used here.

create schema if not exists private;
comment on schema private is 'Helpers for policies and functions; not exposed through the API.';
grant usage on schema private to anon, authenticated, service_role;

-- An IANA zone name Postgres knows (checked by converting a timestamp with it).
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

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(name) between 1 and 200),
  time_zone text not null default 'UTC' check (private.is_valid_time_zone(time_zone)),
  is_public boolean not null default true,
  created_at timestamptz not null default now()
);
comment on column public.organizations.is_public is 'Public organizations show their level to anyone (badge, public projection).';

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'manager', 'member')),
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
create index organization_members_user_idx on public.organization_members (user_id);

-- Platform admins: a row per admin; revoking sets revoked_at (takes effect on the next statement)
-- and keeps who and when for the audit trail.
create table public.platform_admins (
  user_id uuid primary key references auth.users (id) on delete cascade,
  granted_by uuid references auth.users (id),
  granted_at timestamptz not null default now(),
  revoked_by uuid references auth.users (id),
  revoked_at timestamptz
);

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

create table public.case_studies (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  title text not null check (char_length(title) between 1 and 300),
  is_published boolean not null default false,
  published_at timestamptz,
  created_at timestamptz not null default now()
);
create index case_studies_org_published_idx on public.case_studies (organization_id) where is_published;

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

select private.seal_functions();

-- Read-only through the API: members read their organization's rows, platform admins read all.
-- Writes belong to the platform (service role) - no insert/update/delete policy, so denied.
alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;
alter table public.platform_admins enable row level security;
alter table public.reviews enable row level security;
alter table public.case_studies enable row level security;
alter table public.subscriptions enable row level security;

create policy organizations_read on public.organizations for select to authenticated
  using ((select private.is_org_member(id)) or (select private.is_platform_admin()));

create policy organization_members_read on public.organization_members for select to authenticated
  using ((select private.is_org_member(organization_id)) or (select private.is_platform_admin()));

create policy platform_admins_read on public.platform_admins for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_platform_admin()));

create policy reviews_read on public.reviews for select to authenticated
  using ((select private.is_org_member(organization_id)) or (select private.is_platform_admin()));

create policy case_studies_read on public.case_studies for select to authenticated
  using ((select private.is_org_member(organization_id)) or (select private.is_platform_admin()));

create policy subscriptions_read on public.subscriptions for select to authenticated
  using ((select private.can_manage_org(organization_id)) or (select private.is_platform_admin()));

-- Least privilege on top of RLS: the API roles get only what a policy could ever allow.
revoke all on public.organizations, public.organization_members, public.platform_admins,
  public.reviews, public.case_studies, public.subscriptions from anon, authenticated;
grant select on public.organizations, public.organization_members, public.platform_admins,
  public.reviews, public.case_studies, public.subscriptions to authenticated;
grant all on public.organizations, public.organization_members, public.platform_admins,
  public.reviews, public.case_studies, public.subscriptions to service_role;
