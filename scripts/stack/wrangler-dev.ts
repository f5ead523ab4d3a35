/**
 * `wrangler dev` through wrangler's own API (`unstable_startWorker`), run as a child process by
 * `startWorker` in worker.ts. Two things the CLI cannot do:
 *
 * - run without the DevTools inspector: wrangler 4.86's inspector proxy keeps every message the
 *   runtime sends (one per subrequest and per log line) until a DevTools client attaches, so a
 *   long `npm run dev` under traffic grows by ~17 KiB per request; `inspector: false` turns the
 *   proxy and the runtime's inspector off (the Worker's logs still arrive: workerd writes them as
 *   structured lines to wrangler, not through the inspector);
 * - take the bindings over IPC: the secrets of the local stack are never written to a file.
 *
 * The parent sends one `start` message; this answers `ready` (with the URL) or `failed`. It stops
 * the Worker and exits on SIGINT, SIGTERM, SIGHUP, or when the parent goes away (its IPC channel
 * closes: a crash or a SIGKILL of the parent leaves no runtime behind).
 */
import { rmSync } from "node:fs";
import path from "node:path";
import { unstable_startWorker } from "wrangler";

export interface WranglerDevRequest {
  type: "start";
  configPath: string;
  port: number;
  bindings: Record<string, string>;
  /** Names of `bindings` that are secrets (wrangler prints their values as hidden). */
  secretNames: string[];
  /** This run's folder (inside `.stack/`): the runtime's local state goes there. */
  runDir: string;
  logLevel: "log" | "info" | "warn" | "error";
  /** A DevTools port (127.0.0.1) to debug the Worker with, or null for no inspector at all. */
  inspectorPort: number | null;
}

export type WranglerDevReply = { type: "ready"; url: string; inspectorUrl: string | null } | { type: "failed"; message: string };

function reply(message: WranglerDevReply): void {
  process.send?.(message);
}

let stopWorker: (() => Promise<void>) | null = null;
let exiting = false;
let runDir: string | null = null;
// The parent removes the run's folder too; this covers a parent that was killed outright.
process.on("exit", () => {
  if (runDir) rmSync(runDir, { recursive: true, force: true, maxRetries: 2 });
});

async function exit(code: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    const timer = setTimeout(() => process.exit(code), 5000);
    await stopWorker?.().catch(() => {});
    clearTimeout(timer);
  }
  process.exit(code);
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void exit(0));
process.on("disconnect", () => void exit(0));

process.once("message", async (request: WranglerDevRequest) => {
  runDir = request.runDir;
  try {
    const worker = await unstable_startWorker({
      config: request.configPath,
      // Only the bindings given here (over the config's [vars]): a .dev.vars meant for a plain
      // `wrangler dev` against a real project never reaches the local stack. (A file that does
      // not exist: wrangler then reads neither .dev.vars nor .env.)
      envFiles: [path.join(request.runDir, "no.env")],
      bindings: Object.fromEntries(
        Object.entries(request.bindings).map(([name, value]) => [
          name,
          { type: request.secretNames.includes(name) ? ("secret_text" as const) : ("plain_text" as const), value },
        ]),
      ),
      dev: {
        server: { hostname: "127.0.0.1", port: request.port },
        inspector: request.inspectorPort === null ? false : { hostname: "127.0.0.1", port: request.inspectorPort },
        testScheduled: true,
        persist: path.join(request.runDir, "state"),
        logLevel: request.logLevel,
        watch: true,
        liveReload: false,
      },
    });
    stopWorker = () => worker.dispose();
    await worker.ready;
    const url = await worker.url;
    const inspectorUrl = request.inspectorPort === null ? null : ((await worker.inspectorUrl)?.toString() ?? null);
    reply({ type: "ready", url: url.origin, inspectorUrl });
  } catch (error) {
    reply({ type: "failed", message: error instanceof Error ? error.message : String(error) });
    await exit(1);
  }
});
