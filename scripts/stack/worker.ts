import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "./migrate.ts";
import { freePort, waitUntil } from "./net.ts";
import { startProcess } from "./processes.ts";
import type { StackInfo } from "./stack-info.ts";

export interface RunningWorker {
  url: string;
  stop(): Promise<void>;
}

/** The Worker's bindings for a local stack. */
export function workerVars(info: StackInfo, extra: Record<string, string> = {}): Record<string, string> {
  return {
    SUPABASE_URL: info.supabaseUrl,
    SUPABASE_ANON_KEY: info.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: info.serviceRoleKey,
    SUPABASE_JWT_SECRET: info.jwtSecret,
    SUPABASE_JWT_ISSUER: info.keys.issuer,
    UPSTASH_REDIS_REST_URL: info.redisRestUrl,
    UPSTASH_REDIS_REST_TOKEN: info.redisRestToken,
    ...extra,
  };
}

/**
 * `wrangler dev` (the real Workers runtime) for the local stack, on 127.0.0.1, with the
 * scheduled trigger testable at /__scheduled. No telemetry, no outbound connections of its own.
 */
export async function startWorker({
  vars,
  port,
  inheritOutput = false,
  logLevel = inheritOutput ? "log" : "warn",
}: {
  vars: Record<string, string>;
  port?: number;
  inheritOutput?: boolean;
  /**
   * wrangler's own request log costs CPU per request: quiet unless someone reads it. Its levels
   * run error < warn < info < log < debug, and the Worker's console.log lines (our JSON logs) are
   * at "log": below that they are dropped.
   */
  logLevel?: "log" | "info" | "warn" | "error";
}): Promise<RunningWorker> {
  const listenPort = port ?? (await freePort());
  const dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-worker-"));
  const varsFile = path.join(dir, "worker.vars");
  await writeFile(varsFile, Object.entries(vars).map(([k, v]) => `${k}=${v}`).join("\n") + "\n", { mode: 0o600 });
  const proc = startProcess(
    "wrangler",
    path.join(projectRoot, "node_modules", ".bin", "wrangler"),
    [
      "dev", "--ip", "127.0.0.1", "--port", String(listenPort), "--test-scheduled", "--env-file", varsFile,
      "--show-interactive-dev-session=false", "--persist-to", path.join(dir, "state"), "--log-level", logLevel,
    ],
    {
      cwd: projectRoot,
      ...(inheritOutput ? { stdio: ["ignore", "inherit", "inherit"] } : {}),
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_HIDE_BANNER: "true",
        XDG_CONFIG_HOME: path.join(dir, "config"),
      },
    },
  );
  const url = `http://127.0.0.1:${listenPort}`;
  try {
    await waitUntil(
      "wrangler dev",
      async () => (await fetch(`${url}/status-levels/levels`, { signal: AbortSignal.timeout(5000) })).ok,
      { timeoutMs: 60_000, intervalMs: 100, failIf: proc.failure },
    );
  } catch (error) {
    await proc.stop();
    throw new Error(`wrangler dev did not start: ${(error as Error).message}\n${proc.recentOutput()}`);
  }
  return { url, stop: proc.stop };
}
