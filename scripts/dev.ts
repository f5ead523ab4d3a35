/**
 * `npm run dev`: the local stack on this checkout's own dev database with demo data, then the
 * Worker in `wrangler dev` on 127.0.0.1:8787 with the scheduled trigger testable. Prints the URLs,
 * the demo tokens as `export` lines and curl lines to paste.
 *
 *   --port <n>             listen on another port (default 8787, or PORT)
 *   --name <name>          another dev stack of this checkout (default: the folder's name and a
 *                          hash of its path): database status_levels_dev_<name>, Redis prefix sl-dev-<name>
 *   --reset                drop this stack's database and cache keys, start over from migrations + seed
 *   --inspect              DevTools for the Worker on 127.0.0.1:9229 (--inspector-port <n> for another)
 */
import { parseArgs } from "node:util";
import { demoOrganizations, demoTokens, demoUsers, type DemoTokens } from "./stack/demo.ts";
import { clearDevStatus, readDevStatus, writeDevStatus } from "./stack/dev-status.ts";
import { isListening } from "./stack/net.ts";
import { onInterrupt } from "./stack/processes.ts";
import { RespConnection } from "./stack/resp.ts";
import { devCacheKeyPrefix, devStackName, startStack } from "./stack/stack.ts";
import { startWorker, workerVars, type RunningWorker } from "./stack/worker.ts";

const usage = `usage: npm run dev [-- --port <n>] [--name <name>] [--reset] [--inspect] [--inspector-port <n>]`;

function parseFlags() {
  try {
    const { values } = parseArgs({
      options: {
        port: { type: "string" },
        name: { type: "string" },
        reset: { type: "boolean", default: false },
        inspect: { type: "boolean", default: false },
        "inspector-port": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(usage);
      process.exit(0);
    }
    const port = portNumber("--port", values.port ?? process.env.PORT ?? "8787");
    const inspectorPort = values["inspector-port"] !== undefined ? portNumber("--inspector-port", values["inspector-port"]) : values.inspect ? 9229 : null;
    return { port, name: devStackName(values.name), reset: values.reset, inspectorPort };
  } catch (error) {
    console.error(`npm run dev: ${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
}

function portNumber(flag: string, value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${flag} must be a port number (got "${value}")`);
  return port;
}

/** The first port after `port` nobody listens on, to suggest one. */
async function nextFreePort(port: number): Promise<number | null> {
  for (let candidate = port + 1; candidate < port + 20 && candidate <= 65535; candidate++) {
    if (!(await isListening("127.0.0.1", candidate, 200))) return candidate;
  }
  return null;
}

async function portInUse(port: number, flag: "--port" | "--inspector-port"): Promise<string> {
  const free = await nextFreePort(port);
  return (
    `port ${port} is in use (another checkout's \`npm run dev\`, or another program). ` +
    `Choose another with ${flag}: \`npm run dev -- ${flag} ${free ?? "<port>"}\`` +
    (flag === "--port" ? " (PORT=<port> works too)." : ".")
  );
}

/** `--reset`: this stack's cache keys go with its database (SCAN + DEL under its own prefix only). */
async function clearCache(redisUrl: string, prefix: string): Promise<number> {
  const redis = await RespConnection.connect(redisUrl);
  let removed = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = (await redis.command(["SCAN", cursor, "MATCH", `${prefix}:*`, "COUNT", "1000"])) as [Buffer, Buffer[]];
      cursor = next.toString();
      if (keys.length > 0) removed += Number(await redis.command(["DEL", ...keys.map((k) => k.toString())]));
    } while (cursor !== "0");
  } finally {
    redis.close();
  }
  return removed;
}

function printReady({
  apiUrl,
  info,
  name,
  prefix,
  tokens,
  inspectorUrl,
}: {
  apiUrl: string;
  info: Awaited<ReturnType<typeof startStack>>["info"];
  name: string;
  prefix: string;
  tokens: DemoTokens;
  inspectorUrl: string | null;
}): void {
  const org = demoOrganizations.alpineDairy;
  const shellNames: Record<keyof DemoTokens, string> = { platformAdmin: "ADMIN", orgOwner: "OWNER", orgMember: "MEMBER", outsider: "OUTSIDER" };
  console.log(`
Status levels is running (stack ready in ${info.startupMs} ms; Postgres: ${info.sources.postgres}, Redis: ${info.sources.redis})

  API            ${apiUrl}/status-levels
  OpenAPI        ${apiUrl}/status-levels/openapi.json
  API reference  ${apiUrl}/status-levels/docs   (Swagger UI, served by the Worker's static assets)
  Supabase URL   ${info.supabaseUrl}   (PostgREST at /rest/v1, JWKS at /auth/v1/.well-known/jwks.json)
  Database       ${info.databaseUrl}
  Upstash REST   ${info.redisRestUrl}   (keys under ${prefix}:)
  Dev stack      ${name}   (--name; --reset starts it over)
  DevTools       ${inspectorUrl ? `${inspectorUrl}   (chrome://inspect, Configure: 127.0.0.1:${new URL(inspectorUrl).port})` : "off (--inspect turns it on)"}

Demo tokens, valid 7 days (\`npm run status -- --token orgOwner\` prints one; \`--json\` all):
${Object.entries(demoUsers).map(([user, u]) => `  # ${u.note}\n  export ${shellNames[user as keyof DemoTokens]}=${tokens[user as keyof DemoTokens]}`).join("\n")}

Try:
  export API=${apiUrl}/status-levels
  curl -s $API/health
  curl -s $API/organizations/${org} -H "authorization: Bearer $OWNER"
  curl -s $API/organizations/${org}/eligibility -H "authorization: Bearer $OWNER"
  curl -s $API/badge/${org}.svg
  npm run job:daily      # runs the daily job now and prints its summary

Ctrl-C stops everything.
`);
}

async function main(): Promise<void> {
  const { port, name, reset, inspectorPort } = parseFlags();
  const running = await readDevStatus();
  if (running) {
    throw new Error(`\`npm run dev\` is already running in this checkout (pid ${running.PID}, ${running.API_URL}): stop it first (Ctrl-C there).`);
  }
  if (await isListening("127.0.0.1", port)) throw new Error(await portInUse(port, "--port"));
  if (inspectorPort !== null && (await isListening("127.0.0.1", inspectorPort))) throw new Error(await portInUse(inspectorPort, "--inspector-port"));

  const prefix = devCacheKeyPrefix(name);
  const stack = await startStack({ mode: "dev", reset, devName: name });
  const { info } = stack;
  let worker: RunningWorker | null = null;
  onInterrupt(async () => {
    await clearDevStatus();
    await worker?.stop();
    await stack.stop();
  });
  if (reset) console.error(`[stack] --reset: ${await clearCache(info.redisUrl, prefix)} cache key(s) under ${prefix}: removed`);
  const apiUrl = `http://127.0.0.1:${port}`;
  const webhookSecret = process.env.SUBSCRIPTION_WEBHOOK_SECRET ?? "local-dev-webhook-secret-change-me";

  worker = await startWorker({
    port,
    inheritOutput: true,
    inspectorPort,
    vars: workerVars(info, {
      CORS_ALLOWED_ORIGINS: process.env.CORS_ALLOWED_ORIGINS ?? "*",
      CACHE_KEY_PREFIX: prefix,
      // Every response is checked against the API description while you develop.
      CHECK_RESPONSES: "true",
      SUBSCRIPTION_WEBHOOK_SECRET: webhookSecret,
      ...(process.env.STATUS_CACHE_ENABLED ? { STATUS_CACHE_ENABLED: process.env.STATUS_CACHE_ENABLED } : {}),
      ...(process.env.EMAIL_API_URL ? { EMAIL_API_URL: process.env.EMAIL_API_URL } : {}),
    }),
  }).catch(async (error) => {
    await stack.stop();
    throw error;
  });

  const tokens = await demoTokens(info.keys);
  await writeDevStatus({
    NAME: name,
    API_URL: `${apiUrl}/status-levels`,
    SUPABASE_URL: info.supabaseUrl,
    DB_URL: info.databaseUrl,
    ANON_KEY: info.anonKey,
    SERVICE_ROLE_KEY: info.serviceRoleKey,
    JWKS_URL: info.jwksUrl,
    REDIS_REST_URL: info.redisRestUrl,
    REDIS_REST_TOKEN: info.redisRestToken,
    CACHE_KEY_PREFIX: prefix,
    WEBHOOK_SECRET: webhookSecret,
    DEMO_TOKENS: tokens,
    PID: process.pid,
  });
  printReady({ apiUrl, info, name, prefix, tokens, inspectorUrl: worker.inspectorUrl ?? null });
}

main().catch((error) => {
  console.error(`npm run dev failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
