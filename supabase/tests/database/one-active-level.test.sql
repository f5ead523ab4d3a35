-- One active row per (organization, level). A partial unique index holds it, so two grants that
-- race each other cannot both commit, whatever the functions check before they insert; the
-- grant function answers 409 level_already_active before it gets that far.
begin;
\ir helpers.psql
select plan(10);

select ok(
  exists (
    select 1 from pg_index i
    where i.indrelid = 'public.organization_status_levels'::regclass
      and i.indisunique and i.indisvalid and i.indimmediate
      and array(select a.attname::text from unnest(i.indkey) with ordinality as k(attnum, ord)
                join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.ord)
          = array['organization_id', 'level']
      and pg_get_expr(i.indpred, i.indrelid) = 'is_active'
  ),
  'organization_status_levels has a unique index on (organization_id, level) where is_active'
);

select tests.create_organization('O');
select tests.create_organization('other');
select tests.create_platform_admin('platform admin');
select tests.arrange_level('O', 'B');

-- As the table owner: nothing but the index stands in the way.
select throws_ok(
  format($$insert into public.organization_status_levels (organization_id, level, valid_until) values (%L, 'B', now() + interval '1 year')$$,
    tests.get_organization_id('O')),
  '23505', null, 'a second active B of the same organization is refused by the unique index'
);
select lives_ok(
  format($$insert into public.organization_status_levels (organization_id, level, valid_until, is_active, ended_at, end_reason)
           values (%L, 'B', now() - interval '1 day', false, now(), 'expired')$$, tests.get_organization_id('O')),
  'an ended B beside the active one is fine: the index covers active rows only'
);
select lives_ok(
  format($$insert into public.organization_status_levels (organization_id, level) values (%L, 'C')$$, tests.get_organization_id('O')),
  'an active C beside the active B is fine: one active row per level'
);
select lives_ok(
  format($$insert into public.organization_status_levels (organization_id, level, valid_until) values (%L, 'B', now() + interval '1 year')$$,
    tests.get_organization_id('other')),
  'another organization has its own active B'
);

select tests.authenticate_as('platform admin');
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'B')$$, tests.get_organization_id('O')),
  409, 'level_already_active', 'granting B while B is active: 409 level_already_active'
);
select tests.throws_api_error(
  format($$select public.grant_status_level(%L, 'C')$$, tests.get_organization_id('O')),
  409, 'level_already_active', 'granting C while C is active: 409 level_already_active'
);
select lives_ok(
  format($$select public.revoke_status_level(%L, 'B', 'pgTAP: revoked to grant it again')$$, tests.get_organization_id('O')),
  'a platform admin revokes B'
);
select lives_ok(
  format($$select public.grant_status_level(%L, 'B')$$, tests.get_organization_id('O')),
  'and grants it again'
);

select tests.become_superuser();
select is(
  (select count(*)::integer from public.organization_status_levels
   where organization_id = tests.get_organization_id('O') and level = 'B' and is_active),
  1,
  'after revoke and grant, the organization has exactly one active B'
);

select * from finish();
rollback;
