-- The rules of upgrade requests (public.create_upgrade_request): owners and admins of the
-- organization ask for B or C only; one pending request per organization (409, and a unique index
-- under it); C needs an active B (422); B while B is active only within 60 days of its end
-- (422 renewal_too_early); at most 5 requests per user and 10 per organization in 10 minutes (429).
begin;
\ir helpers.psql
select plan(22);

select tests.create_organization('R');
select tests.add_member('R', 'owner', 'owner');
select tests.add_member('R', 'admin', 'admin');
select tests.add_member('R', 'manager', 'manager');
select tests.add_member('R', 'member', 'member');
select tests.create_supabase_user('outsider');
select tests.create_organization('hidden', false);
select tests.add_member('hidden', 'hidden owner', 'owner');
select tests.create_organization('B far from its end');
select tests.add_member('B far from its end', 'owner', 'owner');
select tests.arrange_level('B far from its end', 'B', valid_until => now() + interval '61 days');
select tests.create_organization('B near its end');
select tests.add_member('B near its end', 'owner', 'owner');
select tests.arrange_level('B near its end', 'B', valid_until => now() + interval '59 days');

create function pg_temp.request(organization text, target_level text)
returns text
language sql
as $$
  select format('select public.create_upgrade_request(%L, %L)', tests.get_organization_id(organization), target_level)
$$;
grant execute on function pg_temp.request(text, text) to anon, authenticated, service_role;

-- Who may ask.
select tests.clear_authentication();
select throws_ok(pg_temp.request('R', 'B'), '42501', null, 'anonymous: cannot call create_upgrade_request at all');
select tests.authenticate_as('member');
select tests.throws_api_error(pg_temp.request('R', 'B'), 403, 'not_allowed', 'a member: 403 not_allowed');
select tests.authenticate_as('manager');
select tests.throws_api_error(pg_temp.request('R', 'B'), 403, 'not_allowed', 'a manager: 403 not_allowed');
select tests.authenticate_as('outsider');
select tests.throws_api_error(pg_temp.request('hidden', 'B'), 404, 'organization_not_found',
  'an outsider, for an organization that is not public: 404 organization_not_found');

-- What may be asked for.
select tests.authenticate_as('owner');
select tests.throws_api_error(pg_temp.request('R', 'A'), 400, 'invalid_level', 'target A: 400 invalid_level (A comes with a subscription)');
select tests.throws_api_error(pg_temp.request('R', 'D'), 400, 'invalid_level', 'target D: 400 invalid_level');
select tests.throws_api_error(pg_temp.request('R', 'C'), 422, 'level_c_requires_b', 'C without an active B: 422 level_c_requires_b');
select tests.throws_api_error(pg_temp.request('B far from its end', 'B'), 422, 'renewal_too_early',
  'B while B is active for more than 60 more days: 422 renewal_too_early');
select is((public.create_upgrade_request(tests.get_organization_id('B near its end'), 'B')) ->> 'status', 'pending',
  'B while B ends within 60 days: a pending renewal request');
select is((public.create_upgrade_request(tests.get_organization_id('R'), 'B')) ->> 'status', 'pending',
  'an owner asks for B: a pending request');

-- One pending request per organization.
select tests.authenticate_as('admin');
select tests.throws_api_error(pg_temp.request('R', 'B'), 409, 'request_already_pending',
  'an admin asks for B while the owner''s request is pending: 409 request_already_pending');
select tests.throws_api_error(pg_temp.request('R', 'C'), 409, 'request_already_pending',
  'or for C: 409 request_already_pending');
select tests.become_superuser();
select throws_ok(
  format($$insert into public.upgrade_requests (organization_id, target_level, requested_by) values (%L, 'C', %L)$$,
    tests.get_organization_id('R'), tests.get_supabase_uid('admin')),
  '23505', null, 'a second pending request written directly is refused by the unique index (no race gets around it)'
);
select is(
  array(select action || ' ' || level from public.status_level_history
        where organization_id = tests.get_organization_id('R') order by id),
  array['request_created B'],
  'the created request wrote its history row; the refused ones wrote none'
);
select tests.authenticate_as('owner');
select is((public.cancel_upgrade_request(
  (select id from public.upgrade_requests where organization_id = tests.get_organization_id('R') and status = 'pending'))) ->> 'status',
  'cancelled', 'the owner cancels the pending request');
select is((public.create_upgrade_request(tests.get_organization_id('R'), 'B')) ->> 'status', 'pending',
  'and may ask again: only pending requests count');

-- Rate limits: at most 5 requests per user (across organizations) in 10 minutes.
select tests.become_superuser();
select tests.create_organization('busy ' || i) from generate_series(1, 6) as i;
select tests.add_member('busy ' || i, 'busy owner', 'owner') from generate_series(1, 6) as i;
select tests.authenticate_as('busy owner');
select is(
  array(select (public.create_upgrade_request(tests.get_organization_id('busy ' || i), 'B')) ->> 'status' from generate_series(1, 5) as i),
  array['pending', 'pending', 'pending', 'pending', 'pending'],
  'a user asks in five organizations within 10 minutes'
);
select tests.throws_api_error(pg_temp.request('busy 6', 'B'), 429, 'rate_limited',
  'the sixth request of that user within 10 minutes: 429 rate_limited');

-- ... and 10 per organization (all its owners and admins together).
select tests.become_superuser();
select tests.create_organization('crowded');
select tests.add_member('crowded', 'crowded owner', 'owner');
select tests.add_member('crowded', 'crowded admin ' || i, 'admin') from generate_series(1, 2) as i;
insert into public.upgrade_requests (organization_id, target_level, requested_by, status, decided_at)
select tests.get_organization_id('crowded'), 'B', tests.get_supabase_uid('crowded admin ' || (1 + i % 2)), 'cancelled', now()
from generate_series(1, 10) as i;
select tests.authenticate_as('crowded owner');
select tests.throws_api_error(pg_temp.request('crowded', 'B'), 429, 'rate_limited',
  'an eleventh request for one organization within 10 minutes: 429 rate_limited, though this user asked nothing yet');

select tests.become_superuser();
select is(
  (select count(*)::integer from public.upgrade_requests
   where organization_id in (tests.get_organization_id('busy 6'), tests.get_organization_id('crowded')) and status = 'pending'),
  0,
  'the rate-limited requests were not written'
);

-- C with an active B is a request like any other.
select tests.arrange_level('R', 'B');
select tests.authenticate_as('admin');
select tests.throws_api_error(pg_temp.request('R', 'C'), 409, 'request_already_pending',
  'C with an active B, while a request is pending: still 409 request_already_pending');
select tests.become_superuser();
update public.upgrade_requests set status = 'rejected', decided_at = now(), decision_note = 'pgTAP'
where organization_id = tests.get_organization_id('R') and status = 'pending';
select tests.authenticate_as('admin');
select is((public.create_upgrade_request(tests.get_organization_id('R'), 'C')) ->> 'target_level', 'C',
  'C with an active B and nothing pending: a pending request for C');

select * from finish();
rollback;
