/**
 * `npm run dev`: the local stack on a persistent dev database with demo data, then `wrangler dev`
 * on 127.0.0.1:8787 with the scheduled trigger testable. Prints URLs, demo tokens and curl lines.
 * `npm run dev -- --reset` drops the dev database and starts over from migrations + seed.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { demoOrganizations, demoTokens, demoUsers } from "./stack/demo.ts";
import { clearDevStatus, writeDevStatus } from "./stack/dev-status.ts";
import { isListening, waitUntil } from "./stack/net.ts";
import { onInterrupt, startProcess } from "./stack/processes.ts";
import { projectRoot } from "./stack/migrate.ts";
import { startStack, stackDir } from "./stack/stack.ts";

const port = Number(process.env.PORT ?? 8787);

async function main(): Promise<void> {
  if (await isListening("127.0.0.1", port)) {
    throw new Error(`port ${port} is in use (another \`npm run dev\`?). Stop it, or run with PORT=8788 npm run dev`);
  }
  const stack = await startStack({ mode: "dev", reset: process.argv.includes("--reset") });
  const { info } = stack;
  const apiUrl = `http://127.0.0.1:${port}`;

  const vars: Record<string, string> = {
    SUPABASE_URL: info.supabaseUrl,
    SUPABASE_ANON_KEY: info.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: info.serviceRoleKey,
    SUPABASE_JWT_SECRET: info.jwtSecret,
    UPSTASH_REDIS_REST_URL: info.redisRestUrl,
    UPSTASH_REDIS_REST_TOKEN: info.redisRestToken,
    CORS_ALLOWED_ORIGINS: process.env.CORS_ALLOWED_ORIGINS ?? "*",
    CACHE_KEY_PREFIX: "sl-dev",
    SUBSCRIPTION_WEBHOOK_SECRET: "local-dev-webhook-secret-change-me",
    ...(process.env.STATUS_CACHE_ENABLED ? { STATUS_CACHE_ENABLED: process.env.STATUS_CACHE_ENABLED } : {}),
  };
  const varsFile = path.join(stackDir, "dev.vars");
  await writeFile(varsFile, Object.entries(vars).map(([k, v]) => `${k}=${v}`).join("\n") + "\n", { mode: 0o600 });

  const wrangler = startProcess(
    "wrangler",
    path.join(projectRoot, "node_modules", ".bin", "wrangler"),
    ["dev", "--ip", "127.0.0.1", "--port", String(port), "--test-scheduled", "--env-file", varsFile, "--show-interactive-dev-session=false"],
    {
      cwd: projectRoot,
      stdio: ["ignore", "inherit", "inherit"],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_HIDE_BANNER: "true",
        XDG_CONFIG_HOME: path.join(stackDir, "wrangler-config"),
      },
    },
  );
  const stopAll = async () => {
    await clearDevStatus();
    await wrangler.stop();
    await stack.stop();
  };
  onInterrupt(stopAll);
  wrangler.child.on("exit", (code) => {
    console.error(`wrangler dev exited (${code}); stopping the stack`);
    void stopAll().finally(() => process.exit(code ?? 1));
  });

  await waitUntil("wrangler dev", async () => (await fetch(`${apiUrl}/status-levels/health`)).ok, { timeoutMs: 60_000, intervalMs: 200 });
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
