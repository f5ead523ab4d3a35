import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { exec, fixtures, sql, stack } from "../../scripts/test/node-harness.ts";
import { migrate } from "../../scripts/stack/migrate.ts";
import { createDatabase, databaseUrl, dropDatabase } from "../../scripts/stack/postgres.ts";
import { DAY, fromNow, rpcOk } from "./helpers.ts";

/**
 * The service lives beside the platform's tables without getting in the way: the platform can
 * still delete what this service's rows refer to, and the migrations check the platform's tables
 * instead of changing them. (The real Supabase CLI's push onto such databases is tested in
 * scripts/test/supabase-cli.test.ts.)
 */
const adminUrl = (() => {
  const url = new URL(stack.databaseUrl);
  url.pathname = "/postgres";
  return url.toString();
})();
const scratch: string[] = [];
async function scratchDatabase(): Promise<{ url: string; sql: postgres.Sql }> {
  const name = `status_levels_contract_${Date.now().toString(36)}_${scratch.length}_${process.pid}`;
  await createDatabase(adminUrl, name);
  scratch.push(name);
  const url = databaseUrl(adminUrl, name);
  return { url, sql: postgres(url, { max: 1, onnotice: () => {} }) };
}
afterAll(async () => {
  for (const name of scratch) await dropDatabase(adminUrl, name);
});

describe("the platform can still delete what this service's rows refer to", () => {
  it("an organization with levels, history, requests, events and notices; a subscription that gave level A; users who granted, revoked, asked and decided", async () => {
    const o = await fixtures.orgWithPeople();
    const sub = await fixtures.subscription(o.orgId, { status: "active", currentPeriodEnd: await fromNow(30 * DAY) });
    await sql`select public.ensure_level_a(${o.orgId}, ${sub.id})`;
    await rpcOk(o.platformAdmin.token, "grant_status_level", { p_organization_id: o.orgId, p_level: "B" });
    const request = await rpcOk(o.owner.token, "create_upgrade_request", { p_organization_id: o.orgId, p_target_level: "C" });
    await rpcOk(o.owner.token, "cancel_upgrade_request", { p_request_id: request.id });
    const historyBefore = (await exec<{ n: number }>("select count(*)::int as n from public.status_level_history where organization_id = $1", [o.orgId]))[0]!.n;

    // Users: the platform admin who granted B, the owner who asked and cancelled.
    await exec("delete from auth.users where id = any($1::uuid[])", [[o.platformAdmin.id, o.owner.id]]);
    const [level] = await exec<{ granted_by: string | null }>("select granted_by from public.organization_status_levels where organization_id = $1 and level = 'B'", [o.orgId]);
    expect(level!.granted_by).toBeNull();
    const [req] = await exec<{ requested_by: string | null; decided_by: string | null }>("select requested_by, decided_by from public.upgrade_requests where id = $1", [request.id]);
    expect(req).toEqual({ requested_by: null, decided_by: null });

    // The subscription level A came from (its events go with it; the level row keeps its id).
    await exec("delete from public.subscriptions where id = $1", [sub.id]);
    // The organization: its levels, requests and notices go with it; its audit trail stays.
    await exec("delete from public.organizations where id = $1", [o.orgId]);
    const left = await exec<{ levels: number; requests: number; history: number }>(
      `select (select count(*) from public.organization_status_levels where organization_id = $1)::int as levels,
              (select count(*) from public.upgrade_requests where organization_id = $1)::int as requests,
              (select count(*) from public.status_level_history where organization_id = $1)::int as history`,
      [o.orgId],
    );
    expect(left[0]).toEqual({ levels: 0, requests: 0, history: historyBefore });
  });
});

describe("the migrations and the platform's own tables", () => {
  it("where a platform table lacks a column the service uses, the first migration fails naming it, and nothing is applied", async () => {
    const db = await scratchDatabase();
    try {
      // What a real project has: Supabase's roles and auth schema, and the platform's tables, one short of a column.
      await migrateBootstrapOnly(db.url);
      await db.sql.unsafe(`create table public.organizations (id uuid primary key, name text not null, is_public boolean not null default true)`);
      const error = await migrate(db.url).then(
        () => null,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(/lack what the status-levels service uses: organizations\.time_zone text/);
      const applied = await db.sql`select count(*)::int as n from supabase_migrations.schema_migrations`;
      expect(applied[0]!.n).toBe(0);
      expect((await db.sql`select to_regnamespace('private') as s`)[0]!.s).toBeNull();
      expect((await db.sql`select to_regclass('public.organization_status_levels') as t`)[0]!.t).toBeNull();
    } finally {
      await db.sql.end();
    }
  });

  it("outside the local stack no bootstrap runs; a migration the Supabase CLI recorded (no checksum) is taken as applied, not as changed", async () => {
    const db = await scratchDatabase();
    try {
      // Not a Supabase database, and migrate() was not told it is the local stack: it does not
      // make one (no roles, no auth schema, no password set), the contract check says so.
      const error = await migrate(db.url).then(() => null, (e: Error) => e);
      expect(error?.message).toMatch(/auth\.users is missing/);
      expect((await db.sql`select to_regclass('auth.users') as t`)[0]!.t).toBeNull();

      await migrateBootstrapOnly(db.url);
      expect((await migrate(db.url)).applied).toHaveLength(6);
      await db.sql`update supabase_migrations.schema_migrations set checksum = null`;
      const warnings: string[] = [];
      const original = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((chunk: string) => (warnings.push(String(chunk)), true)) as typeof process.stderr.write;
      try {
        expect((await migrate(db.url)).applied).toEqual([]);
      } finally {
        process.stderr.write = original;
      }
      expect(warnings.join("")).not.toMatch(/changed after it was applied/);
    } finally {
      await db.sql.end();
    }
  });
});

/** Supabase's roles and auth schema only (what a project has before our first migration). */
async function migrateBootstrapOnly(url: string): Promise<void> {
  const { readFile } = await import("node:fs/promises");
  const path = await import("node:path");
  const { projectRoot } = await import("../../scripts/stack/migrate.ts");
  const bootstrap = await readFile(path.join(projectRoot, "scripts", "stack", "supabase-bootstrap.sql"), "utf8");
  const db = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await db.unsafe(bootstrap);
  } finally {
    await db.end();
  }
}
