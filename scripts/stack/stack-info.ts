import type { StackKeys } from "./tokens.ts";

/** Everything a client of the local stack needs; serializable, so tests get it through `provide`. */
export interface StackInfo {
  /** Superuser URL of this stack's database (migrations, test fixtures). */
  databaseUrl: string;
  databaseName: string;
  postgrestUrl: string;
  /** The gateway: use it exactly like a Supabase project URL. */
  supabaseUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  jwksUrl: string;
  keys: StackKeys;
  redisUrl: string;
  redisRestUrl: string;
  redisRestToken: string;
  sources: { postgres: string; redis: string };
  startupMs: number;
}
