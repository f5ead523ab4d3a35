/**
 * `npm run dev`: the local stack on a persistent dev database with demo data, then `wrangler dev`
 * on 127.0.0.1:8787 with the scheduled trigger testable. Prints URLs, demo tokens and curl lines.
 * `npm run dev -- --reset` drops the dev database and starts over from migrations + seed.
 */
import { demoOrganizations, demoTokens, demoUsers } from "./stack/demo.ts";
import { clearDevStatus, writeDevStatus } from "./stack/dev-status.ts";
import { isListening } from "./stack/net.ts";
import { onInterrupt } from "./stack/processes.ts";
import { startStack } from "./stack/stack.ts";
import { startWorker, workerVars } from "./stack/worker.ts";

const port = Number(process.env.PORT ?? 8787);

async function main(): Promise<void> {
  if (await isListening("127.0.0.1", port)) {
    throw new Error(`port ${port} is in use (another \`npm run dev\`?). Stop it, or run with PORT=8788 npm run dev`);
  }
  const stack = await startStack({ mode: "dev", reset: process.argv.includes("--reset") });
  const { info } = stack;
  const apiUrl = `http://127.0.0.1:${port}`;

  const worker = await startWorker({
    port,
    inheritOutput: true,
    vars: workerVars(info, {
      CORS_ALLOWED_ORIGINS: process.env.CORS_ALLOWED_ORIGINS ?? "*",
      CACHE_KEY_PREFIX: "sl-dev",
      // Every response is checked against the API description while you develop.
      CHECK_RESPONSES: "true",
      SUBSCRIPTION_WEBHOOK_SECRET: process.env.SUBSCRIPTION_WEBHOOK_SECRET ?? "local-dev-webhook-secret-change-me",
      ...(process.env.STATUS_CACHE_ENABLED ? { STATUS_CACHE_ENABLED: process.env.STATUS_CACHE_ENABLED } : {}),
      ...(process.env.EMAIL_API_URL ? { EMAIL_API_URL: process.env.EMAIL_API_URL } : {}),
    }),
  }).catch(async (error) => {
    await stack.stop();
    throw error;
  });
  onInterrupt(async () => {
    await clearDevStatus();
    await worker.stop();
    await stack.stop();
  });

  const tokens = await demoTokens(info.keys);
  await writeDevStatus({
    API_URL: `${apiUrl}/status-levels`,
    SUPABASE_URL: info.supabaseUrl,
    DB_URL: info.databaseUrl,
    ANON_KEY: info.anonKey,
    SERVICE_ROLE_KEY: info.serviceRoleKey,
    JWKS_URL: info.jwksUrl,
    REDIS_REST_URL: info.redisRestUrl,
    REDIS_REST_TOKEN: info.redisRestToken,
    DEMO_TOKENS: tokens,
    PID: process.pid,
  });

  const org = demoOrganizations.alpineDairy;
  console.log(`
Status levels is running (stack ready in ${info.startupMs} ms; Postgres: ${info.sources.postgres}, Redis: ${info.sources.redis})

  API            ${apiUrl}/status-levels
  OpenAPI        ${apiUrl}/status-levels/openapi.json
  API reference  ${apiUrl}/status-levels/docs   (Swagger UI, served by the Worker's static assets)
  Supabase URL   ${info.supabaseUrl}   (PostgREST at /rest/v1, JWKS at /auth/v1/.well-known/jwks.json)
  Database       ${info.databaseUrl}
  Upstash REST   ${info.redisRestUrl}

Demo tokens (valid 7 days; \`npm run status -- --json\` prints them for scripts):
${Object.entries(demoUsers).map(([name, u]) => `  ${name.padEnd(14)} ${u.note}`).join("\n")}

Try:
  export OWNER=$(npm run -s status -- --token orgOwner)
  export ADMIN=$(npm run -s status -- --token platformAdmin)
  curl -s ${apiUrl}/status-levels/health
  curl -s ${apiUrl}/status-levels/organizations/${org} -H "authorization: Bearer $OWNER"
  curl -s ${apiUrl}/status-levels/organizations/${org}/eligibility -H "authorization: Bearer $OWNER"
  curl -s ${apiUrl}/status-levels/badge/${org}.svg
  curl -s "${apiUrl}/__scheduled?cron=0+2+*+*+*"      # runs the daily job now

Ctrl-C stops everything.
`);
}

main().catch((error) => {
  console.error(`npm run dev failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
