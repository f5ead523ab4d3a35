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
grant execute on function public.status_levels_ping() to anon, authenticated, service_role;
