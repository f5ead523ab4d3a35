import { z } from "zod";

/** The Worker's bindings: `[vars]` in wrangler.toml, secrets set with `wrangler secret put`. */
export interface Env {
  SUPABASE_URL: string;
  SUPABASE_ANON_KEY: string;
  /** Only the daily job and the subscription handler use it; never a caller's request. */
  SUPABASE_SERVICE_ROLE_KEY: string;
  /** The project's legacy HS256 secret: a fallback for tokens not signed with a JWKS key. */
  SUPABASE_JWT_SECRET?: string;
  /** The only `iss` accepted in access tokens; default `${SUPABASE_URL}/auth/v1`, what Supabase Auth issues. */
  SUPABASE_JWT_ISSUER?: string;
  UPSTASH_REDIS_REST_URL: string;
  UPSTASH_REDIS_REST_TOKEN: string;
  /** Comma-separated origins allowed to call the API from a browser, or `*`. */
  CORS_ALLOWED_ORIGINS?: string;
  STATUS_CACHE_TTL_SECONDS?: string;
  /** `false` turns the status cache off (benchmarks, incident response). */
  STATUS_CACHE_ENABLED?: string;
  /** Prefix of every Redis key, so several deployments or test runs can share one Redis. */
  CACHE_KEY_PREFIX?: string;
  /**
   * Per-call limit for Supabase and Redis, so a stuck dependency becomes a 503, not a hang. Must be
   * longer than DATABASE_STATEMENT_TIMEOUT_MS, so the database gives up on a write before the Worker does.
   */
  DEPENDENCY_TIMEOUT_MS?: string;
  /**
   * The longest statement timeout of the API roles in the database (anon, authenticated,
   * service_role; migration 20261122000000_platform_contract.sql sets 3 s, 4 s, 4 s). Only
   * checked against DEPENDENCY_TIMEOUT_MS: change both together.
   */
  DATABASE_STATEMENT_TIMEOUT_MS?: string;
  SUBSCRIPTION_WEBHOOK_SECRET?: string;
  EMAIL_API_URL?: string;
  EMAIL_API_TOKEN?: string;
  EMAIL_FROM?: string;
  LOG_LEVEL?: string;
  /**
   * `true` checks every response against its route's declared schema and answers a 500 problem
   * when it does not match (tests and `npm run dev`; leave it off in production).
   */
  CHECK_RESPONSES?: string;
}

const configSchema = z.object({
  SUPABASE_URL: z.url(),
  SUPABASE_ANON_KEY: z.string().min(1),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  SUPABASE_JWT_SECRET: z.string().min(1).optional(),
  SUPABASE_JWT_ISSUER: z.url().optional(),
  UPSTASH_REDIS_REST_URL: z.url(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1),
  CORS_ALLOWED_ORIGINS: z.string().default(""),
  STATUS_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  STATUS_CACHE_ENABLED: z.enum(["true", "false"]).default("true").transform((v) => v === "true"),
  CACHE_KEY_PREFIX: z.string().regex(/^[\w.-]{1,40}$/).default("sl"),
  DEPENDENCY_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(5000),
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(1).max(30_000).default(4000),
  SUBSCRIPTION_WEBHOOK_SECRET: z.string().min(16).optional(),
  EMAIL_API_URL: z.url().optional(),
  EMAIL_API_TOKEN: z.string().optional(),
  EMAIL_FROM: z.string().default("Status levels <no-reply@status-levels.invalid>"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  CHECK_RESPONSES: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
})
  // A write the Worker gave up on (503) must be one the database has cancelled and rolled back.
  .refine((c) => c.DEPENDENCY_TIMEOUT_MS > c.DATABASE_STATEMENT_TIMEOUT_MS, {
    path: ["DEPENDENCY_TIMEOUT_MS"],
    error: "must be longer than DATABASE_STATEMENT_TIMEOUT_MS (the API roles' statement timeout in the database)",
  })
  .transform((c) => ({ ...c, SUPABASE_JWT_ISSUER: c.SUPABASE_JWT_ISSUER ?? `${c.SUPABASE_URL.replace(/\/+$/, "")}/auth/v1` }));

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

const parsed = new WeakMap<object, Config>();

/** Reads and checks the bindings once per env object; names every missing or bad variable. */
export function config(env: Env): Config {
  const cached = parsed.get(env);
  if (cached) return cached;
  const blankAsMissing = Object.fromEntries(
    Object.entries(env as unknown as Record<string, unknown>).filter(([, v]) => v !== ""),
  );
  const result = configSchema.safeParse(blankAsMissing);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`the Worker is misconfigured (${problems})`);
  }
  parsed.set(env, result.data);
  return result.data;
}
