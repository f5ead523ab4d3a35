import type { StackKeys } from "./keys.ts";
import { userToken } from "./tokens.ts";

/** The people of supabase/seed.sql; their tokens are printed by `npm run dev` and `npm run status`. */
export const demoUsers = {
  platformAdmin: { id: "00000000-0000-4000-a000-000000000001", email: "admin@demo.test", note: "platform admin: grants, revokes, reviews requests" },
  orgOwner: { id: "00000000-0000-4000-a000-000000000002", email: "owner@alpine-dairy.demo.test", note: "owner of Alpine Dairy (level B, eligible for C)" },
  orgMember: { id: "00000000-0000-4000-a000-000000000003", email: "member@alpine-dairy.demo.test", note: "member of Alpine Dairy" },
  outsider: { id: "00000000-0000-4000-a000-000000000004", email: "outsider@demo.test", note: "signed in, member of no organization" },
} as const;

export const demoOrganizations = {
  alpineDairy: "10000000-0000-4000-a000-000000000001",
  harborRoasters: "10000000-0000-4000-a000-000000000002",
  meadowBakery: "10000000-0000-4000-a000-000000000003",
  copperKettle: "10000000-0000-4000-a000-000000000004",
  newLeafFarm: "10000000-0000-4000-a000-000000000005",
  lakesidePottery: "10000000-0000-4000-a000-000000000007",
} as const;

export type DemoTokens = Record<keyof typeof demoUsers, string>;

/** Week-long tokens so a dev session's copy-pasted curl lines keep working. */
export async function demoTokens(keys: StackKeys): Promise<DemoTokens> {
  const entries = await Promise.all(
    Object.entries(demoUsers).map(async ([name, u]) => [name, await userToken(keys, u.id, { email: u.email, expiresIn: "7d" })] as const),
  );
  return Object.fromEntries(entries) as DemoTokens;
}
