-- Level C needs an active level B at the moment it is granted: a platform admin granting C to an
-- organization that meets every measured criterion but has no active B (none, lapsed, or revoked)
-- gets 422 level_c_requires_b, and no C row is written.
begin;
\ir helpers.psql
select plan(9);

select tests.create_platform_admin('platform admin');
select tests.create_organization('no B');
select tests.create_organization('lapsed B');
select tests.create_organization('revoked B');
select tests.create_organization('B, no criteria');
select tests.create_organization('B and criteria');
select tests.add_member('B and criteria', 'owner', 'owner');
select tests.meet_level_c_criteria(o) from unnest(array['no B', 'lapsed B', 'revoked B', 'B and criteria']) as o;
-- Still marked active, but its validity ended yesterday (the daily job has not run yet).
select tests.arrange_level('lapsed B', 'B', valid_until => now() - interval '1 day');
select tests.arrange_level('revoked B', 'B', is_active => false);
select tests.arrange_level('B, no criteria', 'B');
select tests.arrange_level('B and criteria', 'B');

select tests.authenticate_as('platform admin');
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'C')$$, tests.get_organization_id('no B')),
  422, 'level_c_requires_b', 'C without any B: 422 level_c_requires_b'
);
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'C')$$, tests.get_organization_id('lapsed B')),
  422, 'level_c_requires_b', 'C with a B whose validity has passed: 422 level_c_requires_b'
);
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'C')$$, tests.get_organization_id('revoked B')),
  422, 'level_c_requires_b', 'C with an ended B: 422 level_c_requires_b'
);
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'C')$$, tests.get_organization_id('B, no criteria')),
  422, 'level_c_criteria_not_met', 'C with an active B but without the measured criteria: 422 level_c_criteria_not_met'
);

select tests.authenticate_as('owner');
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'C')$$, tests.get_organization_id('B and criteria')),
  403, 'not_allowed', 'an owner cannot grant C to their own organization: 403 not_allowed'
);

select tests.authenticate_as('platform admin');
select is(
  (public.grant_status_level(tests.get_organization_id('B and criteria'), 'C')) ->> 'level',
  'C',
  'C with an active B and the criteria: granted'
);

select tests.become_superuser();
select is(
  array(select o.identifier || ': ' || l.level from public.organization_status_levels l
        join tests.organization_ids o on o.id = l.organization_id
        where l.is_active and l.level = 'C' order by 1),
  array['B and criteria: C'],
  'the refused grants wrote no C row'
);
select is(
  (select count(*)::integer from public.status_level_history h
   where h.organization_id = tests.get_organization_id('B and criteria') and h.level = 'C' and h.action = 'granted'
     and h.actor_id = tests.get_supabase_uid('platform admin')),
  1,
  'the grant of C is in the history, with the platform admin as its actor'
);
select is(
  (select count(*)::integer from public.status_level_history h join tests.organization_ids o on o.id = h.organization_id
   where o.identifier <> 'B and criteria' and h.level = 'C'),
  0,
  'the refused grants wrote no history'
);

select * from finish();
rollback;
