-- Every function an API role can execute in the schemas public and private is on an explicit
-- allow-list (the same list as supabase/tests/rls-matrix.test.ts). Functions are not executable by
-- default: the migrations revoke PUBLIC's and Supabase's default grants and grant each function on
-- purpose, so a new function cannot be reached by accident, and one granted by mistake fails here.
-- private holds internal steps of the security-definer API functions, several of which check
-- nothing themselves (private.revoke_level, ...): only the policy and constraint helpers there.
begin;
select plan(4);

create temporary table executable on commit drop as
select r.role, n.nspname || '.' || p.proname || '(' || coalesce((
         select string_agg(format_type(t.oid, null), ',' order by t.ord)
         from unnest(p.proargtypes::oid[]) with ordinality as t(oid, ord)
       ), '') || ')' as fn
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
cross join (values ('anon'), ('authenticated'), ('service_role')) as r(role)
where n.nspname in ('public', 'private')
  and has_function_privilege(r.role, p.oid, 'execute')
  and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e');

create temporary table allowed (fn text, anon boolean, authenticated boolean, service_role boolean) on commit drop;
insert into allowed values
  -- called by policies and check constraints as the caller
  ('private.all_https_urls(text[])', true, true, true),
  ('private.can_manage_org(uuid)', true, true, true),
  ('private.is_org_member(uuid)', true, true, true),
  ('private.is_platform_admin()', true, true, true),
  ('private.is_valid_time_zone(text)', true, true, true),
  ('private.org_role(uuid)', true, true, true),
  -- anyone's reads
  ('public.get_current_status_level(uuid)', true, true, true),
  ('public.get_organization_status(uuid)', true, true, true),
  ('public.status_levels_health()', true, true, true),
  ('public.status_levels_ping()', true, true, true),
  -- signed-in users (each checks who calls it) and the service role
  ('public.approve_upgrade_request(uuid,text)', false, true, true),
  ('public.authorize_daily_job_run()', false, true, true),
  ('public.cancel_upgrade_request(uuid)', false, true, true),
  ('public.check_level_c_criteria(uuid)', false, true, true),
  ('public.create_upgrade_request(uuid,text,text,text[])', false, true, true),
  ('public.get_status_level_history(uuid,integer,integer)', false, true, true),
  ('public.grant_status_level(uuid,text,timestamp with time zone,uuid,text)', false, true, true),
  ('public.list_email_outbox(text,integer,integer)', false, true, true),
  ('public.list_level_c_at_risk(integer,integer,integer)', false, true, true),
  ('public.list_pending_upgrade_requests(integer,integer)', false, true, true),
  ('public.list_upgrade_requests(uuid,text,integer,integer)', false, true, true),
  ('public.project_level_c(uuid,integer)', false, true, true),
  ('public.reject_upgrade_request(uuid,text)', false, true, true),
  ('public.renew_status_level_b(uuid,text)', false, true, true),
  ('public.revoke_status_level(uuid,text,text)', false, true, true),
  ('public.update_status_validity(uuid,text,timestamp with time zone,text)', false, true, true),
  -- the signed-in user's own notifications
  ('public.mark_notifications_read(uuid[])', false, true, false),
  -- the system: subscription events and the daily job
  ('public.apply_subscription_event(text,text,uuid,text,timestamp with time zone,timestamp with time zone)', false, false, true),
  ('public.complete_email_deliveries(jsonb,timestamp with time zone,integer)', false, false, true),
  ('public.ensure_level_a(uuid,uuid)', false, false, true),
  ('public.handle_subscription_status_change(uuid,text,timestamp with time zone,timestamp with time zone)', false, false, true),
  ('public.is_grace_period_ended(uuid)', false, false, true),
  ('public.record_daily_job_run(uuid,text,timestamp with time zone,timestamp with time zone,timestamp with time zone,boolean,jsonb)', false, false, true),
  ('public.run_daily_job_step(text,timestamp with time zone,integer,uuid[],jsonb)', false, false, true),
  ('public.start_grace_period(uuid,integer)', false, false, true);

-- set_eq reports the extra functions (granted but not listed) and the missing ones.
select set_eq(
  $$select fn from executable where role = 'anon'$$,
  $$select fn from allowed where anon$$,
  'anon can execute exactly the functions on its allow-list'
);
select set_eq(
  $$select fn from executable where role = 'authenticated'$$,
  $$select fn from allowed where authenticated$$,
  'authenticated can execute exactly the functions on its allow-list'
);
select set_eq(
  $$select fn from executable where role = 'service_role'$$,
  $$select fn from allowed where service_role$$,
  'service_role can execute exactly the functions on its allow-list'
);

select is_empty(
  $$select r.role || ': ' || n.nspname || '.' || c.relname
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    cross join (values ('anon'), ('authenticated')) as r(role)
    where c.relkind = 'S' and n.nspname in ('public', 'private')
      and (has_sequence_privilege(r.role, c.oid, 'usage') or has_sequence_privilege(r.role, c.oid, 'select')
           or has_sequence_privilege(r.role, c.oid, 'update'))$$,
  'no API role but the service role can use a sequence'
);

select * from finish();
rollback;
