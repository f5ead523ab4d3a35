import { rmSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import path from "node:path";
import { privateStackDir } from "./dev-status.ts";
import { stackDir } from "./stack.ts";
import { projectRoot } from "./migrate.ts";
import { freePort, waitUntil } from "./net.ts";
import { startProcess } from "./processes.ts";
import type { StackInfo } from "./stack-info.ts";
import type { WranglerDevReply, WranglerDevRequest } from "./wrangler-dev.ts";

export interface RunningWorker {
  url: string;
  /** The DevTools endpoint when started with `inspectorPort`. */
  inspectorUrl?: string | null;
  stop(): Promise<void>;
}

/** The Worker's bindings that are secrets in a deployment (`wrangler secret put`; see .dev.vars.example). */
export const secretNames = [
  "SUPABASE_ANON_KEY",
  "SUPABASE_SERVICE_ROLE_KEY",
  "SUPABASE_JWT_SECRET",
  "UPSTASH_REDIS_REST_TOKEN",
  "SUBSCRIPTION_WEBHOOK_SECRET",
  "EMAIL_API_TOKEN",
];

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

/** Where each run of the local Worker keeps what wrangler and the runtime write: inside the checkout's `.stack/`. */
export const workerRunsDir = path.join(stackDir, "worker");

/**
 * `wrangler dev` (the real Workers runtime) for the local stack, on 127.0.0.1, with the scheduled
 * trigger testable at /__scheduled. No telemetry, no outbound connections of its own, and no
 * DevTools inspector unless `inspectorPort` asks for one (see wrangler-dev.ts: the inspector proxy
 * keeps every message until a debugger attaches).
 *
 * The bindings, secrets included, reach wrangler over IPC, never through a file. Everything
 * wrangler and the runtime write (their state, wrangler's log file, any temp file: TMPDIR points
 * there too) goes to a folder of this run under `.stack/worker/` (mode 0700), removed when the
 * Worker stops or this process exits.
 */
export async function startWorker({
  vars,
  port,
  inheritOutput = false,
  logLevel = inheritOutput ? "log" : "warn",
  inspectorPort = null,
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
  inspectorPort?: number | null;
}): Promise<RunningWorker> {
  const listenPort = port ?? (await freePort());
  await privateStackDir();
  await mkdir(workerRunsDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(workerRunsDir, `${listenPort}-`));
  const removeDir = () => rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  process.on("exit", removeDir);
  await mkdir(path.join(dir, "tmp"), { mode: 0o700 });

  const proc = startProcess(
    "wrangler",
    process.execPath,
    ["--no-warnings", "--import", "tsx", path.join(projectRoot, "scripts", "stack", "wrangler-dev.ts")],
    {
      cwd: projectRoot,
      stdio: inheritOutput ? ["ignore", "inherit", "inherit", "ipc"] : ["ignore", "pipe", "pipe", "ipc"],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_HIDE_BANNER: "true",
        XDG_CONFIG_HOME: path.join(dir, "config"),
        TMPDIR: path.join(dir, "tmp"),
      },
    },
  );
  const stop = async () => {
    await proc.stop();
    process.off("exit", removeDir);
    removeDir();
  };

  let reply: WranglerDevReply | null = null;
  proc.child.once("message", (message: WranglerDevReply) => {
    reply = message;
  });
  const request: WranglerDevRequest = {
    type: "start",
    configPath: path.join(projectRoot, "wrangler.toml"),
    port: listenPort,
    bindings: vars,
    secretNames: secretNames.filter((name) => name in vars),
    runDir: dir,
    logLevel,
    inspectorPort,
  };
  proc.child.send(request);

  const url = `http://127.0.0.1:${listenPort}`;
  try {
    await waitUntil(
      "wrangler dev",
      async () => {
        const answer = reply as WranglerDevReply | null;
        if (answer?.type === "failed") throw new Error(answer.message);
        if (answer?.type !== "ready") return false;
        return (await fetch(`${url}/status-levels/levels`, { signal: AbortSignal.timeout(5000) })).ok;
      },
      { timeoutMs: 60_000, intervalMs: 100, failIf: () => ((reply as WranglerDevReply | null)?.type === "failed" ? (reply as { message: string }).message : proc.failure()) },
    );
  } catch (error) {
    await stop();
    throw new Error(`wrangler dev did not start: ${(error as Error).message}\n${proc.recentOutput()}`);
  }
  const ready = reply as WranglerDevReply | null;
  return { url, inspectorUrl: ready?.type === "ready" ? ready.inspectorUrl : null, stop };
}
