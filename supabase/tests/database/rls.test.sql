-- Row level security is on for every table of the exposed schemas, and the level tables show each
-- caller what their policies say: members their organization's rows, platform admins and the
-- service role every row, outsiders nothing, anonymous callers no table at all; no API role but
-- the service role writes to them.
begin;
\ir helpers.psql
select plan(23);

-- The schemas PostgREST serves: [api] schemas in supabase/config.toml.
create temporary table exposed_relations on commit drop as
select n.nspname as schema, c.relname as name, c.relkind as kind, c.relrowsecurity as rls,
       coalesce(c.reloptions, '{}') as options
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any (array['public'])
  and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e');

select is(
  array(select schema || '.' || name from exposed_relations where kind in ('r', 'p') and not rls order by 1),
  '{}'::text[],
  'every table of the exposed schemas has row level security enabled'
);
select is(
  array(select schema || '.' || name from exposed_relations
        where kind in ('m', 'f') or (kind = 'v' and not 'security_invoker=true' = any (options)) order by 1),
  '{}'::text[],
  'no view, materialized view or foreign table of the exposed schemas gets around row level security'
);
select ok(
  array['organizations', 'organization_members', 'platform_admins', 'reviews', 'case_studies', 'subscriptions',
        'organization_status_levels', 'upgrade_requests', 'status_level_history', 'subscription_events',
        'expiry_notices', 'notifications', 'email_outbox', 'notification_queue', 'daily_job_runs']
    <@ array(select name::text from exposed_relations where kind in ('r', 'p')),
  'the check above covers every table of the service'
);

-- P: public, with an owner and a member, level B and a pending request. Q: not public, its own
-- owner, level C. One history row each.
select tests.create_organization('P', true);
select tests.create_organization('Q', false);
select tests.add_member('P', 'P owner', 'owner');
select tests.add_member('P', 'P member', 'member');
select tests.add_member('Q', 'Q owner', 'owner');
select tests.create_supabase_user('outsider');
select tests.create_platform_admin('platform admin');
select tests.arrange_level('P', 'B');
select tests.arrange_level('Q', 'C');
insert into public.upgrade_requests (organization_id, target_level, requested_by)
values (tests.get_organization_id('P'), 'C', tests.get_supabase_uid('P owner'));
insert into public.status_level_history (organization_id, level, action)
values (tests.get_organization_id('P'), 'B', 'granted'), (tests.get_organization_id('Q'), 'C', 'granted');

create function pg_temp.orgs_seen(query text)
returns setof uuid
language plpgsql
as $$
begin
  return query execute format(
    'select distinct organization_id from (%s) t where organization_id in (tests.get_organization_id(''P''), tests.get_organization_id(''Q'')) order by 1',
    query);
end;
$$;
grant execute on function pg_temp.orgs_seen(text) to anon, authenticated, service_role;

select tests.clear_authentication();
select throws_ok('select * from public.organization_status_levels', '42501', null, 'anonymous: levels are not a table it can read');
select throws_ok('select * from public.upgrade_requests', '42501', null, 'anonymous: upgrade requests are not a table it can read');
select throws_ok('select * from public.status_level_history', '42501', null, 'anonymous: history is not a table it can read');

select tests.authenticate_as('outsider');
select is_empty($$select * from pg_temp.orgs_seen('select organization_id from public.organization_status_levels')$$, 'outsider: sees no level, not even of the public organization');
select is_empty($$select * from pg_temp.orgs_seen('select organization_id from public.upgrade_requests')$$, 'outsider: sees no upgrade request');
select is_empty($$select * from pg_temp.orgs_seen('select organization_id from public.status_level_history')$$, 'outsider: sees no history');

select tests.authenticate_as('P member');
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.organization_status_levels')$$,
  array[tests.get_organization_id('P')], 'member of P: sees the levels of P only');
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.upgrade_requests')$$,
  array[tests.get_organization_id('P')], 'member of P: sees the upgrade requests of P only');
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.status_level_history')$$,
  array[tests.get_organization_id('P')], 'member of P: sees the history of P only');

select tests.authenticate_as('Q owner');
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.organization_status_levels')$$,
  array[tests.get_organization_id('Q')], 'owner of Q: sees the levels of Q only');

select tests.authenticate_as('platform admin');
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.organization_status_levels')$$,
  $$select unnest(array[tests.get_organization_id('P'), tests.get_organization_id('Q')]) order by 1$$,
  'platform admin: sees the levels of every organization');
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.status_level_history')$$,
  $$select unnest(array[tests.get_organization_id('P'), tests.get_organization_id('Q')]) order by 1$$,
  'platform admin: sees the history of every organization');

select tests.authenticate_as_service_role();
select results_eq($$select * from pg_temp.orgs_seen('select organization_id from public.organization_status_levels')$$,
  $$select unnest(array[tests.get_organization_id('P'), tests.get_organization_id('Q')]) order by 1$$,
  'service role: sees the levels of every organization');

-- Writes go through the SQL functions only: a platform admin, the strongest signed-in caller,
-- has no privilege to write the tables directly.
select tests.authenticate_as('platform admin');
select throws_ok(
  format($$insert into public.organization_status_levels (organization_id, level) values (%L, 'C')$$, tests.get_organization_id('P')),
  '42501', null, 'platform admin: cannot insert a level row directly');
select throws_ok('update public.organization_status_levels set valid_until = null', '42501', null,
  'platform admin: cannot update level rows directly');
select throws_ok('delete from public.organization_status_levels', '42501', null, 'platform admin: cannot delete level rows directly');
select throws_ok(
  format($$insert into public.upgrade_requests (organization_id, target_level, requested_by) values (%L, 'B', auth.uid())$$, tests.get_organization_id('Q')),
  '42501', null, 'platform admin: cannot insert an upgrade request directly');
select throws_ok('update public.upgrade_requests set status = ''approved''', '42501', null,
  'platform admin: cannot approve an upgrade request by updating it');

select tests.authenticate_as('P owner');
select throws_ok('update public.upgrade_requests set status = ''cancelled''', '42501', null,
  'owner of P: cannot change its request directly');
select throws_ok(
  format($$insert into public.status_level_history (organization_id, level, action) values (%L, 'C', 'granted')$$, tests.get_organization_id('P')),
  '42501', null, 'owner of P: cannot write history');

select * from finish();
rollback;
