-- The API roles' statement timeouts are shorter than the Worker's dependency timeout
-- (DEPENDENCY_TIMEOUT_MS, 5 s; the Worker refuses one not longer than DATABASE_STATEMENT_TIMEOUT_MS,
-- 4 s): a write the Worker gave up on is cancelled and rolled back by the database, never
-- committed after the client was answered 503. A Supabase project starts with anon 3 s,
-- authenticated 8 s and service_role unset (the authenticator's 8 s).
--
-- PostgREST (11.1 and later) applies the impersonated role's settings to each request's
-- transaction; it reads them with its configuration, hence the reload.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '4s';
alter role service_role set statement_timeout = '4s';

notify pgrst, 'reload config';
