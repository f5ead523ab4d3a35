-- status_level_history is append-only: every change writes its row in the same transaction, and
-- nobody - the table owner included - can change, delete or truncate a row (403
-- history_append_only from a trigger; the API roles have no such privilege at all).
begin;
\ir helpers.psql
select plan(12);

-- Truncate takes the table's ACCESS EXCLUSIVE lock before its trigger refuses: first, while this
-- transaction holds nothing that others wait for, and bounded, as other tests write history meanwhile.
set local lock_timeout = '10s';
select tests.throws_api_error(
  'truncate public.status_level_history',
  403, 'history_append_only', 'the table owner cannot truncate history: 403 history_append_only'
);

select tests.create_organization('O');
select tests.create_platform_admin('platform admin');

select tests.authenticate_as('platform admin');
select lives_ok(
  format($$select public.grant_status_level(%L, 'B', p_notes => 'pgTAP grant')$$, tests.get_organization_id('O')),
  'a platform admin grants B'
);
select tests.become_superuser();
select results_eq(
  format($$select action, level, notes, actor_id from public.status_level_history where organization_id = %L$$,
    tests.get_organization_id('O')),
  format($$values ('granted'::text, 'B'::text, 'pgTAP grant'::text, %L::uuid)$$, tests.get_supabase_uid('platform admin')),
  'the grant wrote its history row in the same transaction'
);

-- The table owner (what migrations and the platform's backend run as).
select tests.throws_api_error(
  format($$update public.status_level_history set notes = 'tampered' where organization_id = %L$$, tests.get_organization_id('O')),
  403, 'history_append_only', 'the table owner cannot update history: 403 history_append_only'
);
select tests.throws_api_error(
  format($$delete from public.status_level_history where organization_id = %L$$, tests.get_organization_id('O')),
  403, 'history_append_only', 'the table owner cannot delete history: 403 history_append_only'
);

select tests.authenticate_as_service_role();
select throws_ok('update public.status_level_history set notes = ''tampered''', '42501', null,
  'the service role cannot update history');
select throws_ok('delete from public.status_level_history', '42501', null, 'the service role cannot delete history');
select throws_ok('truncate public.status_level_history', '42501', null, 'the service role cannot truncate history');

select tests.authenticate_as('platform admin');
select throws_ok('update public.status_level_history set notes = ''tampered''', '42501', null,
  'a platform admin cannot update history');
select throws_ok('delete from public.status_level_history', '42501', null, 'a platform admin cannot delete history');
select throws_ok(
  format($$insert into public.status_level_history (organization_id, level, action) values (%L, 'C', 'granted')$$, tests.get_organization_id('O')),
  '42501', null, 'a platform admin cannot write history directly'
);

select tests.become_superuser();
select results_eq(
  format($$select action, level, notes from public.status_level_history where organization_id = %L$$, tests.get_organization_id('O')),
  $$values ('granted'::text, 'B'::text, 'pgTAP grant'::text)$$,
  'after every attempt, the history row is there, unchanged'
);

select * from finish();
rollback;
