-- Demo data for `npm run dev` (and `supabase db reset` where Docker exists). The user ids match
-- scripts/stack/demo.ts, which prints ready-to-use tokens for them. Levels are granted through the
-- SQL functions (as the demo platform admin, or as the system for subscriptions), so the history
-- reads like a real one.
--
--   Alpine Dairy      level B, eligible for C (owner@alpine-dairy / member@alpine-dairy): the daily
--                     job tells it it now meets level C's criteria
--   Harbor Roasters   level C (on top of B)
--   Lakeside Pottery  level C at risk: 3 of its 16 reviews leave the 12-month window in 12 days, so
--                     the daily job warns it (Europe/Oslo)
--   Meadow Bakery     level B ending in 45 days, 3 reviews short of C, a renewal request pending
--   Copper Kettle     level A from an active subscription (Asia/Tokyo)
--   Riverbend Creamery level A in a grace period after a failed payment
--   New Leaf Farm     no level, not public

insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-000000000001', 'admin@demo.test'),
  ('00000000-0000-4000-a000-000000000002', 'owner@alpine-dairy.demo.test'),
  ('00000000-0000-4000-a000-000000000003', 'member@alpine-dairy.demo.test'),
  ('00000000-0000-4000-a000-000000000004', 'outsider@demo.test'),
  ('00000000-0000-4000-a000-000000000005', 'owner@harbor-roasters.demo.test'),
  ('00000000-0000-4000-a000-000000000006', 'owner@meadow-bakery.demo.test'),
  ('00000000-0000-4000-a000-000000000007', 'owner@copper-kettle.demo.test'),
  ('00000000-0000-4000-a000-000000000008', 'owner@riverbend.demo.test'),
  ('00000000-0000-4000-a000-000000000009', 'owner@new-leaf.demo.test'),
  ('00000000-0000-4000-a000-00000000000a', 'owner@lakeside-pottery.demo.test')
on conflict (id) do nothing;

insert into public.platform_admins (user_id) values ('00000000-0000-4000-a000-000000000001')
on conflict do nothing;

insert into public.organizations (id, name, time_zone, is_public) values
  ('10000000-0000-4000-a000-000000000001', 'Alpine Dairy', 'Europe/Zurich', true),
  ('10000000-0000-4000-a000-000000000002', 'Harbor Roasters', 'America/New_York', true),
  ('10000000-0000-4000-a000-000000000003', 'Meadow Bakery', 'Europe/Paris', true),
  ('10000000-0000-4000-a000-000000000004', 'Copper Kettle', 'Asia/Tokyo', true),
  ('10000000-0000-4000-a000-000000000005', 'New Leaf Farm', 'UTC', false),
  ('10000000-0000-4000-a000-000000000006', 'Riverbend Creamery', 'Europe/Dublin', true),
  ('10000000-0000-4000-a000-000000000007', 'Lakeside Pottery', 'Europe/Oslo', true)
on conflict (id) do nothing;

insert into public.organization_members (organization_id, user_id, role) values
  ('10000000-0000-4000-a000-000000000001', '00000000-0000-4000-a000-000000000002', 'owner'),
  ('10000000-0000-4000-a000-000000000001', '00000000-0000-4000-a000-000000000003', 'member'),
  ('10000000-0000-4000-a000-000000000002', '00000000-0000-4000-a000-000000000005', 'owner'),
  ('10000000-0000-4000-a000-000000000003', '00000000-0000-4000-a000-000000000006', 'owner'),
  ('10000000-0000-4000-a000-000000000004', '00000000-0000-4000-a000-000000000007', 'owner'),
  ('10000000-0000-4000-a000-000000000006', '00000000-0000-4000-a000-000000000008', 'owner'),
  ('10000000-0000-4000-a000-000000000005', '00000000-0000-4000-a000-000000000009', 'owner'),
  ('10000000-0000-4000-a000-000000000007', '00000000-0000-4000-a000-00000000000a', 'owner')
on conflict do nothing;

-- Reviews: Alpine and Harbor answer almost everything within hours; Meadow has 12 in the year.
insert into public.reviews (organization_id, status, rating, published_at, responded_at)
select org, 'published', 4 + (n % 2), now() - make_interval(days => n * 4), now() - make_interval(days => n * 4) + make_interval(hours => 2 + n % 5)
from (values ('10000000-0000-4000-a000-000000000001'::uuid), ('10000000-0000-4000-a000-000000000002'::uuid)) as o(org),
     generate_series(1, 20) as n;
insert into public.reviews (organization_id, status, rating, published_at, responded_at)
select '10000000-0000-4000-a000-000000000003', 'published', 5, now() - make_interval(days => n * 25), now() - make_interval(days => n * 25) + interval '6 hours'
from generate_series(1, 12) as n;
insert into public.reviews (organization_id, status, rating, published_at)
values ('10000000-0000-4000-a000-000000000001', 'pending', 3, null);
-- Lakeside: 13 recent reviews answered within hours, and 3 from almost a year ago that leave the
-- 12-month window in 12 days: 16 now, 13 then (2 more needed to keep level C's criteria).
insert into public.reviews (organization_id, status, rating, published_at, responded_at)
select '10000000-0000-4000-a000-000000000007'::uuid, 'published', 5, now() - make_interval(days => n * 5), now() - make_interval(days => n * 5) + interval '3 hours'
from generate_series(1, 13) as n
union all
select '10000000-0000-4000-a000-000000000007', 'published', 4, now() - interval '12 months' + interval '12 days', now() - interval '12 months' + interval '12 days 5 hours'
from generate_series(1, 3);

insert into public.case_studies (organization_id, title, is_published, published_at) values
  ('10000000-0000-4000-a000-000000000001', 'Raw-milk cheese at 1,800 m: how we kept the cold chain', true, now() - interval '40 days'),
  ('10000000-0000-4000-a000-000000000002', 'From farm to cup: direct trade with three co-operatives', true, now() - interval '200 days'),
  ('10000000-0000-4000-a000-000000000003', 'Sourdough for 40 restaurants', true, now() - interval '90 days'),
  ('10000000-0000-4000-a000-000000000007', 'Tableware for a fjord-side hotel', true, now() - interval '300 days');

-- Levels B and C, granted by the demo platform admin.
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-000000000001","role":"authenticated"}', true);
select public.grant_status_level('10000000-0000-4000-a000-000000000001', 'B', null, null, 'Site visit and documents checked.');
select public.grant_status_level('10000000-0000-4000-a000-000000000002', 'B', null, null, 'Verified.');
select public.grant_status_level('10000000-0000-4000-a000-000000000002', 'C', null, null, 'Top level: all criteria met.');
select public.grant_status_level('10000000-0000-4000-a000-000000000003', 'B', now() + interval '45 days', null, 'Verified in the previous cycle.');
select public.grant_status_level('10000000-0000-4000-a000-000000000007', 'B', null, null, 'Verified.');
select public.grant_status_level('10000000-0000-4000-a000-000000000007', 'C', null, null, 'Top level: all criteria met.');

-- Level A from subscriptions, applied as the system.
select set_config('request.jwt.claims', '', true);
select public.apply_subscription_event('evt_demo_copper_1', 'sub_demo_copper', '10000000-0000-4000-a000-000000000004',
  'active', now() - interval '10 days', now() + interval '20 days');
select public.apply_subscription_event('evt_demo_riverbend_1', 'sub_demo_riverbend', '10000000-0000-4000-a000-000000000006',
  'active', now() - interval '33 days', now() - interval '3 days');
select public.apply_subscription_event('evt_demo_riverbend_2', 'sub_demo_riverbend', '10000000-0000-4000-a000-000000000006',
  'past_due', now() - interval '3 days', null);

-- Meadow Bakery's owner asks for the renewal of B.
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-000000000006","role":"authenticated"}', true);
select public.create_upgrade_request('10000000-0000-4000-a000-000000000003', 'B',
  'Renewal: this year''s hygiene audit is attached.', array['https://example.org/meadow-bakery/audit-2026.pdf']);
select set_config('request.jwt.claims', '', true);
