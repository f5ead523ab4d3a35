import path from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoOrganizations, demoUsers } from "../../scripts/stack/demo.ts";
import { migrate, projectRoot } from "../../scripts/stack/migrate.ts";
import { createDatabase, databaseUrl, dropDatabase } from "../../scripts/stack/postgres.ts";
import { stack } from "../../scripts/test/node-harness.ts";

/** supabase/seed.sql on a fresh database of its own: the demo `npm run dev` shows is what it says. */
const adminUrl = databaseUrl(stack.databaseUrl, "postgres");
const name = `${stack.databaseName}_seed`;
let sql: postgres.Sql;

beforeAll(async () => {
  await createDatabase(adminUrl, name);
  await migrate(databaseUrl(stack.databaseUrl, name), { seedFile: path.join(projectRoot, "supabase", "seed.sql"), localBootstrap: true });
  sql = postgres(databaseUrl(stack.databaseUrl, name), { max: 2, onnotice: () => {} });
}, 60_000);

afterAll(async () => {
  await sql?.end({ timeout: 2 });
  await dropDatabase(adminUrl, name);
});

const level = async (org: string) => (await sql`select public.get_current_status_level(${org}) as l`)[0]!.l as string;
const criteria = async (org: string) => (await sql`select public.check_level_c_criteria(${org}) as c`)[0]!.c as Record<string, any>;

describe("supabase/seed.sql", () => {
  it("has organizations at each level", async () => {
    expect(await level(demoOrganizations.harborRoasters)).toBe("C");
    expect(await level(demoOrganizations.alpineDairy)).toBe("B");
    expect(await level(demoOrganizations.meadowBakery)).toBe("B");
    expect(await level(demoOrganizations.copperKettle)).toBe("A");
    expect(await level(demoOrganizations.newLeafFarm)).toBe("0");
  });

  it("has one organization eligible for C and one 3 reviews short", async () => {
    expect((await criteria(demoOrganizations.alpineDairy)).meets_criteria).toBe(true);
    const meadow = await criteria(demoOrganizations.meadowBakery);
    expect(meadow.meets_criteria).toBe(false);
    expect(meadow.items.review_count).toMatchObject({ value: 12, met: false, missing: "3 more published reviews in the last 12 months" });
  });

  it("has a grace period running, a pending renewal request and a history", async () => {
    const [sub] = await sql`select status, grace_until from public.subscriptions where provider_subscription_id = 'sub_demo_riverbend'`;
    expect(sub!.status).toBe("past_due");
    expect(sub!.grace_until.getTime()).toBeGreaterThan(Date.now());
    const pending = await sql`select target_level, requested_by from public.upgrade_requests where status = 'pending'`;
    expect(pending.map((r) => r.target_level)).toEqual(["B"]);
    const history = await sql`select count(*)::int as n from public.status_level_history where actor_id = ${demoUsers.platformAdmin.id}`;
    expect(history[0]!.n).toBe(6);
  });

  it("has a level C holder at risk and an organization that now meets level C's criteria: the daily job tells both, once", async () => {
    const projection = async (org: string) =>
      (await sql`select meets_now, first_failing_on, failing from private.level_c_projection_for(${[org]}::uuid[], 30)`)[0]!;
    const lakeside = await projection(demoOrganizations.lakesidePottery);
    expect(lakeside.meets_now).toBe(true);
    expect(lakeside.first_failing_on).not.toBeNull();
    expect(lakeside.failing).toMatchObject([{ criterion: "review_count", value_now: 16, keep: expect.stringMatching(/^2 more published reviews before /) }]);
    expect(await level(demoOrganizations.lakesidePottery)).toBe("C");
    expect((await projection(demoOrganizations.harborRoasters)).first_failing_on).toBeNull();

    // As `npm run job:daily` runs it: the level C step, then the fan-out of what it queued.
    const step = async () => (await sql`select public.run_daily_job_step('level_c_notices') as r`)[0]!.r;
    expect(await step()).toMatchObject({ evaluated: 4, at_risk_notices: 1, eligible_notices: 1, skipped: 0, more: false });
    await sql`select public.run_daily_job_step('fan_out')`;
    const told = await sql`
      select o.name, n.kind, u.email from public.notifications n
      join public.organizations o on o.id = n.organization_id join auth.users u on u.id = n.user_id
      where n.kind like 'level_c_%' order by o.name`;
    expect(told.map((n) => [n.name, n.kind, n.email])).toEqual([
      ["Alpine Dairy", "level_c_eligible", "owner@alpine-dairy.demo.test"],
      ["Lakeside Pottery", "level_c_at_risk", "owner@lakeside-pottery.demo.test"],
    ]);
    const mails = await sql`select kind from public.email_outbox where kind like 'level_c_%' order by kind`;
    expect(mails.map((m) => m.kind)).toEqual(["level_c_at_risk", "level_c_eligible"]);
    expect(await step()).toMatchObject({ at_risk_notices: 0, eligible_notices: 0 });
  });
});
