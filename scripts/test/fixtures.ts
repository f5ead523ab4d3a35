import { userToken, type SigningKeys } from "../stack/tokens.ts";

/**
 * Test data, made by each test for itself (own users and organizations), so tests never share
 * rows and can run in parallel. Web APIs only: used from Node tests and from handler tests in
 * workerd, each with its own way to run SQL as the superuser (`exec`).
 */
export type Exec = <T = Record<string, unknown>>(query: string, params?: unknown[]) => Promise<T[]>;

export interface TestUser {
  id: string;
  email: string;
  token: string;
}

export type OrgRole = "owner" | "admin" | "manager" | "member";

export interface OrgWithPeople {
  orgId: string;
  owner: TestUser;
  admin: TestUser;
  manager: TestUser;
  member: TestUser;
  outsider: TestUser;
  platformAdmin: TestUser;
}

export function makeFixtures(exec: Exec, keys: SigningKeys) {
  const user = async (label = "user"): Promise<TestUser> => {
    const id = crypto.randomUUID();
    const email = `${label}-${id.slice(0, 8)}@example.test`;
    await exec("insert into auth.users (id, email) values ($1, $2)", [id, email]);
    return { id, email, token: await userToken(keys, id, { email }) };
  };

  const organization = async ({
    name = "Test organization",
    isPublic = true,
    timeZone = "UTC",
  }: { name?: string; isPublic?: boolean; timeZone?: string } = {}): Promise<string> => {
    const [row] = await exec<{ id: string }>(
      "insert into public.organizations (name, is_public, time_zone) values ($1, $2, $3) returning id",
      [name, isPublic, timeZone],
    );
    return row!.id;
  };

  const member = async (orgId: string, role: OrgRole, label: string = role): Promise<TestUser> => {
    const u = await user(label);
    await exec("insert into public.organization_members (organization_id, user_id, role) values ($1, $2, $3)", [orgId, u.id, role]);
    return u;
  };

  const platformAdmin = async (): Promise<TestUser> => {
    const u = await user("platform-admin");
    await exec("insert into public.platform_admins (user_id) values ($1)", [u.id]);
    return u;
  };

  /** An organization with one person per role, an outsider and a platform admin. */
  const orgWithPeople = async (options: { isPublic?: boolean; timeZone?: string } = {}): Promise<OrgWithPeople> => {
    const orgId = await organization(options);
    const [owner, admin, manager, memberUser, outsider, admin2] = await Promise.all([
      member(orgId, "owner"),
      member(orgId, "admin"),
      member(orgId, "manager"),
      member(orgId, "member"),
      user("outsider"),
      platformAdmin(),
    ]);
    return { orgId, owner, admin, manager, member: memberUser, outsider, platformAdmin: admin2 };
  };

  /** Reviews in one statement. Times are ISO strings or Dates; status defaults to published. */
  const reviews = async (
    orgId: string,
    rows: Array<{ publishedAt: Date | string; respondedAt?: Date | string | null; status?: string }>,
  ): Promise<void> => {
    const json = rows.map((r) => ({
      published_at: new Date(r.publishedAt).toISOString(),
      responded_at: r.respondedAt ? new Date(r.respondedAt).toISOString() : null,
      status: r.status ?? "published",
    }));
    await exec(
      `insert into public.reviews (organization_id, status, published_at, responded_at)
       select $1, status, published_at, responded_at
       from jsonb_to_recordset($2::text::jsonb) as r(status text, published_at timestamptz, responded_at timestamptz)`,
      [orgId, JSON.stringify(json)],
    );
  };

  const caseStudy = async (orgId: string, isPublished = true): Promise<void> => {
    await exec("insert into public.case_studies (organization_id, title, is_published, published_at) values ($1, 'A case study', $2, case when $2 then now() end)", [orgId, isPublished]);
  };

  /**
   * Arranges a level row directly (as the superuser, no history): for setting up a state, never
   * for testing how levels are granted.
   */
  const levelRow = async (
    orgId: string,
    level: "A" | "B" | "C",
    { validUntil, validFrom, subscriptionId, isActive = true }: { validUntil?: Date | string | null; validFrom?: Date | string; subscriptionId?: string; isActive?: boolean } = {},
  ): Promise<string> => {
    const until = validUntil === undefined ? (level === "C" ? null : new Date(Date.now() + 365 * 86_400_000)) : validUntil;
    const [row] = await exec<{ id: string }>(
      `insert into public.organization_status_levels
         (organization_id, level, valid_from, valid_until, subscription_id, is_active, ended_at, end_reason)
       values ($1, $2, coalesce($3::timestamptz, now() - interval '30 days'), $4, $5, $6,
               case when $6 then null else now() end, case when $6 then null else 'expired' end)
       returning id`,
      [orgId, level, validFrom ? new Date(validFrom).toISOString() : null, until ? new Date(until).toISOString() : null, subscriptionId ?? null, isActive],
    );
    return row!.id;
  };

  const subscription = async (
    orgId: string,
    { status = "active", currentPeriodEnd = new Date(Date.now() + 30 * 86_400_000) }: { status?: string; currentPeriodEnd?: Date | string } = {},
  ): Promise<{ id: string; providerId: string }> => {
    const providerId = `sub_${crypto.randomUUID()}`;
    const [row] = await exec<{ id: string }>(
      "insert into public.subscriptions (organization_id, provider_subscription_id, status, current_period_end) values ($1, $2, $3, $4) returning id",
      [orgId, providerId, status, new Date(currentPeriodEnd).toISOString()],
    );
    return { id: row!.id, providerId };
  };

  /** Everything level C asks for: an active B, 20 reviews in 90 days all answered within 2 h, a case study. */
  const meetsLevelC = async (orgId: string): Promise<void> => {
    const now = Date.now();
    await levelRow(orgId, "B");
    await reviews(
      orgId,
      Array.from({ length: 20 }, (_, i) => {
        const published = now - (i + 1) * 3 * 86_400_000;
        return { publishedAt: new Date(published), respondedAt: new Date(published + 2 * 3_600_000) };
      }),
    );
    await caseStudy(orgId);
  };

  /**
   * Meets level C now (B, 15 reviews in 12 months all answered within 2 h, a case study), but the
   * oldest review leaves the 12-month window in about 5 days.
   */
  const levelCAtRiskInFiveDays = async (orgId: string): Promise<void> => {
    const now = Date.now();
    const yearAgo = new Date(now);
    yearAgo.setUTCFullYear(yearAgo.getUTCFullYear() - 1);
    const leaving = yearAgo.getTime() + 5 * 86_400_000 - 3_600_000;
    await levelRow(orgId, "B");
    await reviews(orgId, [
      { publishedAt: new Date(leaving), respondedAt: new Date(leaving + 3_600_000) },
      ...Array.from({ length: 14 }, (_, i) => {
        const published = now - (i + 1) * 3 * 86_400_000;
        return { publishedAt: new Date(published), respondedAt: new Date(published + 2 * 3_600_000) };
      }),
    ]);
    await caseStudy(orgId);
  };

  return { user, organization, member, platformAdmin, orgWithPeople, reviews, caseStudy, levelRow, subscription, meetsLevelC, levelCAtRiskInFiveDays };
}

export type Fixtures = ReturnType<typeof makeFixtures>;
