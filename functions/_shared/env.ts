/// <reference path="../worker-configuration.d.ts" />
import { z } from "zod";

/**
 * The Worker's bindings. Their names come from `wrangler types` (functions/worker-configuration.d.ts,
 * `npm run gen:worker-types`; CI fails when it is stale): the `[vars]` of every environment in
 * wrangler.toml and the secrets named in .dev.vars.example. Added here is what the generator cannot
 * know: which secrets a deployment may leave unset, and settings no environment sets by default.
 * What each one means, and its default, is the schema below; `config()` checks them all.
 */
export type Env = Omit<Cloudflare.Env, OptionalSecret> &
  Partial<Pick<Cloudflare.Env, OptionalSecret>> & {
    /** The only `iss` accepted in access tokens; default `${SUPABASE_URL}/auth/v1`, what Supabase Auth issues. */
    SUPABASE_JWT_ISSUER?: string;
    /**
     * `true` checks every response against its route's declared schema and answers a 500 problem
     * when it does not match (tests and `npm run dev`; leave it off in production).
     */
    CHECK_RESPONSES?: string;
  };

/**
 * SUPABASE_JWT_SECRET: the project's legacy HS256 secret, a fallback for tokens not signed with a
 * JWKS key. SUBSCRIPTION_WEBHOOK_SECRET: without it the payments webhook refuses every event.
 * EMAIL_API_TOKEN: only with an EMAIL_API_URL that wants one.
 */
type OptionalSecret = "SUPABASE_JWT_SECRET" | "SUBSCRIPTION_WEBHOOK_SECRET" | "EMAIL_API_TOKEN";

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
