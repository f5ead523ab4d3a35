/**
 * The HTTP bench's load generator, run as its own process (autocannon's API), so its CPU is
 * measured apart from everything else and it shares no event loop with the stack. The parent
 * sends one `LoadRequest` over IPC (tokens never appear in argv); this answers `started` when
 * the first request goes out and `done` with the figures. `paths` or `bodies` (cycled through,
 * one per request) make each request differ, say one organization per request for cache misses.
 */
import http from "node:http";
import autocannon from "autocannon";

export interface LoadRequest {
  url: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  /** Request paths (with query) to cycle through; default the URL's own. */
  paths?: string[];
  /** Request bodies to cycle through. */
  bodies?: string[];
  connections: number;
  durationSeconds: number;
  /**
   * Requests per second, sent at even intervals, in turn over `connections` keep-alive connections
   * (an open loop: a late answer delays only what waits for its connection). Default: autocannon's closed
   * loop, each connection sending its next request when answered. (autocannon's own rate options
   * send each second's budget at once: 50 connections at 500 req/s then queue behind each other
   * at the start of every second, and the p99 says nothing about one request.)
   */
  rate?: number;
}

export interface LoadResult {
  requests: number;
  rps: number;
  /** ms, from each response's own timing (not the histogram's whole milliseconds). */
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** This process's CPU from the first request to the last response. */
  cpuMs: number;
}

export type LoadReply = { type: "started" } | { type: "done"; result: LoadResult } | { type: "failed"; message: string };

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function run(request: LoadRequest): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    let latencies = new Float64Array(1 << 16);
    let count = 0;
    let cpuAtStart = process.cpuUsage();
    let next = 0;
    const vary = request.paths ?? request.bodies;
    const instance = autocannon(
      {
        url: request.url,
        connections: request.connections,
        duration: request.durationSeconds,
        method: request.method ?? "GET",
        headers: request.headers ?? {},
        requests: [
          vary
            ? {
                setupRequest: (req: Record<string, unknown>) => {
                  const i = next++ % vary.length;
                  return request.paths ? { ...req, path: request.paths[i] } : { ...req, body: request.bodies![i] };
                },
              }
            : {},
        ],
      },
      (error, result) => {
        const cpu = process.cpuUsage(cpuAtStart);
        if (error) return reject(error);
        const sorted = latencies.subarray(0, count).sort();
        resolve({
          requests: result.requests.total,
          rps: result.requests.average,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          non2xx: result.non2xx,
          errors: result.errors + result.timeouts,
          cpuMs: (cpu.user + cpu.system) / 1000,
        });
      },
    );
    instance.on("start", () => {
      cpuAtStart = process.cpuUsage();
      process.send?.({ type: "started" } satisfies LoadReply);
    });
    instance.on("response", (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = responseTime;
    });
  });
}

/**
 * The open loop of `rate`: one request every 1/rate s, latency from its send to its response's
 * end. Each connection is opened by one request before the measured window (not timed, counted in
 * `requests` so that CPU per request stays exact): otherwise its first request, which connects,
 * is one of every 50 at 50 connections and alone makes the p99 of a short run.
 */
async function paced(request: LoadRequest & { rate: number }): Promise<LoadResult> {
  // One agent of one socket per connection, taken in turn: every connection carries its share.
  const agents = Array.from({ length: request.connections }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const base = new URL(request.url);
  const latencies: number[] = [];
  let sent = 0;
  let answered = 0;
  let non2xx = 0;
  let errors = 0;
  const cpuAtStart = process.cpuUsage();
  const opened = await Promise.all(
    agents.map(
      (agent, i) =>
        new Promise<boolean>((resolve) => {
          const req = http.request(
            { host: base.hostname, port: base.port, method: request.method ?? "GET", path: request.paths ? request.paths[i % request.paths.length] : base.pathname + base.search, headers: request.headers ?? {}, agent },
            (res) => {
              res.resume();
              res.on("end", () => resolve(true));
            },
          );
          req.on("error", () => resolve(false));
          req.end(request.bodies ? request.bodies[i % request.bodies.length] : undefined);
        }),
    ),
  );
  const warmups = opened.length;
  errors += opened.filter((ok) => !ok).length;
  const started = performance.now();
  return new Promise((resolve) => {
    const send = () => {
      const i = sent++;
      const body = request.bodies ? request.bodies[i % request.bodies.length] : undefined;
      const at = performance.now();
      const req = http.request(
        { host: base.hostname, port: base.port, method: request.method ?? "GET", path: request.paths ? request.paths[i % request.paths.length] : base.pathname + base.search, headers: request.headers ?? {}, agent: agents[i % agents.length] },
        (res) => {
          res.resume();
          res.on("end", () => {
            latencies.push(performance.now() - at);
            if (res.statusCode! < 200 || res.statusCode! >= 300) non2xx++;
            finish();
          });
        },
      );
      req.on("error", () => {
        errors++;
        finish();
      });
      req.end(body);
    };
    let stopped = false;
    const finish = () => {
      answered++;
      if (stopped && answered === sent) done();
    };
    const done = () => {
      clearInterval(timer);
      for (const agent of agents) agent.destroy();
      const cpu = process.cpuUsage(cpuAtStart);
      const seconds = (performance.now() - started) / 1000;
      const sorted = Float64Array.from(latencies).sort();
      resolve({ requests: answered + warmups, rps: answered / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), non2xx, errors, cpuMs: (cpu.user + cpu.system) / 1000 });
    };
    process.send?.({ type: "started" } satisfies LoadReply);
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      if (elapsed >= request.durationSeconds * 1000) {
        if (!stopped) {
          stopped = true;
          if (answered === sent) done();
        }
        return;
      }
      const due = Math.floor((elapsed * request.rate) / 1000);
      while (sent < due) send();
    }, 1);
  });
}

process.once("message", (request: LoadRequest) => {
  (request.rate ? paced({ ...request, rate: request.rate }) : run(request)).then(
    (result) => {
      process.send?.({ type: "done", result } satisfies LoadReply, () => process.exit(0));
    },
    (error: unknown) => {
      process.send?.({ type: "failed", message: error instanceof Error ? error.message : String(error) } satisfies LoadReply, () => process.exit(1));
    },
  );
});
