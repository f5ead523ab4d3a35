/**
 * `npm run bench -- profile`: where the Worker's CPU goes on a cache hit and on a cache miss. The
 * Worker's bundle as `wrangler deploy` builds it, but not minified (so functions keep their names),
 * runs in plain workerd (Miniflare) with its DevTools inspector on; under load, V8's sampling
 * profiler records it (Profiler.start / Profiler.stop over the inspector's WebSocket). Each sample's
 * function is put in the module it comes from (the bundle's `// node_modules/...` and
 * `// functions/...` markers) and the report lists the top functions by self time, by module, and
 * the functions (with what they call) by total time.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import WebSocket from "ws";
import type { StackInfo } from "../stack/stack-info.ts";
import { projectRoot } from "../stack/migrate.ts";
import { freePort, waitUntil } from "../stack/net.ts";
import { workerVars } from "../stack/worker.ts";
import { runLoad, seedBench, startMiniflare } from "./http.ts";
import { format, progress, table } from "./report.ts";

export interface ProfileOptions {
  durationSeconds: number;
  connections: number;
  top: number;
}

export const defaultProfile: ProfileOptions = { durationSeconds: 8, connections: 4, top: 15 };

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** The unminified bundle (wrangler deploy --dry-run, no --minify) in `outdir`. */
async function buildReadableBundle(outdir: string): Promise<string> {
  await promisify(execFile)(path.join(projectRoot, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
    cwd: projectRoot,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true", XDG_CONFIG_HOME: path.join(outdir, "config") },
    timeout: 120_000,
  });
  return path.join(outdir, "index.js");
}

/** Line (0-based) -> the module it belongs to, from esbuild's `// path` markers. */
function moduleIndex(source: string): (line: number) => string {
  const starts: Array<{ line: number; module: string }> = [];
  source.split("\n").forEach((text, line) => {
    const m = /^\/\/ ((?:node_modules|functions)\/\S+)$/.exec(text);
    if (m) starts.push({ line, module: m[1]!.replace(/^node_modules\/((?:@[^/]+\/)?[^/]+)\/.*/, "$1") });
  });
  return (line) => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = "(bundle)";
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]!.line <= line) {
        found = starts[mid]!.module;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

class Inspector {
  private nextId = 1;
  private pending = new Map<number, (result: unknown) => void>();
  private constructor(private ws: WebSocket) {
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id !== undefined) this.pending.get(msg.id)?.(msg.error ? Promise.reject(new Error(msg.error.message)) : msg.result);
    });
  }
  static async connect(port: number): Promise<Inspector> {
    let target = "";
    await waitUntil("workerd inspector", async () => {
      const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ id: string; webSocketDebuggerUrl: string }>;
      // Miniflare's own Workers (core:entry, which hands every request on, cache:*, ...) are listed
      // too: the user's Worker is core:user:<name>.
      const user = list.find((t) => t.id.startsWith("core:user:"));
      target = user?.webSocketDebuggerUrl ?? "";
      return target !== "";
    }, { timeoutMs: 10_000, intervalMs: 100 });
    const ws = new WebSocket(target);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    return new Inspector(ws);
  }
  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve) => {
      this.pending.set(id, resolve as (r: unknown) => void);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
  close() {
    this.ws.close();
  }
}

interface Summary {
  totalMs: number;
  requests: number;
  byFunction: Array<{ name: string; module: string; selfMs: number }>;
  byModule: Array<{ module: string; selfMs: number }>;
  inclusive: Array<{ name: string; module: string; totalMs: number }>;
}

function summarize(profile: CpuProfile, moduleOf: (line: number) => string, requests: number): Summary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const label = (n: CpuProfileNode) => {
    const f = n.callFrame;
    const module = f.url.endsWith("index.js") ? moduleOf(f.lineNumber) : f.url ? path.basename(f.url) : "(runtime)";
    return { name: f.functionName || "(anonymous)", module, key: `${f.functionName}|${f.url}:${f.lineNumber}:${f.columnNumber}` };
  };
  const fn = new Map<string, { name: string; module: string; selfMs: number }>();
  const mod = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = nodes.get(id)!;
    const { name, module, key } = label(n);
    if (name === "(idle)") continue;
    total += us;
    const e = fn.get(key) ?? { name, module, selfMs: 0 };
    e.selfMs += us / 1000;
    fn.set(key, e);
    mod.set(module, (mod.get(module) ?? 0) + us / 1000);
  }
  // Total (inclusive) time per function: a function counted once per sample however often it recurses.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, { name: string; module: string; totalMs: number }>();
  for (const [id, us] of selfUs) {
    if (nodes.get(id)!.callFrame.functionName === "(idle)") continue;
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { name, module, key } = label(nodes.get(at)!);
      if (seen.has(key) || name === "(root)") continue;
      seen.add(key);
      const e = inclusive.get(key) ?? { name, module, totalMs: 0 };
      e.totalMs += us / 1000;
      inclusive.set(key, e);
    }
  }
  return {
    totalMs: total / 1000,
    requests,
    byFunction: [...fn.values()].sort((a, b) => b.selfMs - a.selfMs),
    byModule: [...mod].map(([module, selfMs]) => ({ module, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
    inclusive: [...inclusive.values()].sort((a, b) => b.totalMs - a.totalMs),
  };
}

function report(title: string, s: Summary, top: number): string {
  const perReq = (ms: number) => format((ms / s.requests) * 1000);
  const share = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(1)}%`;
  return [
    `### ${title}: ${s.requests} requests, ${format(s.totalMs)} ms of samples outside idle (${perReq(s.totalMs)} µs per request)`,
    "",
    table(["self µs/req", "share", "function", "module"], s.byFunction.slice(0, top).map((f) => [perReq(f.selfMs), share(f.selfMs), f.name, f.module])),
    "",
    table(["self µs/req", "share", "module"], s.byModule.slice(0, top).map((m) => [perReq(m.selfMs), share(m.selfMs), m.module])),
    "",
    table(["total µs/req", "share", "function (with what it calls)", "module"], s.inclusive.slice(0, top * 2).map((f) => [perReq(f.totalMs), share(f.totalMs), f.name, f.module])),
  ].join("\n");
}

export async function runProfile(stack: StackInfo, options: ProfileOptions): Promise<string> {
  const { orgId, missOrgs, token } = await seedBench(stack, 6000);
  const dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-profile-"));
  try {
    progress("building the unminified Worker bundle");
    const bundle = await buildReadableBundle(dir);
    const moduleOf = moduleIndex(await readFile(bundle, "utf8"));
    const headers = { authorization: `Bearer ${token}` };
    const prefix = `profile-${Date.now()}`;
    const sections: string[] = [];
    const scenarios = [
      { name: "cache hit", prefix, paths: undefined },
      { name: "cache miss", prefix: `${prefix}-miss`, paths: missOrgs.map((id) => `/status-levels/organizations/${id}`) },
    ];
    for (const scenario of scenarios) {
      const inspectorPort = await freePort();
      const worker = await startMiniflare(bundle, workerVars(stack, { LOG_LEVEL: "error", CACHE_KEY_PREFIX: scenario.prefix }), { inspectorPort });
      try {
        for (let i = 0; i < 200; i++) await (await fetch(`${worker.url}/status-levels/organizations/${orgId}`, { headers })).arrayBuffer();
        const inspector = await Inspector.connect(inspectorPort);
        await inspector.send("Profiler.enable");
        await inspector.send("Profiler.setSamplingInterval", { interval: 50 });
        progress(`${scenario.name}: profiling ${options.durationSeconds} s, ${options.connections} connections`);
        await inspector.send("Profiler.start");
        const load = await runLoad({
          url: scenario.paths ? worker.url : `${worker.url}/status-levels/organizations/${orgId}`,
          headers,
          ...(scenario.paths ? { paths: scenario.paths } : {}),
          connections: options.connections,
          durationSeconds: options.durationSeconds,
        });
        const { profile } = await inspector.send<{ profile: CpuProfile }>("Profiler.stop");
        inspector.close();
        // BENCH_PROFILE_DIR keeps the profiles (open them in Chrome DevTools' Performance panel).
        if (process.env.BENCH_PROFILE_DIR) {
          await writeFile(path.join(process.env.BENCH_PROFILE_DIR, `${scenario.name.replace(/\W+/g, "-")}.cpuprofile`), JSON.stringify(profile));
          await copyFile(bundle, path.join(process.env.BENCH_PROFILE_DIR, "index.js"));
        }
        if (load.non2xx + load.errors > 0) throw new Error(`${scenario.name}: ${load.non2xx + load.errors} failed requests`);
        sections.push(report(scenario.name, summarize(profile, moduleOf, load.requests), options.top));
      } finally {
        await worker.stop();
      }
    }
    return [
      ...sections,
      "",
      "Sampled every 50 µs by V8's profiler in workerd (the unminified bundle); the profiler itself slows the Worker, so the µs are relative, not the CPU of the http bench.",
    ].join("\n\n");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
