-- Functions are not executable by default: each API function is granted explicitly to the roles
-- that may call it. Postgres grants EXECUTE on every new function to PUBLIC, and Supabase's
-- default privileges grant everything in `public` (functions and sequences) to anon and
-- authenticated; both are taken back here, before this service creates anything, for objects
-- created by the role that runs the migrations. supabase/tests/rls-matrix.test.ts compares what
-- each API role can execute with an explicit allow-list.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke all on functions from anon, authenticated, service_role;
alter default privileges in schema public revoke all on sequences from anon, authenticated;

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

comment on function public.status_levels_ping() is 'Health check: answers when the database is reachable.';
revoke all on function public.status_levels_ping() from public;
grant execute on function public.status_levels_ping() to anon, authenticated, service_role;
