import autocannon from "autocannon";
import postgres from "postgres";
import { measureBundle } from "../bundle-check.ts";
import type { StackInfo } from "../stack/stack-info.ts";
import { userToken } from "../stack/tokens.ts";
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

    const counters = async () => {
      const db = (await (await fetch(`${stack.supabaseUrl}/__gateway/stats?subject=${memberId}`)).json()) as { total: number };
      const redis = (await (await fetch(`${stack.redisRestUrl}/__stats`, { headers: { authorization: `Bearer ${stack.redisRestToken}` } })).json()) as { requests: number };
      return { db: db.total, redis: redis.requests };
    };

    const run = async (name: string, opts: autocannon.Options): Promise<Run> => {
      progress(`${name}: ${options.durationSeconds} s, ${options.connections} connections`);
      const before = await counters();
      const result = await autocannon({ connections: options.connections, duration: options.durationSeconds, ...opts });
      const after = await counters();
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
    for (const url of [`${cached.url}${statusPath}`, `${uncached.url}${statusPath}`]) {
      for (let i = 0; i < 50; i++) await (await fetch(url, { headers })).arrayBuffer();
    }
    const baseline = await run("raw PostgREST RPC get_organization_status (baseline)", {
      url: `${stack.supabaseUrl}/rest/v1/rpc/get_organization_status`,
      method: "POST",
      headers: { ...headers, apikey: stack.anonKey, "content-type": "application/json" },
      body: JSON.stringify({ p_organization_id: orgId }),
    });
    const hit = await run("Worker GET status, cache hit", { url: `${cached.url}${statusPath}`, headers });
    const miss = await run("Worker GET status, cache disabled (miss)", { url: `${uncached.url}${statusPath}`, headers });

    progress("bundle size (wrangler deploy --dry-run --minify)");
    const bundle = await measureBundle();
    const rows = [baseline, hit, miss].map((r, i) => [
      r.name,
      r.rps,
      r.p50,
      r.p99,
      `${format(r.rps / baseline.rps)}x`,
      format(r.dbPerRequest),
      format(r.redisPerRequest),
      r.non2xx,
      ["", ">= 1.0x, 0 DB", ">= 0.7x, 1 DB"][i]!,
    ]);
    return [
      table(["scenario", "req/s", "p50 ms", "p99 ms", "vs baseline", "DB trips/req", "Redis trips/req", "errors", "target"], rows),
      "",
      `Worker bundle: ${format(bundle.minifiedKiB)} KiB minified, ${format(bundle.gzipKiB)} KiB gzip (target < 250 KiB gzip).`,
      `Load: autocannon, ${options.connections} connections, ${options.durationSeconds} s per scenario, one machine (load generator, workerd, PostgREST, Postgres, Redis share its cores).`,
    ].join("\n");
  } finally {
    for (const w of workers) await w.stop();
  }
}
