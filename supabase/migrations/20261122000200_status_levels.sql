-- Status levels: the level rows, their append-only history, upgrade requests, the bookkeeping of
-- the daily job and of subscription events, and the review rollup the level C check reads.
-- Rules that a race could get around are constraints and unique indexes here; the SQL functions
-- (next migrations) are the only writers for API roles.

create table public.organization_status_levels (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  level text not null check (level in ('A', 'B', 'C')),
  is_active boolean not null default true,
  valid_from timestamptz not null default now(),
  valid_until timestamptz,
  granted_by uuid references auth.users (id),
  granted_at timestamptz not null default now(),
  subscription_id uuid references public.subscriptions (id),
  notes text check (char_length(notes) <= 2000),
  last_verified_at timestamptz,
  revoked_by uuid references auth.users (id),
  revoked_at timestamptz,
  revoke_reason text check (char_length(revoke_reason) <= 2000),
  ended_at timestamptz,
  end_reason text check (end_reason in ('revoked', 'expired', 'grace_ended')),
  in_grace boolean not null default false,
  updated_at timestamptz not null default now(),
  constraint level_c_is_permanent check (level <> 'C' or valid_until is null),
  constraint level_b_has_validity check (level <> 'B' or valid_until is not null),
  constraint level_a_has_subscription check (level <> 'A' or subscription_id is not null),
  constraint only_level_a_has_grace check (level = 'A' or not in_grace),
  constraint active_rows_have_not_ended check (is_active = (ended_at is null)),
  constraint ended_rows_say_why check (ended_at is null or end_reason is not null),
  constraint revoked_rows_say_when check ((end_reason = 'revoked') = (revoked_at is not null))
);
comment on table public.organization_status_levels is
  'A level an organization holds or held. Active means is_active and (valid_until is null or valid_until > now()): every read uses the time predicate.';
comment on column public.organization_status_levels.granted_by is 'null: granted by the system (subscriptions).';
comment on column public.organization_status_levels.in_grace is
  'Level A whose validity comes from a grace period after a failed payment: when it lapses, it ends as grace_ended. Set with valid_until, so every path that ends the row agrees.';

-- At most one active row per (organization, level): concurrent grants cannot produce two.
create unique index organization_status_levels_one_active
  on public.organization_status_levels (organization_id, level) where is_active;
-- The daily job finds lapsed and soon-expiring rows through this, walking it in (valid_until, id)
-- order with a cursor from batch to batch.
create index organization_status_levels_active_until
  on public.organization_status_levels (valid_until, id) where is_active and valid_until is not null;
create index organization_status_levels_org on public.organization_status_levels (organization_id, level);
create index organization_status_levels_subscription
  on public.organization_status_levels (subscription_id) where subscription_id is not null;

-- Evidence links: https only, no credentials (user:pass@) in the authority, no blanks or spaces,
-- bounded length.
create or replace function private.all_https_urls(urls text[])
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(bool_and(u is not null and u ~ '^https://[^\s/?#@]+([/?#]\S*)?$' and char_length(u) <= 2048), true)
  from unnest(urls) as u
$$;

create table public.upgrade_requests (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  target_level text not null check (target_level in ('B', 'C')),
  status text not null default 'pending' check (status in ('pending', 'approved', 'rejected', 'cancelled')),
  message text check (char_length(message) <= 2000),
  evidence_urls text[] not null default '{}',
  requested_by uuid not null references auth.users (id),
  created_at timestamptz not null default now(),
  decided_by uuid references auth.users (id),
  decided_at timestamptz,
  decision_note text check (char_length(decision_note) <= 2000),
  granted_status_level_id uuid references public.organization_status_levels (id),
  constraint evidence_urls_bounded check (cardinality(evidence_urls) <= 10),
  constraint evidence_urls_https check (private.all_https_urls(evidence_urls)),
  constraint decided_requests_have_time check ((status = 'pending') = (decided_at is null)),
  constraint rejections_have_a_note check (status <> 'rejected' or decision_note ~ '\S')
);
comment on column public.upgrade_requests.decided_by is 'Who approved, rejected or cancelled it.';

-- At most one pending request per organization, also under concurrency.
create unique index upgrade_requests_one_pending on public.upgrade_requests (organization_id) where status = 'pending';
create index upgrade_requests_queue on public.upgrade_requests (created_at, id) where status = 'pending';
create index upgrade_requests_org on public.upgrade_requests (organization_id, created_at desc);
-- The rate limit counts a user's recent requests through this.
create index upgrade_requests_requester on public.upgrade_requests (requested_by, created_at desc);

create table public.status_level_history (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  status_level_id uuid references public.organization_status_levels (id),
  upgrade_request_id uuid references public.upgrade_requests (id),
  level text not null check (level in ('A', 'B', 'C')),
  action text not null check (action in (
    'granted', 'renewed', 'revoked', 'expired', 'grace_started', 'grace_ended', 'validity_updated',
    'request_created', 'request_approved', 'request_rejected', 'request_cancelled'
  )),
  actor_id uuid,
  reason text,
  notes text,
  old_valid_until timestamptz,
  new_valid_until timestamptz,
  subscription_event_id text,
  -- No foreign key: the subscriptions table is the platform's, which may delete rows, and the
  -- audit trail must keep saying which subscription caused a change.
  subscription_id uuid,
  created_at timestamptz not null default now()
);
comment on column public.status_level_history.subscription_id is 'For level A: the subscription whose state caused this change.';
comment on table public.status_level_history is 'Append-only audit trail: one row per change, written in the same transaction. actor_id null = the system.';
create index status_level_history_org on public.status_level_history (organization_id, created_at desc, id desc);
create index status_level_history_level on public.status_level_history (status_level_id) where status_level_id is not null;

create or replace function private.history_is_append_only()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'PT403',
    message = 'history_append_only: status level history cannot be changed or deleted',
    hint = 'Write a new history row instead.';
end;
$$;

create trigger status_level_history_no_update_delete
  before update or delete on public.status_level_history
  for each row execute function private.history_is_append_only();
create trigger status_level_history_no_truncate
  before truncate on public.status_level_history
  for each statement execute function private.history_is_append_only();

-- Subscription events applied (idempotency): the event id is recorded in the same transaction
-- as its effect, so a replay finds it and changes nothing.
create table public.subscription_events (
  event_id text primary key check (char_length(event_id) between 1 and 200),
  subscription_id uuid not null references public.subscriptions (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  status text not null check (status in ('active', 'past_due', 'canceled', 'unpaid', 'incomplete')),
  occurred_at timestamptz not null,
  current_period_end timestamptz,
  grace_days integer not null default 14 check (grace_days between 1 and 90),
  -- baseline: the platform's record of the subscription before its first event (see apply_subscription_event).
  source text not null default 'webhook' check (source in ('webhook', 'service', 'baseline')),
  outcome text not null default 'applied' check (outcome in ('applied', 'stale')),
  effects jsonb not null default '[]'::jsonb,
  reply jsonb,
  received_at timestamptz not null default now()
);
comment on column public.subscription_events.reply is 'What the first delivery was answered: a replay gets the same answer (outcome duplicate) and changes nothing.';
comment on column public.subscription_events.outcome is 'stale: older than an event already applied; recorded, and folded in without changing status or period.';
create index subscription_events_fold on public.subscription_events (subscription_id, occurred_at, event_id);

-- Expiry notices: exactly one per (level row, validity end, threshold). The validity end is part
-- of the key so a renewed level gets its notices again for its new end date.
-- No foreign keys, on purpose: only the daily job writes here, set-based, from level rows it has
-- just read, and the per-row checks of two foreign keys were more than half the cost of the
-- notice step (100,000 notices: 258 ms of 473 ms per batch of 5,000). The cascade they gave is a
-- statement trigger on organization_status_levels instead (daily job migration).
-- Its natural key is its primary key (no surrogate id): one index less to maintain per notice.
create table public.expiry_notices (
  status_level_id uuid not null,
  organization_id uuid not null,
  level text not null check (level in ('A', 'B', 'C')),
  valid_until timestamptz not null,
  threshold_days integer not null check (threshold_days in (60, 30, 7, 1)),
  state text not null check (state in ('sent', 'skipped')),
  created_at timestamptz not null default now(),
  primary key (status_level_id, valid_until, threshold_days)
);
create index expiry_notices_org on public.expiry_notices (organization_id, created_at desc);

-- In-app notifications for the organization's owners and admins.
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  kind text not null check (kind in ('expiry_notice', 'level_expired', 'grace_ended', 'level_granted', 'level_revoked')),
  title text not null,
  body text not null,
  data jsonb not null default '{}'::jsonb,
  dedupe_key text not null,
  created_at timestamptz not null default now(),
  read_at timestamptz,
  unique (user_id, dedupe_key)
);
create index notifications_user on public.notifications (user_id, created_at desc);

-- E-mail outbox: rendered messages waiting for, or done with, delivery.
create table public.email_outbox (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  recipient text not null,
  kind text not null,
  subject text not null,
  body_text text not null,
  dedupe_key text not null unique,
  state text not null default 'pending' check (state in ('pending', 'sent', 'failed', 'dead')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  provider_message_id text,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sent_rows_have_time check ((state = 'sent') = (sent_at is not null))
);
create index email_outbox_due on public.email_outbox (next_attempt_at) where state in ('pending', 'failed');
create index email_outbox_dead on public.email_outbox (updated_at desc) where state = 'dead';

-- Published reviews per organization and UTC day, kept by statement-level triggers, so the
-- level C check sums at most ~366 rows whatever the number of reviews (exact window edges are
-- read from the reviews themselves).
create table private.review_daily_stats (
  organization_id uuid not null,
  day date not null,
  published_count integer not null default 0,
  answered_count integer not null default 0,
  response_seconds double precision not null default 0,
  primary key (organization_id, day)
);

create index reviews_published_by_org on public.reviews (organization_id, published_at)
  include (responded_at) where status = 'published';

-- One function for the three statement triggers; each sees only its own transition tables, so
-- the source rows are chosen by TG_OP and the upsert runs as dynamic SQL.
create or replace function private.review_stats_apply()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  source text := case tg_op
    when 'INSERT' then 'select organization_id, status, published_at, responded_at, 1 as sign from new_rows'
    when 'DELETE' then 'select organization_id, status, published_at, responded_at, -1 as sign from old_rows'
    else 'select organization_id, status, published_at, responded_at, 1 as sign from new_rows
          union all select organization_id, status, published_at, responded_at, -1 from old_rows'
  end;
begin
  -- Sorted upserts: concurrent statements lock the day rows in the same order (no deadlocks).
  execute format($q$
    insert into private.review_daily_stats as s (organization_id, day, published_count, answered_count, response_seconds)
    select organization_id, day, sum(sign)::integer, sum(sign * answered)::integer, sum(sign * seconds)
    from (
      select organization_id, (published_at at time zone 'UTC')::date as day, sign,
             (responded_at is not null)::integer as answered,
             coalesce(extract(epoch from responded_at - published_at), 0)::double precision as seconds
      from (%s) r
      where status = 'published' and published_at is not null
    ) c
    group by organization_id, day
    having sum(sign) <> 0 or sum(sign * answered) <> 0 or sum(sign * seconds) <> 0
    order by organization_id, day
    on conflict (organization_id, day) do update set
      published_count = s.published_count + excluded.published_count,
      answered_count = s.answered_count + excluded.answered_count,
      response_seconds = s.response_seconds + excluded.response_seconds
  $q$, source);
  return null;
end;
$$;

create trigger reviews_stats_after_insert after insert on public.reviews
  referencing new table as new_rows
  for each statement execute function private.review_stats_apply();
create trigger reviews_stats_after_update after update on public.reviews
  referencing old table as old_rows new table as new_rows
  for each statement execute function private.review_stats_apply();
create trigger reviews_stats_after_delete after delete on public.reviews
  referencing old table as old_rows
  for each statement execute function private.review_stats_apply();

-- Row-level security: default deny. Reads for members of the organization and platform admins;
-- the public sees levels only through get_organization_status / get_current_status_level.
-- No insert/update/delete policies: API roles change data only through the SQL functions.
alter table public.organization_status_levels enable row level security;
alter table public.upgrade_requests enable row level security;
alter table public.status_level_history enable row level security;
alter table public.subscription_events enable row level security;
alter table public.expiry_notices enable row level security;
alter table public.notifications enable row level security;
alter table public.email_outbox enable row level security;
alter table private.review_daily_stats enable row level security;

create policy organization_status_levels_read on public.organization_status_levels for select to authenticated
  using (private.is_org_member(organization_id) or (select private.is_platform_admin()));
create policy upgrade_requests_read on public.upgrade_requests for select to authenticated
  using (private.is_org_member(organization_id) or (select private.is_platform_admin()));
create policy status_level_history_read on public.status_level_history for select to authenticated
  using (private.is_org_member(organization_id) or (select private.is_platform_admin()));
create policy subscription_events_read on public.subscription_events for select to authenticated
  using ((select private.is_platform_admin()));
create policy expiry_notices_read on public.expiry_notices for select to authenticated
  using (private.can_manage_org(organization_id) or (select private.is_platform_admin()));
create policy notifications_read_own on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy email_outbox_read on public.email_outbox for select to authenticated
  using ((select private.is_platform_admin()));

revoke all on public.organization_status_levels, public.upgrade_requests, public.status_level_history,
  public.subscription_events, public.expiry_notices, public.notifications, public.email_outbox
  from anon, authenticated, service_role;
grant select on public.organization_status_levels, public.upgrade_requests, public.status_level_history,
  public.subscription_events, public.expiry_notices, public.notifications, public.email_outbox
  to authenticated;
grant all on public.organization_status_levels, public.upgrade_requests, public.subscription_events,
  public.expiry_notices, public.notifications, public.email_outbox to service_role;
-- History: the service role may add rows, never change or remove them (the trigger also stops
-- the table owner).
grant select, insert on public.status_level_history to service_role;
revoke all on private.review_daily_stats from anon, authenticated, service_role;
grant select on private.review_daily_stats to service_role;

-- Internal functions stay internal (see private.seal_functions in the platform tables migration).
select private.seal_functions();
