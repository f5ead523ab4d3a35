import path from "node:path";
import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export default defineConfig({
  root,
  test: {
    globalSetup: ["scripts/test/global-setup.ts", "scripts/test/email-server-setup.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          environment: "node",
          include: ["supabase/tests/**/*.test.ts", "scripts/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        plugins: [
          cloudflareTest(({ inject }) => {
            const stack = inject("stack");
            return {
              main: "functions/index.ts",
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  SUPABASE_URL: stack.supabaseUrl,
                  SUPABASE_ANON_KEY: stack.anonKey,
                  SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
                  SUPABASE_JWT_SECRET: stack.jwtSecret,
                  UPSTASH_REDIS_REST_URL: stack.redisRestUrl,
                  UPSTASH_REDIS_REST_TOKEN: stack.redisRestToken,
                  CACHE_KEY_PREFIX: `test-${stack.databaseName.slice(-16)}`,
                  CORS_ALLOWED_ORIGINS: "http://app.localhost:5173",
                  LOG_LEVEL: "warn",
                  CHECK_RESPONSES: "true",
                  SUBSCRIPTION_WEBHOOK_SECRET: "test-webhook-secret-0123456789",
                },
              },
            };
          }),
        ],
        test: {
          name: "workers",
          include: ["functions/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
