import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import postgres from "postgres";
import { buildBundle, measureBundle } from "../bundle-check.ts";
import type { StackInfo } from "../stack/stack-info.ts";
import { userToken } from "../stack/tokens.ts";
import { projectRoot } from "../stack/migrate.ts";
import { freePort, waitUntil } from "../stack/net.ts";
import { startProcess } from "../stack/processes.ts";
import { startWorker, workerVars, type RunningWorker } from "../stack/worker.ts";
import { format, progress, table } from "./report.ts";

/**
 * Issue 4's measure: GET /status-levels/organizations/{id} as a member through `wrangler dev`,
 * with a cache hit and with the cache disabled (a miss every time), against the raw PostgREST
 * get_organization_status RPC through the same gateway as the baseline. Round trips per request
 * are counted at the gateway (database) and at the Upstash server (Redis).
 */
export interface HttpBenchOptions {
  durationSeconds: number;
  connections: number;
}

export const defaultHttpBench: HttpBenchOptions = { durationSeconds: 10, connections: 8 };

interface Run {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  dbPerRequest: number;
  redisPerRequest: number;
}

/** A Worker that does nothing but one fetch to the Upstash server: the runtime's floor for a cache hit. */
async function startProbeWorker(target: string, token: string): Promise<RunningWorker> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-probe-"));
  await writeFile(
    path.join(dir, "probe.js"),
    `export default { async fetch(req, env) {
      if (new URL(req.url).pathname !== "/fetch") return new Response("ok");
      const r = await fetch(env.TARGET, { method: "POST", headers: { authorization: "Bearer " + env.TOKEN }, body: '[["MGET","a","b","c","d"]]' });
      return new Response(await r.text(), { headers: { "content-type": "application/json" } });
    } };\n`,
  );
  await writeFile(path.join(dir, "wrangler.toml"), `name = "probe"\nmain = "probe.js"\ncompatibility_date = "2026-05-01"\nsend_metrics = false\n`);
  const port = await freePort();
  const proc = startProcess("wrangler-probe", path.join(projectRoot, "node_modules", ".bin", "wrangler"), [
    "dev", "--ip", "127.0.0.1", "--port", String(port), "--log-level", "warn", "--show-interactive-dev-session=false",
    "--var", `TARGET:${target}`, "--var", `TOKEN:${token}`,
  ], { cwd: dir, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", XDG_CONFIG_HOME: path.join(dir, "config") } });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil("probe worker", async () => (await fetch(url)).ok, { timeoutMs: 60_000, intervalMs: 100 });
  return { url, stop: proc.stop };
}

/**
 * The same Worker bundle (`wrangler deploy --dry-run --minify`) in workerd through Miniflare, with
 * none of wrangler dev's tooling. wrangler dev attaches DevTools to the runtime with the Network
 * domain enabled, so every subrequest sends events to wrangler's Node process; that costs about
 * eight times what the subrequest itself costs here, and a deployed Worker pays none of it.
 */
async function startWorkerd(vars: Record<string, string>): Promise<RunningWorker> {
  const outdir = await mkdtemp(path.join(os.tmpdir(), "status-levels-workerd-"));
  await buildBundle(outdir);
  const port = await freePort();
  const mf = new Miniflare({
    // Listed, not located: Miniflare's locator refuses the bundle's computed dynamic import.
    modules: [{ type: "ESModule", path: path.join(outdir, "index.js") }],
    modulesRoot: outdir,
    compatibilityDate: "2026-05-01",
    bindings: vars,
    host: "127.0.0.1",
    port,
  });
  await mf.ready;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      await mf.dispose();
      await rm(outdir, { recursive: true, force: true });
    },
  };
}

export async function runHttpBench(stack: StackInfo, options: HttpBenchOptions): Promise<string> {
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
  const orgId = crypto.randomUUID();
  const memberId = crypto.randomUUID();
  await sql.unsafe(`
    insert into auth.users (id, email) values ('${memberId}', 'bench@example.test');
    insert into public.organizations (id, name) values ('${orgId}', 'Bench organization');
    insert into public.organization_members values ('${orgId}', '${memberId}', 'member');
    insert into public.organization_status_levels (organization_id, level, valid_until) values ('${orgId}', 'B', now() + interval '300 days');
    insert into public.reviews (organization_id, status, published_at, responded_at)
      select '${orgId}', 'published', now() - g * interval '3 days', now() - g * interval '3 days' + interval '2 hours' from generate_series(1, 20) g;
  `);
  await sql.end({ timeout: 2 });
  const token = await userToken(stack.keys, memberId, { expiresIn: "2h" });

  const workers: RunningWorker[] = [];
  try {
    progress("starting wrangler dev twice (cache on, cache off)");
    const prefix = `bench-${Date.now()}`;
    const cached = await startWorker({ vars: workerVars(stack, { CACHE_KEY_PREFIX: prefix, LOG_LEVEL: "error" }) });
    workers.push(cached);
    const uncached = await startWorker({ vars: workerVars(stack, { CACHE_KEY_PREFIX: prefix, STATUS_CACHE_ENABLED: "false", LOG_LEVEL: "error" }) });
    workers.push(uncached);
    progress("starting the same Worker twice in workerd without wrangler dev (Miniflare)");
    const bareCached = await startWorkerd(workerVars(stack, { CACHE_KEY_PREFIX: prefix, LOG_LEVEL: "error" }));
    workers.push(bareCached);
    const bareUncached = await startWorkerd(workerVars(stack, { CACHE_KEY_PREFIX: prefix, STATUS_CACHE_ENABLED: "false", LOG_LEVEL: "error" }));
    workers.push(bareUncached);

    const counters = async () => {
      const db = (await (await fetch(`${stack.supabaseUrl}/__gateway/stats?subject=${memberId}`)).json()) as { total: number };
      const redis = (await (await fetch(`${stack.redisRestUrl}/__stats`, { headers: { authorization: `Bearer ${stack.redisRestToken}` } })).json()) as { requests: number };
      return { db: db.total, redis: redis.requests };
    };

    // The load comes from a second process (the autocannon CLI), so it does not share an event
    // loop with the gateway and the Upstash server that run in this one.
    const run = async (name: string, target: { url: string; method?: string; headers?: Record<string, string>; body?: string }): Promise<Run> => {
      progress(`${name}: ${options.durationSeconds} s, ${options.connections} connections`);
      const args = ["-j", "-c", String(options.connections), "-d", String(options.durationSeconds)];
      if (target.method) args.push("-m", target.method);
      for (const [k, v] of Object.entries(target.headers ?? {})) args.push("-H", `${k}=${v}`);
      if (target.body) args.push("-b", target.body);
      const before = await counters();
      const { stdout } = await promisify(execFile)(path.join(projectRoot, "node_modules", ".bin", "autocannon"), [...args, target.url], { maxBuffer: 16 * 1024 * 1024 });
      const after = await counters();
      const result = JSON.parse(stdout) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
      const requests = result.requests.total;
      return {
        name,
        rps: result.requests.average,
        p50: result.latency.p50,
        p99: result.latency.p99,
        requests,
        non2xx: result.non2xx + result.errors,
        dbPerRequest: (after.db - before.db) / requests,
        redisPerRequest: (after.redis - before.redis) / requests,
      };
    };

    const statusPath = `/status-levels/organizations/${orgId}`;
    const headers = { authorization: `Bearer ${token}` };
    // Warm every path once (JIT, connection pools, JWKS, the cache entry of the hit run).
    for (const url of [cached, uncached, bareCached, bareUncached].map((w) => `${w.url}${statusPath}`)) {
      for (let i = 0; i < 50; i++) await (await fetch(url, { headers })).arrayBuffer();
    }
    const probe = await startProbeWorker(`${stack.redisRestUrl}/pipeline`, stack.redisRestToken);
    workers.push(probe);
    for (let i = 0; i < 50; i++) await (await fetch(`${probe.url}/fetch`)).arrayBuffer();

    const baseline = await run("raw PostgREST RPC get_organization_status (baseline)", {
      url: `${stack.supabaseUrl}/rest/v1/rpc/get_organization_status`,
      method: "POST",
      headers: { ...headers, apikey: stack.anonKey, "content-type": "application/json" },
      body: JSON.stringify({ p_organization_id: orgId }),
    });
    const hit = await run("Worker GET status, cache hit", { url: `${cached.url}${statusPath}`, headers });
    const miss = await run("Worker GET status, cache disabled (miss)", { url: `${uncached.url}${statusPath}`, headers });
    const floorNone = await run("floor: this Worker, no subrequest (GET /levels)", { url: `${cached.url}/status-levels/levels` });
    const floorFetch = await run("floor: minimal Worker, one raw fetch to Upstash", { url: `${probe.url}/fetch` });
    const bareHit = await run("workerd without wrangler dev: GET status, cache hit", { url: `${bareCached.url}${statusPath}`, headers });
    const bareMiss = await run("workerd without wrangler dev: GET status, cache disabled", { url: `${bareUncached.url}${statusPath}`, headers });

    progress("bundle size (wrangler deploy --dry-run --minify)");
    const bundle = await measureBundle();
    const rows = [baseline, hit, miss, floorNone, floorFetch, bareHit, bareMiss].map((r, i) => [
      r.name,
      r.rps,
      r.p50,
      r.p99,
      `${format(r.rps / baseline.rps)}x`,
      format(r.dbPerRequest),
      format(r.redisPerRequest),
      r.non2xx,
      ["", ">= 1.0x, 0 DB", ">= 0.7x, 1 DB", "", "", ">= 1.0x, 0 DB", ">= 0.7x, 1 DB"][i]!,
    ]);
    return [
      table(["scenario", "req/s", "p50 ms", "p99 ms", "vs baseline", "DB trips/req", "Redis trips/req", "errors", "target"], rows),
      "",
      `Worker bundle: ${format(bundle.minifiedKiB)} KiB minified, ${format(bundle.gzipKiB)} KiB gzip (target < 250 KiB gzip).`,
      `Load: the autocannon CLI in its own process, ${options.connections} connections, ${options.durationSeconds} s per scenario, one machine (load generator, wrangler, workerd, PostgREST, Postgres, Redis share its cores).`,
      `The floors show what \`wrangler dev\` itself costs here: a hit makes one subrequest (Upstash), and a minimal Worker doing nothing but one fetch reaches ${format(floorFetch.rps)} req/s (hit/floor ${format(hit.rps / floorFetch.rps)}x); each subrequest also costs CPU in wrangler's own Node process (its DevTools proxy enables the Network domain), not only in workerd.`,
      `Without wrangler dev (the same minified bundle in workerd through Miniflare): cache hit ${format(bareHit.rps)} req/s (${format(bareHit.rps / baseline.rps)}x the baseline), cache disabled ${format(bareMiss.rps)} req/s (${format(bareMiss.rps / baseline.rps)}x).`,
    ].join("\n");
  } finally {
    for (const w of workers) await w.stop();
  }
}
