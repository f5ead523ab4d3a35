import { fork, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import postgres from "postgres";
import { buildBundle, measureBundle } from "../bundle-check.ts";
import { publicJwks } from "../stack/keys.ts";
import type { StackInfo } from "../stack/stack-info.ts";
import { userToken } from "../stack/tokens.ts";
import { projectRoot } from "../stack/migrate.ts";
import { freePort, waitUntil } from "../stack/net.ts";
import { startProcess } from "../stack/processes.ts";
import { startWorker, workerVars, type RunningWorker } from "../stack/worker.ts";
import { cpuBetween, descendants, pidListeningOn, postgresBackends, processName, sampleCpu, threadsCpuMs, type ProcessGroup } from "./cpu.ts";
import type { LoadReply, LoadRequest, LoadResult } from "./load.ts";
import { format, progress, table } from "./report.ts";
import type { ServiceReply, ServiceRequest } from "./services.ts";

/**
 * Issue 4's and 14's measure: GET /status-levels/organizations/{id} as a member, against the raw
 * PostgREST get_organization_status RPC through the same gateway as the baseline, and against
 * floors (a route with no subrequest, a Worker doing one fetch, a Worker doing only the hit's
 * Redis MGET), all in plain workerd (`workerd serve`, the minified bundle `wrangler deploy` builds),
 * the hit also under Miniflare and the main rows under `wrangler dev`. For each scenario: req/s, p50, p99, database and Redis round
 * trips per request (counted at the gateway and the Upstash adapter), and the CPU each process of
 * the stack spent per request, sampled from /proc over the measured window. The gateway and the
 * Upstash adapter run in processes of their own here (not in the bench's), so their CPU is theirs,
 * and so does the load generator. Plus a cold start: a fresh workerd to the first response. The
 * p99 rows at a set rate run against the floors too, and every plain-workerd row lists the V8
 * collections of its isolate in the window (`--trace-gc`): at 500 req/s a request's p99 is
 * whether a collection's pause fell in the window (it does for the MGET-only floor too).
 */
export interface HttpBenchOptions {
  durationSeconds: number;
  connections: number;
  /** Connections of the p99 rows (issue 14: p99 of a hit < 5 ms at 50). */
  manyConnections: number;
  /**
   * The request rate of the second p99 row. With as many requests as the connections take, the
   * latency is connections / throughput (Little's law): 50 connections at 1,500 req/s wait 33 ms
   * whatever the Worker does. At a set rate below saturation the p99 says what a request costs.
   */
  manyConnectionsRate: number;
  /** Organizations the cache-miss rows cycle through (each read once per Worker: a real miss). */
  missOrganizations: number;
}

export const defaultHttpBench: HttpBenchOptions = { durationSeconds: 10, connections: 8, manyConnections: 50, manyConnectionsRate: 500, missOrganizations: 12_000 };

interface Target {
  url: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  paths?: string[];
  bodies?: string[];
}

interface Run {
  name: string;
  connections: number;
  load: LoadResult;
  dbPerRequest: number;
  redisPerRequest: number;
  /** CPU ms per request by process label. */
  cpu: Map<string, number>;
  /** workerd's V8 collections during the window (plain workerd rows only). */
  gc: GcEvent[];
}

const benchDir = path.dirname(new URL(import.meta.url).pathname);

/** A bench helper script (services.ts, load.ts) in a Node process of its own, run with tsx's loader like this one (fork passes on `--import tsx`). */
function forkScript(file: string): ChildProcess {
  return fork(path.join(benchDir, file), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
}

async function startService(request: ServiceRequest): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const child = forkScript("services.ts");
  const reply = await new Promise<ServiceReply>((resolve, reject) => {
    child.once("message", (m) => resolve(m as ServiceReply));
    child.once("exit", (code) => reject(new Error(`${request.kind} exited with code ${code}`)));
    child.send(request);
  });
  if (reply.type !== "ready") throw new Error(`${request.kind}: ${reply.message}`);
  return {
    url: reply.url,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Autocannon in a process of its own; resolves with its figures (and its own CPU). */
export async function runLoad(request: LoadRequest): Promise<LoadResult> {
  const child = forkScript("load.ts");
  return new Promise<LoadResult>((resolve, reject) => {
    child.on("message", (m: LoadReply) => {
      if (m.type === "done") resolve(m.result);
      else if (m.type === "failed") reject(new Error(`load generator: ${m.message}`));
    });
    child.once("exit", (code) => code !== 0 && reject(new Error(`load generator exited with code ${code}`)));
    child.send(request);
  });
}

export interface Runtime extends RunningWorker {
  /** The processes this Worker's CPU is counted in: workerd, and wrangler's Node process when present. */
  groups: ProcessGroup[];
  /** The workerd process (for the cold start). */
  workerdPid: number;
}

/** A Worker module in workerd through Miniflare (the profiler uses its inspector). */
export async function startMiniflare(modulePath: string, bindings: Record<string, string>, extra: { inspectorPort?: number } = {}): Promise<Runtime> {
  const port = await freePort();
  const mf = new Miniflare({
    // Listed, not located: Miniflare's locator refuses the bundle's computed dynamic import.
    modules: [{ type: "ESModule", path: modulePath }],
    modulesRoot: path.dirname(modulePath),
    compatibilityDate: "2026-05-01",
    bindings,
    host: "127.0.0.1",
    port,
    ...extra,
  });
  await mf.ready;
  const pid = await pidListeningOn(port);
  if (pid === null || (await processName(pid)) !== "workerd") throw new Error(`no workerd listens on ${port}`);
  return {
    url: `http://127.0.0.1:${port}`,
    groups: [{ label: "workerd", pids: async () => [pid] }],
    workerdPid: pid,
    stop: () => mf.dispose(),
  };
}

/** The workerd binary wrangler and Miniflare run (the `workerd` package, a dependency of both). */
function workerdBinary(): string {
  return (createRequire(import.meta.url)("workerd") as { default: string }).default;
}

/** A garbage collection of a workerd isolate, from V8's `--trace-gc` line. */
interface GcEvent {
  pid: number;
  kind: string;
  pauseMs: number;
}

/** Every collection of the workerd processes started with `traceGc`, in order. */
const gcEvents: GcEvent[] = [];

/**
 * Reads V8's `--trace-gc` lines, e.g. `[pid:0x…]  17266 ms: Mark-Compact 16.9 (21.2) -> 3.7 (20.4)
 * MB, pooled: 0.8 MB, 22.61 / 0.00 ms …`: the kind and the main thread's pause (the first figure).
 */
function recordGc(pid: number, stdout: NodeJS.ReadableStream): void {
  let rest = "";
  stdout.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString("utf8")).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      // The kind may carry a reason: `Mark-Compact (reduce)`.
      const m = /\d+ ms: ([A-Za-z][A-Za-z -]*?)(?: \([a-z ]+\))? [\d.]+ \([\d.]+\) -> .*?, ([\d.]+) \/ [\d.]+ ms/.exec(line);
      if (m) gcEvents.push({ pid, kind: m[1]!, pauseMs: Number(m[2]) });
    }
  });
}

/**
 * A Worker module in workerd itself (`workerd serve` with a config of one Worker and an outbound
 * network that reaches 127.0.0.1): one isolate, what a deployment runs, and nothing else. Miniflare
 * puts its own entry Worker in front of the user's (every request passes two isolates), which the
 * Miniflare rows show the price of.
 */
export async function startWorkerd(modulePath: string, bindings: Record<string, string>, options: { traceGc?: boolean } = {}): Promise<Runtime> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-workerd-"));
  await copyFile(modulePath, path.join(dir, "worker.js"));
  const port = await freePort();
  // Cap'n Proto text: a JSON string is a valid string literal for the values we pass (no control characters).
  const text = (v: string) => JSON.stringify(v);
  await writeFile(
    path.join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  ${options.traceGc ? `v8Flags = ["--trace-gc"],` : ""}
  services = [
    (name = "main", worker = (
      modules = [ (name = "worker.js", esModule = embed "worker.js") ],
      compatibilityDate = "2026-05-01",
      bindings = [ ${Object.entries(bindings).map(([k, v]) => `(name = ${text(k)}, text = ${text(v)})`).join(", ")} ],
      globalOutbound = "network",
    )),
    (name = "network", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
`,
  );
  // V8 prints its GC trace with printf: line-buffered through stdbuf, so each line arrives when
  // the collection happens, not when a 4 KiB buffer fills.
  const proc = options.traceGc
    ? startProcess("workerd", "stdbuf", ["-oL", workerdBinary(), "serve", path.join(dir, "config.capnp")], { cwd: dir })
    : startProcess("workerd", workerdBinary(), ["serve", path.join(dir, "config.capnp")], { cwd: dir });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil("workerd", async () => {
      const failure = proc.failure();
      if (failure) throw new Error(`${failure}: ${proc.recentOutput()}`);
      return (await pidListeningOn(port)) !== null;
    }, { timeoutMs: 30_000, intervalMs: 10 });
  } catch (error) {
    await proc.stop();
    throw error;
  }
  const pid = proc.child.pid!;
  if (options.traceGc) recordGc(pid, proc.child.stdout!);
  return {
    url,
    groups: [{ label: "workerd", pids: async () => [pid] }],
    workerdPid: pid,
    stop: async () => {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `wrangler dev`'s processes: the one listening (wrangler 4's proxy Worker, a workerd) is a child of
 * wrangler's Node process, whose other workerd runs the Worker.
 */
async function wranglerGroups(worker: RunningWorker): Promise<ProcessGroup[]> {
  const listening = await pidListeningOn(Number(new URL(worker.url).port));
  if (listening === null) throw new Error(`nothing listens on ${worker.url}`);
  const wrangler = (await descendants(1)).find((p) => p.pid === listening)?.ppid;
  if (!wrangler) throw new Error("wrangler's process not found");
  return [
    { label: "workerd", pids: async () => (await descendants(wrangler)).filter((p) => p.comm === "workerd").map((p) => p.pid) },
    { label: "wrangler node", pids: async () => [wrangler] },
  ];
}

/** Bundles a probe Worker's source as the Worker itself is bundled (minified, for workerd). */
function bundleProbe(outfile: string, contents: string) {
  return build({
    stdin: { contents, resolveDir: projectRoot, loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    outfile,
    logLevel: "error",
  });
}

/** The floors: a Worker that answers at once, one that makes one raw fetch, one that makes the hit's MGET through @upstash/redis. */
async function buildProbes(dir: string): Promise<{ fetchProbe: string; mgetProbe: string; zodProbe: string }> {
  const fetchProbe = path.join(dir, "fetch-probe.js");
  await writeFile(
    fetchProbe,
    `export default { async fetch(req, env) {
      if (new URL(req.url).pathname !== "/fetch") return new Response("ok");
      const r = await fetch(env.UPSTASH_URL + "/pipeline", { method: "POST", headers: { authorization: "Bearer " + env.UPSTASH_TOKEN }, body: JSON.stringify([["MGET", ...JSON.parse(env.KEYS)]]) });
      return new Response(await r.text(), { headers: { "content-type": "application/json" } });
    } };\n`,
  );
  const mgetProbe = path.join(dir, "mget-probe.js");
  await bundleProbe(mgetProbe, `import { Redis } from "@upstash/redis/cloudflare";
        export default { async fetch(req, env) {
          const redis = new Redis({ url: env.UPSTASH_URL, token: env.UPSTASH_TOKEN, retry: false, enableTelemetry: false, enableAutoPipelining: false, readYourWrites: false });
          const values = await redis.mget(...JSON.parse(env.KEYS));
          return Response.json(values[2]);
        } };`);
  // The libraries' own share of a cold start: hono with @hono/zod-openapi (and so zod) loaded, one route.
  const zodProbe = path.join(dir, "zod-probe.js");
  await bundleProbe(zodProbe, `import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
        const app = new OpenAPIHono();
        const route = createRoute({ method: "get", path: "/", responses: { 200: { description: "ok", content: { "application/json": { schema: z.object({ ok: z.boolean() }) } } } } });
        app.openapi(route, (c) => c.json({ ok: true }, 200));
        export default app;`);
  return { fetchProbe, mgetProbe, zodProbe };
}

/**
 * A cold start: a fresh workerd with the module, from spawning it to the first response's end,
 * wall time and its CPU (all threads). The same for the fetch probe, a near-empty module, is the
 * runtime's own part; the difference is what this bundle costs (evaluation included: workerd
 * evaluates the module before it listens).
 */
async function coldStart(modulePath: string, bindings: Record<string, string>, request: { path: string; headers?: Record<string, string> }): Promise<{ wallMs: number; cpuMs: number; firstResponseMs: number }> {
  const started = performance.now();
  const runtime = await startWorkerd(modulePath, bindings);
  const ready = performance.now();
  const res = await fetch(`${runtime.url}${request.path}`, { headers: request.headers ?? {} });
  await res.arrayBuffer();
  const done = performance.now();
  const cpuMs = await threadsCpuMs(runtime.workerdPid);
  await runtime.stop();
  if (!res.ok) throw new Error(`cold start: ${request.path} answered ${res.status}`);
  return { wallMs: done - started, cpuMs, firstResponseMs: done - ready };
}

/**
 * The bench's data: a member of one organization (level B, 20 reviews) and of `missOrganizations`
 * more like it, which the cache-miss rows cycle through; and the member's access token.
 */
export async function seedBench(stack: StackInfo, missOrganizations: number): Promise<{ orgId: string; memberId: string; missOrgs: string[]; token: string }> {
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
  const orgId = crypto.randomUUID();
  const memberId = crypto.randomUUID();
  progress(`seeding 1 + ${missOrganizations} organizations with a level B and 20 reviews each`);
  await sql.unsafe(`
    insert into auth.users (id, email) values ('${memberId}', 'bench@example.test');
    insert into public.organizations (id, name) values ('${orgId}', 'Bench organization');
    insert into public.organization_members values ('${orgId}', '${memberId}', 'member');
    insert into public.organization_status_levels (organization_id, level, valid_until) values ('${orgId}', 'B', now() + interval '300 days');
    insert into public.reviews (organization_id, status, published_at, responded_at)
      select '${orgId}', 'published', now() - g * interval '3 days', now() - g * interval '3 days' + interval '2 hours' from generate_series(1, 20) g;
    create temporary table bench_orgs as select gen_random_uuid() as id, g from generate_series(1, ${missOrganizations}) g;
    insert into public.organizations (id, name) select id, 'Bench organization ' || g from bench_orgs;
    insert into public.organization_members select id, '${memberId}', 'member' from bench_orgs;
    insert into public.organization_status_levels (organization_id, level, valid_until) select id, 'B', now() + interval '300 days' from bench_orgs;
    insert into public.reviews (organization_id, status, published_at, responded_at)
      select o.id, 'published', now() - r * interval '3 days', now() - r * interval '3 days' + interval '2 hours' from bench_orgs o, generate_series(1, 20) r;
  `);
  const missOrgs = (await sql.unsafe(`select id from bench_orgs order by g`)).map((r) => r.id as string);
  await sql.unsafe(`analyze`);
  await sql.end({ timeout: 2 });
  const token = await userToken(stack.keys, memberId, { expiresIn: "2h" });
  return { orgId, memberId, missOrgs, token };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runHttpBench(stack: StackInfo, options: HttpBenchOptions): Promise<string> {
  const { orgId, memberId, missOrgs, token } = await seedBench(stack, options.missOrganizations);
  const prefix = `bench-${Date.now()}`;
  const cacheKeys = [`${prefix}:status:${orgId}:gen`, `${prefix}:status:all:gen`, `${prefix}:status:${orgId}:full`, `${prefix}:status:${orgId}:public`, `${prefix}:role:${orgId}:${memberId}`];

  const stops: Array<() => Promise<void>> = [];
  const dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-http-bench-"));
  stops.push(() => rm(dir, { recursive: true, force: true }));
  try {
    progress("starting the gateway and the Upstash adapter in processes of their own");
    const gateway = await startService({ kind: "gateway", postgrestUrl: stack.postgrestUrl, jwks: publicJwks(stack.keys) });
    stops.push(gateway.stop);
    const upstash = await startService({ kind: "upstash", redisUrl: stack.redisUrl, token: stack.redisRestToken });
    stops.push(upstash.stop);
    const services = { ...stack, supabaseUrl: gateway.url, redisRestUrl: upstash.url };
    const vars = (extra: Record<string, string>) => workerVars(services, { LOG_LEVEL: "error", ...extra });

    const postgrestPid = await pidListeningOn(Number(new URL(stack.postgrestUrl).port));
    const postmasterPid = await pidListeningOn(Number(new URL(stack.databaseUrl).port || 5432));
    const redisPid = await pidListeningOn(Number(new URL(stack.redisUrl).port || 6379));
    const stackGroups: ProcessGroup[] = [
      { label: "PostgREST", pids: async () => (postgrestPid ? [postgrestPid] : []) },
      { label: "Postgres", pids: async () => (postmasterPid ? postgresBackends(postmasterPid, stack.databaseName) : []) },
      { label: "Redis", pids: async () => (redisPid ? [redisPid] : []) },
      { label: "Upstash adapter", pids: async () => [upstash.pid] },
      { label: "gateway", pids: async () => [gateway.pid] },
    ];

    progress("building the Worker bundle (wrangler deploy --dry-run --minify) and the floor Workers");
    await buildBundle(dir);
    const bundle = path.join(dir, "index.js");
    const { fetchProbe, mgetProbe, zodProbe } = await buildProbes(dir);
    const probeVars = { UPSTASH_URL: upstash.url, UPSTASH_TOKEN: stack.redisRestToken, KEYS: JSON.stringify(cacheKeys) };

    const statusPath = `/status-levels/organizations/${orgId}`;
    const headers = { authorization: `Bearer ${token}` };

    progress("cold starts: a fresh workerd to the first response, 5 times each");
    type Cold = Awaited<ReturnType<typeof coldStart>>;
    const colds = { bundle: [] as Cold[], levels: [] as Cold[], probe: [] as Cold[], zod: [] as Cold[] };
    for (let i = 0; i < 5; i++) {
      colds.probe.push(await coldStart(fetchProbe, probeVars, { path: "/" }));
      colds.zod.push(await coldStart(zodProbe, {}, { path: "/" }));
      colds.levels.push(await coldStart(bundle, vars({ CACHE_KEY_PREFIX: `${prefix}-cold${i}` }), { path: "/status-levels/levels" }));
      colds.bundle.push(await coldStart(bundle, vars({ CACHE_KEY_PREFIX: `${prefix}-cold${i}` }), { path: statusPath, headers }));
    }

    progress("starting the Worker in plain workerd (cache on, cache off, misses) and the floor Workers; and under Miniflare");
    const start = async (p: Promise<Runtime>) => {
      const r = await p;
      stops.push(r.stop);
      return r;
    };
    // The long-running workerd processes trace V8's collections (not the cold starts: printing costs).
    const traced = { traceGc: true };
    const bareCached = await start(startWorkerd(bundle, vars({ CACHE_KEY_PREFIX: prefix }), traced));
    const bareMissing = await start(startWorkerd(bundle, vars({ CACHE_KEY_PREFIX: `${prefix}-miss` }), traced));
    const bareUncached = await start(startWorkerd(bundle, vars({ CACHE_KEY_PREFIX: prefix, STATUS_CACHE_ENABLED: "false" }), traced));
    const fetchFloor = await start(startWorkerd(fetchProbe, probeVars, traced));
    const mgetFloor = await start(startWorkerd(mgetProbe, probeVars, traced));
    const mfCached = await start(startMiniflare(bundle, vars({ CACHE_KEY_PREFIX: prefix })));
    const mfFloor = await start(startMiniflare(fetchProbe, probeVars));

    progress("starting the Worker under wrangler dev (cache on, misses)");
    const wranglerCached = await startWorker({ vars: vars({ CACHE_KEY_PREFIX: prefix }), logLevel: "error" });
    stops.push(wranglerCached.stop);
    const wranglerMissing = await startWorker({ vars: vars({ CACHE_KEY_PREFIX: `${prefix}-wmiss` }), logLevel: "error" });
    stops.push(wranglerMissing.stop);
    const wranglerFetch = await startWranglerProbe(fetchProbe, probeVars, dir);
    stops.push(wranglerFetch.stop);
    const wrangler = {
      cached: await wranglerGroups(wranglerCached),
      missing: await wranglerGroups(wranglerMissing),
      fetch: await wranglerGroups(wranglerFetch),
    };

    // Warm every path (JIT, connection pools, JWKS, the cache entry of the hit runs); the misses
    // warm on organizations outside the set they then cycle through.
    const warm = async (url: string, h: Record<string, string> = {}, n = 50) => {
      for (let i = 0; i < n; i++) {
        const res = await fetch(url, { headers: h });
        if (!res.ok) throw new Error(`warm-up: ${url} answered ${res.status}: ${await res.text()}`);
        await res.arrayBuffer();
      }
    };
    for (const w of [bareCached, bareUncached, mfCached, wranglerCached]) await warm(`${w.url}${statusPath}`, headers);
    await warm(`${mfFloor.url}/`);
    for (const w of [bareMissing, wranglerMissing]) await warm(`${w.url}${statusPath}`, headers);
    for (const w of [fetchFloor, mgetFloor]) await warm(`${w.url}/fetch`);
    await warm(`${wranglerFetch.url}/fetch`);
    await warm(`${bareCached.url}/status-levels/levels`);

    const counters = async () => {
      const db = (await (await fetch(`${gateway.url}/__gateway/stats`)).json()) as { total: number };
      const redis = (await (await fetch(`${upstash.url}/__stats`, { headers: { authorization: `Bearer ${stack.redisRestToken}` } })).json()) as { requests: number };
      return { db: db.total, redis: redis.requests };
    };

    const run = async (name: string, target: Target, workerGroups: ProcessGroup[], connections = options.connections, overallRate?: number): Promise<Run> => {
      progress(`${name}: ${options.durationSeconds} s, ${connections} connections${overallRate ? ` at ${overallRate} req/s (open loop)` : ""}`);
      const groups = [...workerGroups, ...stackGroups];
      const gcFrom = gcEvents.length;
      const before = { n: await counters(), cpu: await sampleCpu(groups) };
      const load = await runLoad({ ...target, connections, durationSeconds: options.durationSeconds, ...(overallRate ? { rate: overallRate } : {}) });
      const after = { cpu: await sampleCpu(groups), n: await counters() };
      const workerPids = new Set((await Promise.all(workerGroups.map((g) => g.pids()))).flat());
      const gc = gcEvents.slice(gcFrom).filter((e) => workerPids.has(e.pid));
      const spent = cpuBetween(before.cpu, after.cpu);
      spent.set("load generator", load.cpuMs);
      const requests = load.requests;
      return {
        name,
        connections,
        load,
        dbPerRequest: (after.n.db - before.n.db) / requests,
        redisPerRequest: (after.n.redis - before.n.redis) / requests,
        cpu: new Map([...spent].map(([k, v]) => [k, v / requests])),
        gc,
      };
    };

    const bare = bareCached.groups;
    const missPaths = (from: number, to: number) => missOrgs.slice(from, to).map((id) => `/status-levels/organizations/${id}`);
    const half = Math.floor(missOrgs.length / 2);
    const rewarm = () => warm(`${bareCached.url}${statusPath}`, headers, 5);

    const baseline = await run(
      "raw PostgREST RPC (baseline)",
      { url: `${gateway.url}/rest/v1/rpc/get_organization_status`, method: "POST", headers: { ...headers, apikey: stack.anonKey, "content-type": "application/json" }, bodies: missOrgs.slice(0, half).map((id) => JSON.stringify({ p_organization_id: id })) },
      [],
    );
    await rewarm();
    const hit = await run("cache hit", { url: `${bareCached.url}${statusPath}`, headers }, bare);
    const miss = await run("cache miss (a new organization each request)", { url: bareMissing.url, headers, paths: missPaths(0, half) }, bareMissing.groups);
    const bypass = await run("cache disabled (no Redis)", { url: `${bareUncached.url}${statusPath}`, headers }, bareUncached.groups);
    await rewarm();
    const mget = await run("floor: a Worker doing only the hit's MGET", { url: `${mgetFloor.url}/fetch` }, mgetFloor.groups);
    const oneFetch = await run("floor: a Worker doing one raw fetch (same MGET)", { url: `${fetchFloor.url}/fetch` }, fetchFloor.groups);
    const none = await run("floor: this Worker, no subrequest (GET /levels)", { url: `${bareCached.url}/status-levels/levels` }, bare);
    const empty = await run("floor: a Worker answering at once", { url: `${fetchFloor.url}/` }, fetchFloor.groups);
    await rewarm();
    const hitMany = await run(`cache hit, ${options.manyConnections} connections`, { url: `${bareCached.url}${statusPath}`, headers }, bare, options.manyConnections);
    await rewarm();
    const hitManyRated = await run(
      `cache hit, up to ${options.manyConnections} connections, ${options.manyConnectionsRate} req/s evenly`,
      { url: `${bareCached.url}${statusPath}`, headers },
      bare,
      options.manyConnections,
      options.manyConnectionsRate,
    );
    // The same open loop against the floors: a p99 they share is the runtime's and this machine's,
    // not the Worker's.
    const emptyRated = await run(
      `floor: a Worker answering at once, ${options.manyConnections} connections, ${options.manyConnectionsRate} req/s evenly`,
      { url: `${fetchFloor.url}/` },
      fetchFloor.groups,
      options.manyConnections,
      options.manyConnectionsRate,
    );
    const mgetRated = await run(
      `floor: only the hit's MGET, ${options.manyConnections} connections, ${options.manyConnectionsRate} req/s evenly`,
      { url: `${mgetFloor.url}/fetch` },
      mgetFloor.groups,
      options.manyConnections,
      options.manyConnectionsRate,
    );
    await warm(`${mfCached.url}${statusPath}`, headers, 5);
    const mfHit = await run("Miniflare: cache hit", { url: `${mfCached.url}${statusPath}` , headers }, mfCached.groups);
    const mfEmpty = await run("Miniflare floor: a Worker answering at once", { url: `${mfFloor.url}/` }, mfFloor.groups);
    await warm(`${wranglerCached.url}${statusPath}`, headers, 5);
    const wHit = await run("wrangler dev: cache hit", { url: `${wranglerCached.url}${statusPath}`, headers }, wrangler.cached);
    const wMiss = await run("wrangler dev: cache miss", { url: wranglerMissing.url, headers, paths: missPaths(half, missOrgs.length) }, wrangler.missing);
    const wFetch = await run("wrangler dev floor: one raw fetch", { url: `${wranglerFetch.url}/fetch` }, wrangler.fetch);

    progress("bundle size (wrangler deploy --dry-run --minify)");
    const size = await measureBundle();

    const workerCpu = (r: Run) => (r.cpu.get("workerd") ?? 0) + (r.cpu.get("wrangler node") ?? 0);
    const ratio = (a: number, b: number) => `${format(a / b)}x`;
    const rows: Array<{ run: Run; floor?: Run; target: string }> = [
      { run: baseline, target: "" },
      { run: hit, floor: mget, target: "CPU <= 0.3 ms and <= 2x MGET floor; >= 2x baseline; 0 DB" },
      { run: miss, floor: hit, target: "CPU <= hit + 0.5 ms; >= 0.8x baseline; 1 DB" },
      { run: bypass, floor: none, target: "" },
      { run: mget, floor: oneFetch, target: "" },
      { run: oneFetch, floor: empty, target: "" },
      { run: none, floor: empty, target: "" },
      { run: empty, target: "" },
      { run: hitMany, floor: mget, target: "p99 < 5 ms (saturated: latency = connections / throughput)" },
      { run: hitManyRated, floor: mgetRated, target: "p99 < 5 ms" },
      { run: mgetRated, floor: emptyRated, target: "" },
      { run: emptyRated, target: "" },
      { run: mfHit, floor: mfEmpty, target: "" },
      { run: mfEmpty, floor: empty, target: "" },
      { run: wHit, floor: wFetch, target: "" },
      { run: wMiss, floor: wHit, target: "" },
      { run: wFetch, target: "" },
    ];
    const labels = ["workerd", "wrangler node", "PostgREST", "Postgres", "Redis", "Upstash adapter", "gateway", "load generator"];
    const cpuCell = (r: Run, label: string) => (r.cpu.has(label) ? format(r.cpu.get(label)!) : "");
    const bundleCold = median(colds.bundle.map((c) => c.wallMs));
    const probeCold = median(colds.probe.map((c) => c.wallMs));
    const bundleColdCpu = median(colds.bundle.map((c) => c.cpuMs));
    const probeColdCpu = median(colds.probe.map((c) => c.cpuMs));
    return [
      table(
        ["scenario", "conns", "req/s", "p50 ms", "p99 ms", "vs baseline", "floor", "req/s vs floor", "DB trips/req", "Redis trips/req", "errors", "target"],
        rows.map(({ run: r, floor, target }) => [
          r.name,
          r.connections,
          r.load.rps,
          r.load.p50,
          r.load.p99,
          ratio(r.load.rps, baseline.load.rps),
          floor?.name.replace(/^(wrangler dev )?floor: /, "") ?? "",
          floor ? ratio(r.load.rps, floor.load.rps) : "",
          format(r.dbPerRequest),
          format(r.redisPerRequest),
          r.load.non2xx + r.load.errors,
          target,
        ]),
      ),
      "",
      "CPU ms per request, per process (sampled from /proc over the measured window; Worker = workerd + wrangler's Node process):",
      "",
      table(
        ["scenario", ...labels, "Worker", "Worker vs floor", "Worker - floor ms"],
        rows.map(({ run: r, floor }) => [
          r.name,
          ...labels.map((l) => cpuCell(r, l)),
          r.cpu.has("workerd") ? format(workerCpu(r)) : "",
          floor && r.cpu.has("workerd") ? ratio(workerCpu(r), workerCpu(floor)) : "",
          floor && r.cpu.has("workerd") ? format(workerCpu(r) - workerCpu(floor)) : "",
        ]),
      ),
      "",
      "V8 garbage collections of the Worker's isolate in the window (plain workerd, from --trace-gc; pauses are the main thread's, every request waits them out):",
      "",
      table(
        ["scenario", "requests", "scavenges", "longest ms", "mark-compacts", "longest ms", "GC pause ms / 1000 requests"],
        rows
          .filter(({ run: r }) => !/^(Miniflare|wrangler dev)/.test(r.name))
          .filter(({ run: r }) => r.cpu.has("workerd"))
          .map(({ run: r }) => {
            const of = (kind: RegExp) => r.gc.filter((e) => kind.test(e.kind));
            const longest = (es: GcEvent[]) => (es.length ? Math.max(...es.map((e) => e.pauseMs)) : "");
            const minor = of(/Scavenge|Minor/);
            const major = of(/Mark-Compact|Mark-Sweep/);
            return [r.name, r.load.requests, String(minor.length), longest(minor), String(major.length), longest(major), (r.gc.reduce((t, e) => t + e.pauseMs, 0) / r.load.requests) * 1000];
          }),
      ),
      "",
      table(
        ["cold start (fresh workerd to first response, median of 5)", "wall ms", "workerd CPU ms", "first request after listening ms"],
        [
          ["this Worker, GET status (a miss: JWKS, token, MGET, RPC)", bundleCold, bundleColdCpu, median(colds.bundle.map((c) => c.firstResponseMs))],
          ["this Worker, GET /levels (no subrequest)", median(colds.levels.map((c) => c.wallMs)), median(colds.levels.map((c) => c.cpuMs)), median(colds.levels.map((c) => c.firstResponseMs))],
          ["a near-empty Worker (the runtime's own start)", probeCold, probeColdCpu, median(colds.probe.map((c) => c.firstResponseMs))],
          ["a Worker of hono + @hono/zod-openapi (zod) and one route", median(colds.zod.map((c) => c.wallMs)), median(colds.zod.map((c) => c.cpuMs)), median(colds.zod.map((c) => c.firstResponseMs))],
          ["difference: what this bundle costs, GET status (target < 50 ms)", bundleCold - probeCold, bundleColdCpu - probeColdCpu, ""],
          ["difference: GET /levels (loading the bundle, the first request's own work aside)", median(colds.levels.map((c) => c.wallMs)) - probeCold, median(colds.levels.map((c) => c.cpuMs)) - probeColdCpu, ""],
          ["difference: hono + @hono/zod-openapi alone", median(colds.zod.map((c) => c.wallMs)) - probeCold, median(colds.zod.map((c) => c.cpuMs)) - probeColdCpu, ""],
        ],
      ),
      "",
      `Worker bundle: ${format(size.minifiedKiB)} KiB minified, ${format(size.gzipKiB)} KiB gzip (target < 250 KiB gzip).`,
      `Load: autocannon in its own process, ${options.durationSeconds} s per scenario, one machine (${os.cpus().length} cores shared by the load generator, workerd, PostgREST, Postgres, Redis, the adapter and the gateway). Misses cycle through ${missOrgs.length} organizations (each read once per Worker); the baseline calls the RPC for the same organizations.`,
    ].join("\n");
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
}

/** A floor Worker under wrangler dev (for the rows that show what wrangler dev itself costs). */
async function startWranglerProbe(module: string, bindings: Record<string, string>, dir: string): Promise<RunningWorker> {
  const probeDir = await mkdtemp(path.join(dir, "wrangler-probe-"));
  await writeFile(path.join(probeDir, "probe.js"), await readFile(module, "utf8"));
  await writeFile(path.join(probeDir, "wrangler.toml"), `name = "probe"\nmain = "probe.js"\ncompatibility_date = "2026-05-01"\nsend_metrics = false\n`);
  const port = await freePort();
  const proc = startProcess("wrangler-probe", path.join(projectRoot, "node_modules", ".bin", "wrangler"), [
    "dev", "--ip", "127.0.0.1", "--port", String(port), "--log-level", "warn", "--show-interactive-dev-session=false",
    ...Object.entries(bindings).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ], { cwd: probeDir, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", XDG_CONFIG_HOME: path.join(probeDir, "config") } });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil("probe worker", async () => (await fetch(url)).ok, { timeoutMs: 60_000, intervalMs: 100 });
  return { url, stop: proc.stop };
}
