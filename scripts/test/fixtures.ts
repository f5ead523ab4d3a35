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

  return { user, organization, member, platformAdmin, orgWithPeople };
}

export type Fixtures = ReturnType<typeof makeFixtures>;
