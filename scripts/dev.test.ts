/**
 * `npm run dev` as a new user meets it: in fresh clones of this repository (`git clone` into
 * `mktemp -d`), several checkouts on one machine, stopped with Ctrl-C (SIGINT) or SIGTERM.
 * The clones share this checkout's node_modules (a symlink) instead of an `npm ci` each.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import type { DevStatus } from "./stack/dev-status.ts";
import { projectRoot } from "./stack/migrate.ts";
import { freePort } from "./stack/net.ts";
import { databaseUrl, dropDatabase } from "./stack/postgres.ts";

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** A fresh clone of this repository's HEAD in its own `mktemp -d` folder. */
async function cloneCheckout(): Promise<string> {
  const parent = await mkdtemp(path.join(os.tmpdir(), "status-levels-clone-"));
  const checkout = path.join(parent, "checkout");
  await promisify(execFile)("git", ["clone", "--quiet", projectRoot, checkout]);
  await symlink(path.join(projectRoot, "node_modules"), path.join(checkout, "node_modules"), "dir");
  cleanups.push(() => rm(parent, { recursive: true, force: true }));
  return checkout;
}

interface Dev {
  process: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** `npm run dev -- <args>` in `checkout`, in its own process group (as a terminal runs it). */
function runDev(checkout: string, args: string[], env: Record<string, string> = {}): Dev {
  const child = spawn("npm", ["run", "dev", "--", ...args], {
    cwd: checkout,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
  });
  return { process: child, output: () => output, exited };
}

const statusFile = (checkout: string) => path.join(checkout, ".stack", "status.json");

/** Waits until the checkout's dev stack answers; its status (URLs, keys, tokens). */
async function devReady(checkout: string, dev: Dev, timeoutMs = 45_000): Promise<DevStatus> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (dev.process.exitCode !== null) throw new Error(`npm run dev exited with ${dev.process.exitCode}:\n${dev.output()}`);
    if (existsSync(statusFile(checkout))) {
      const status = JSON.parse(await readFile(statusFile(checkout), "utf8")) as DevStatus;
      const res = await fetch(`${status.API_URL}/levels`).catch(() => null);
      if (res?.ok) return status;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`npm run dev was not ready within ${timeoutMs} ms:\n${dev.output()}`);
}

/** Whether any process of the group `pgid` is still alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops it the way a terminal's Ctrl-C or a supervisor does: the signal to its process group.
 * Stopped means every process of the group has exited, not only npm: on SIGTERM npm exits at
 * once while the dev script it started is still cleaning up.
 */
async function stopDev(dev: Dev, signal: "SIGINT" | "SIGTERM", stall?: { pid: number; ms: number }): Promise<void> {
  // A dev process busy when the signal comes (a loaded CI machine): it reacts `stall.ms` late.
  if (stall) process.kill(stall.pid, "SIGSTOP");
  process.kill(-dev.process.pid!, signal);
  if (stall) {
    await new Promise((r) => setTimeout(r, stall.ms));
    try {
      process.kill(stall.pid, "SIGCONT");
    } catch {
      // already gone: killed while stopped (SIGKILL reaches a stopped process)
    }
  }
  const deadline = Date.now() + 20_000;
  while (groupAlive(dev.process.pid!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(groupAlive(dev.process.pid!), `still running 20 s after ${signal}:\n${dev.output()}`).toBe(false);
}

function forgetDatabase(status: DevStatus): void {
  const name = new URL(status.DB_URL).pathname.slice(1);
  cleanups.push(() => dropDatabase(databaseUrl(status.DB_URL, "postgres"), name));
}

async function upstash(status: DevStatus, command: string[]): Promise<unknown> {
  const res = await fetch(status.REDIS_REST_URL, {
    method: "POST",
    headers: { authorization: `Bearer ${status.REDIS_REST_TOKEN}` },
    body: JSON.stringify(command),
  });
  return ((await res.json()) as { result: unknown }).result;
}

describe("npm run dev in several checkouts of one machine", () => {
  it("a fresh clone gets its own database and cache prefix; its --reset leaves the first checkout's data alone; a taken port names --port", async () => {
    const [first, second] = await Promise.all([cloneCheckout(), cloneCheckout()]);

    const firstDev = runDev(first, ["--port", String(await freePort())]);
    const a = await devReady(first, firstDev);
    forgetDatabase(a);
    const dbA = postgres(a.DB_URL, { max: 1, onnotice: () => {} });
    cleanups.push(() => dbA.end({ timeout: 1 }));
    const marker = randomUUID();
    await dbA`insert into public.organizations (id, name) values (${marker}, 'first checkout marker')`;
    const [{ count: organizationsBefore }] = await dbA<[{ count: number }]>`select count(*)::int as count from public.organizations`;
    await upstash(a, ["SET", `${a.CACHE_KEY_PREFIX}:marker`, marker, "EX", "600"]);

    // The second checkout on the first one's port: a clear message, before anything starts.
    const clash = runDev(second, ["--port", new URL(a.API_URL).port]);
    expect(await clash.exited).toBe(1);
    expect(clash.output()).toMatch(new RegExp(`port ${new URL(a.API_URL).port} is in use.*--port`));

    const secondDev = runDev(second, ["--port", String(await freePort()), "--reset"]);
    const b = await devReady(second, secondDev);
    forgetDatabase(b);
    expect(b.NAME).not.toBe(a.NAME);
    expect(new URL(b.DB_URL).pathname).not.toBe(new URL(a.DB_URL).pathname);
    expect(b.CACHE_KEY_PREFIX).not.toBe(a.CACHE_KEY_PREFIX);
    expect(secondDev.output()).toContain(`under ${b.CACHE_KEY_PREFIX}: removed`);

    // The first checkout's rows and cache keys are all there, and the second has only the seed.
    expect((await dbA`select name from public.organizations where id = ${marker}`).map((r) => r.name)).toEqual(["first checkout marker"]);
    expect((await dbA<[{ count: number }]>`select count(*)::int as count from public.organizations`)[0].count).toBe(organizationsBefore);
    expect(await upstash(a, ["GET", `${a.CACHE_KEY_PREFIX}:marker`])).toBe(marker);
    const dbB = postgres(b.DB_URL, { max: 1, onnotice: () => {} });
    cleanups.push(() => dbB.end({ timeout: 1 }));
    expect(await dbB`select 1 from public.organizations where id = ${marker}`).toHaveLength(0);
    // Each checkout's tokens work against its own stack.
    const own = await fetch(`${b.API_URL}/organizations/10000000-0000-4000-a000-000000000001`, {
      headers: { authorization: `Bearer ${b.DEMO_TOKENS.orgOwner}` },
    });
    expect(own.status).toBe(200);

    await upstash(a, ["DEL", `${a.CACHE_KEY_PREFIX}:marker`]);
    await Promise.all([stopDev(secondDev, "SIGINT"), stopDev(firstDev, "SIGINT")]);
  }, 90_000);
});

/** Files under `dir` changed since `since` (ms) holding any of `secrets`; `skip` folders are not entered. */
async function filesHolding(dir: string, secrets: string[], since: number, skip: string[] = []): Promise<string[]> {
  const needles = secrets.map((s) => Buffer.from(s));
  const found: string[] = [];
  const walk = async (folder: string): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const file = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!skip.includes(file)) await walk(file);
      } else if (entry.isFile()) {
        const info = await lstat(file).catch(() => null);
        if (!info || info.mtimeMs < since - 1000 || info.size > 64 * 1024 * 1024) continue;
        const content = await readFile(file).catch(() => null);
        if (content && needles.some((n) => content.includes(n))) found.push(file);
      }
    }
  };
  await walk(dir);
  return found;
}

describe("npm run dev leaves no secret on disk outside .stack/", () => {
  it.each(["SIGINT", "SIGTERM"] as const)("stopped with %s: nothing in the temp folder or the checkout holds its keys or secrets", async (signal) => {
    const checkout = await cloneCheckout();
    const started = Date.now();
    const webhookSecret = `webhook-${randomBytes(16).toString("hex")}`;
    const dev = runDev(checkout, ["--port", String(await freePort())], { SUBSCRIPTION_WEBHOOK_SECRET: webhookSecret });
    const status = await devReady(checkout, dev);
    forgetDatabase(status);
    const keys = JSON.parse(await readFile(path.join(checkout, ".stack", "keys.json"), "utf8")) as { jwtSecret: string };
    const secrets = [status.SERVICE_ROLE_KEY, keys.jwtSecret, webhookSecret, status.REDIS_REST_TOKEN];
    expect(status.WEBHOOK_SECRET).toBe(webhookSecret);
    expect((await lstat(path.join(checkout, ".stack"))).mode & 0o777).toBe(0o700);
    expect((await lstat(statusFile(checkout))).mode & 0o777).toBe(0o600);

    const skip = [path.join(checkout, ".stack"), path.join(checkout, "node_modules")];
    const outsideStack = async () => [
      ...new Set([...(await filesHolding(os.tmpdir(), secrets, started, skip)), ...(await filesHolding(checkout, secrets, started, skip))]),
    ];
    // Not even while it runs: the Worker's bindings reach wrangler over IPC, not through a file.
    expect(await outsideStack()).toEqual([]);

    await stopDev(dev, signal);
    expect(await outsideStack()).toEqual([]);
    expect(existsSync(statusFile(checkout))).toBe(false);
    expect(await readdir(path.join(checkout, ".stack", "worker"))).toEqual([]);
  }, 60_000);
});

describe("npm run dev stopped while it is busy", () => {
  // The signal reaches every process of the group at once. A wrapper between npm and the dev
  // script that relays signals and kills what does not answer within a few ms (tsx's CLI: no
  // answer in 30 ms, the signal again, which dev takes as "stop now"; 30 ms more, SIGKILL) would
  // cut the dev script's cleanup short on a loaded machine.
  it.each(["SIGINT", "SIGTERM"] as const)("%s to a dev process that reacts 300 ms late: it still cleans up", async (signal) => {
    const checkout = await cloneCheckout();
    const dev = runDev(checkout, ["--port", String(await freePort())]);
    const status = await devReady(checkout, dev);
    forgetDatabase(status);
    await stopDev(dev, signal, { pid: status.PID, ms: 300 });
    expect(existsSync(statusFile(checkout)), dev.output()).toBe(false);
    expect(await readdir(path.join(checkout, ".stack", "worker"))).toEqual([]);
  }, 60_000);
});
