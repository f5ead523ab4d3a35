-- Demo data for `npm run dev` (and `supabase db reset` where Docker exists). The user ids match
-- scripts/stack/demo.ts, which prints ready-to-use tokens for them.

insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-000000000001', 'admin@demo.test'),
  ('00000000-0000-4000-a000-000000000002', 'owner@alpine-dairy.demo.test'),
  ('00000000-0000-4000-a000-000000000003', 'member@alpine-dairy.demo.test'),
  ('00000000-0000-4000-a000-000000000004', 'outsider@demo.test'),
  ('00000000-0000-4000-a000-000000000005', 'owner@harbor-roasters.demo.test'),
  ('00000000-0000-4000-a000-000000000006', 'owner@meadow-bakery.demo.test')
on conflict (id) do nothing;

insert into public.platform_admins (user_id) values ('00000000-0000-4000-a000-000000000001')
on conflict do nothing;

insert into public.organizations (id, name, time_zone, is_public) values
  ('10000000-0000-4000-a000-000000000001', 'Alpine Dairy', 'Europe/Zurich', true),
  ('10000000-0000-4000-a000-000000000002', 'Harbor Roasters', 'America/New_York', true),
  ('10000000-0000-4000-a000-000000000003', 'Meadow Bakery', 'Europe/Paris', true),
  ('10000000-0000-4000-a000-000000000004', 'Copper Kettle', 'Asia/Tokyo', true),
  ('10000000-0000-4000-a000-000000000005', 'New Leaf Farm', 'UTC', false)
on conflict (id) do nothing;

insert into public.organization_members (organization_id, user_id, role) values
  ('10000000-0000-4000-a000-000000000001', '00000000-0000-4000-a000-000000000002', 'owner'),
  ('10000000-0000-4000-a000-000000000001', '00000000-0000-4000-a000-000000000003', 'member'),
  ('10000000-0000-4000-a000-000000000002', '00000000-0000-4000-a000-000000000005', 'owner'),
  ('10000000-0000-4000-a000-000000000003', '00000000-0000-4000-a000-000000000006', 'owner')
on conflict do nothing;
