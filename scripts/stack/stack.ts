import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { startGateway } from "./gateway.ts";
import { apiKeys, generateKeys, postgrestJwks, publicJwks, type KeyMaterial } from "./keys.ts";
import type { StackInfo } from "./stack-info.ts";

export type { StackInfo } from "./stack-info.ts";
import { stackLog } from "./log.ts";
import { migrate, projectRoot } from "./migrate.ts";
import { startPostgrest } from "./postgrest.ts";
import { createDatabase, databaseUrl, dropDatabase, embeddedDataDir, resolvePostgres, roleUrl } from "./postgres.ts";
import { resolveRedis } from "./redis.ts";
import { localSeedFile, readSupabaseConfig } from "./supabase-config.ts";
import { startUpstashProxy } from "./upstash.ts";

export interface RunningStack {
  info: StackInfo;
  stop(): Promise<void>;
}

export const stackDir = path.join(projectRoot, ".stack");

/**
 * The name of this checkout's dev stack: its own database (`status_levels_dev_<name>`) and Redis
 * prefix (`sl-dev-<name>`), so several checkouts on one machine never share data and `--reset`
 * touches only its own. By default the checkout folder's name and a short hash of its path;
 * `npm run dev -- --name <name>` picks another.
 */
export function devStackName(name?: string): string {
  if (name !== undefined) {
    if (!/^[a-z0-9_]{1,32}$/.test(name)) throw new Error(`--name must be 1-32 of a-z, 0-9 and _ (got "${name}")`);
    return name;
  }
  const folder = path.basename(projectRoot).toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 20);
  const hash = createHash("sha256").update(projectRoot).digest("hex").slice(0, 8);
  return folder ? `${folder}_${hash}` : hash;
}

export const devDatabaseName = (name: string) => `status_levels_dev_${name}`;
export const devCacheKeyPrefix = (name: string) => `sl-dev-${name}`;

/**
 * Starts Postgres (or finds one), bootstraps and migrates a database, then PostgREST, the gateway,
 * Redis and the Upstash proxy. `test` gets a fresh, uniquely named database and fresh keys and
 * drops the database on stop; `dev` keeps its database (named by `devName`), its keys and its demo
 * data across runs.
 */
export async function startStack({
  mode,
  reset = false,
  devName = devStackName(),
  embeddedPostgres,
}: {
  mode: "test" | "dev";
  reset?: boolean;
  /** The dev stack's name (see devStackName). */
  devName?: string;
  /** Force the embedded Postgres even when another one answers (tests of that path). */
  embeddedPostgres?: boolean;
}): Promise<RunningStack> {
  const started = Date.now();
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((error) => stackLog(`stop: ${(error as Error).message}`));
  };
  try {
    const config = await readSupabaseConfig();
    const pg = await resolvePostgres({
      ...(mode === "dev" ? { dataDir: embeddedDataDir("pg-dev") } : {}),
      ...(embeddedPostgres !== undefined ? { embedded: embeddedPostgres } : {}),
    });
    stops.push(pg.stop);
    stackLog(`Postgres: ${pg.source}`);

    const databaseName = mode === "dev" ? devDatabaseName(devName) : `status_levels_test_${Date.now().toString(36)}_${process.pid}`;
    if (mode === "dev" && reset) await dropDatabase(pg.adminUrl, databaseName);
    const freshDatabase = mode === "test" || reset || !(await databaseExists(pg.adminUrl, databaseName));
    await createDatabase(pg.adminUrl, databaseName);
    if (mode === "test") stops.push(() => dropDatabase(pg.adminUrl, databaseName));
    const dbUrl = databaseUrl(pg.adminUrl, databaseName);

    const seedFile = mode === "dev" && freshDatabase ? localSeedFile(config) : undefined;
    const migrateStarted = Date.now();
    const { applied } = await migrate(dbUrl, { seedFile, localBootstrap: true });
    stackLog(`database ${databaseName}: ${applied.length} migration(s) applied${seedFile ? ", demo data seeded" : ""} (${Date.now() - migrateStarted} ms)`);

    const material = mode === "dev" ? await devKeys(freshDatabase) : await generateKeys();
    const { anonKey, serviceRoleKey } = await apiKeys(material);

    const postgrest = await startPostgrest({
      dbUri: roleUrl(dbUrl, "authenticator", "authenticator-local-only"),
      jwtSecret: postgrestJwks(material),
      api: config.api,
    });
    stops.push(postgrest.stop);
    const gateway = await startGateway({ postgrestUrl: postgrest.url, jwks: publicJwks(material) });
    stops.push(gateway.stop);
    // User tokens carry the issuer Supabase Auth would give them: the project URL + /auth/v1. The
    // dev stack keeps the one of its first run (the gateway's port changes), so its tokens last.
    const issuer = material.issuer ?? `${gateway.url}/auth/v1`;
    if (mode === "dev" && !material.issuer) await saveDevKeys({ ...material, issuer });
    const keys = { ...material, issuer, jwtExpirySeconds: config.auth.jwtExpirySeconds };

    const redis = await resolveRedis();
    stops.push(redis.stop);
    const upstash = await startUpstashProxy({ redisUrl: redis.url, token: randomBytes(24).toString("base64url") });
    stops.push(upstash.stop);

    const info: StackInfo = {
      databaseUrl: dbUrl,
      databaseName,
      postgrestUrl: postgrest.url,
      supabaseUrl: gateway.url,
      anonKey,
      serviceRoleKey,
      jwtSecret: keys.jwtSecret,
      jwksUrl: `${gateway.url}/auth/v1/.well-known/jwks.json`,
      keys,
      redisUrl: redis.url,
      redisRestUrl: upstash.url,
      redisRestToken: upstash.token,
      sources: { postgres: pg.source, redis: redis.source },
      startupMs: Date.now() - started,
    };
    stackLog(`ready in ${info.startupMs} ms: Supabase ${gateway.url}, Upstash ${upstash.url}`);
    return { info, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function databaseExists(adminUrl: string, name: string): Promise<boolean> {
  const { default: postgres } = await import("postgres");
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    return (await sql`select 1 from pg_database where datname = ${name}`).length > 0;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Dev keys persist so tokens printed yesterday still work today; a reset makes new ones. */
async function devKeys(regenerate: boolean): Promise<KeyMaterial> {
  const file = path.join(stackDir, "keys.json");
  if (!regenerate && existsSync(file)) return JSON.parse(await readFile(file, "utf8")) as KeyMaterial;
  return generateKeys();
}

async function saveDevKeys(keys: KeyMaterial): Promise<void> {
  await mkdir(stackDir, { recursive: true });
  await writeFile(path.join(stackDir, "keys.json"), JSON.stringify(keys, null, 2), { mode: 0o600 });
}
