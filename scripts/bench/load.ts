/**
 * The HTTP bench's load generator, run as its own process (autocannon's API), so its CPU is
 * measured apart from everything else and it shares no event loop with the stack. The parent
 * sends one `LoadRequest` over IPC (tokens never appear in argv); this answers `started` when
 * the first request goes out and `done` with the figures. `paths` or `bodies` (cycled through,
 * one per request) make each request differ, say one organization per request for cache misses.
 */
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
  /** Requests per second over all connections (autocannon's overallRate); default as fast as answered. */
  overallRate?: number;
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
        ...(request.overallRate ? { overallRate: request.overallRate } : {}),
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

process.once("message", (request: LoadRequest) => {
  run(request).then(
    (result) => {
      process.send?.({ type: "done", result } satisfies LoadReply, () => process.exit(0));
    },
    (error: unknown) => {
      process.send?.({ type: "failed", message: error instanceof Error ? error.message : String(error) } satisfies LoadReply, () => process.exit(1));
    },
  );
});
