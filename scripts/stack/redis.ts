import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, isListening, waitUntil } from "./net.ts";
import { startProcess } from "./processes.ts";
import { RespConnection } from "./resp.ts";
import { stackLog } from "./log.ts";

export interface RedisServer {
  url: string;
  source: "REDIS_URL" | "local" | "redis-server";
  stop(): Promise<void>;
}

/**
 * REDIS_URL if given; otherwise the Redis on 127.0.0.1:6379 if one answers; otherwise a
 * `redis-server` of our own on a free port (nothing kept on disk); otherwise a clear message.
 */
export async function resolveRedis(): Promise<RedisServer> {
  if (process.env.REDIS_URL) {
    await ping(process.env.REDIS_URL, "REDIS_URL");
    return { url: process.env.REDIS_URL, source: "REDIS_URL", stop: async () => {} };
  }
  if (process.env.STACK_OWN_REDIS !== "1" && (await isListening("127.0.0.1", 6379))) {
    const url = "redis://127.0.0.1:6379";
    try {
      await ping(url, "the Redis on 127.0.0.1:6379");
      return { url, source: "local", stop: async () => {} };
    } catch (error) {
      stackLog(`${(error as Error).message}; starting a redis-server of our own`);
    }
  }
  return startRedisServer();
}

/** A redis-server of our own on a free port (or `port`), nothing kept on disk. */
export async function startRedisServer({
  bin = process.env.REDIS_SERVER_BIN ?? "redis-server",
  port,
}: { bin?: string; port?: number } = {}): Promise<RedisServer> {
  try {
    execFileSync(bin, ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error(
      "No Redis found: set REDIS_URL, start Redis on 127.0.0.1:6379, or install redis-server " +
        "(Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`).",
    );
  }
  const listenPort = port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), "status-levels-redis-"));
  const proc = startProcess("redis-server", bin, [
    "--bind", "127.0.0.1", "--port", String(listenPort), "--save", "", "--appendonly", "no", "--dir", dir,
  ]);
  const url = `redis://127.0.0.1:${listenPort}`;
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil("redis-server", () => ping(url, "redis-server").then(() => true), { failIf: proc.failure });
  } catch (error) {
    await stop();
    throw new Error(
      `redis-server did not start: ${(error as Error).message}\n${proc.recentOutput()}\n` +
        "Fix: redis-server's output above names the problem; or set REDIS_URL, or start Redis on 127.0.0.1:6379.",
    );
  }
  stackLog(`redis-server on 127.0.0.1:${listenPort}`);
  return { url, source: "redis-server", stop };
}

async function ping(url: string, what: string): Promise<void> {
  let conn: RespConnection | undefined;
  try {
    conn = await RespConnection.connect(url, 2000);
    // Something else may hold the port and never answer: a ping that waits forever is a hang.
    let timer: NodeJS.Timeout | undefined;
    const reply = await Promise.race([
      conn.command(["PING"]),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer to PING within 2 s")), 2000);
      }),
    ]).finally(() => clearTimeout(timer));
    if (reply !== "PONG") throw new Error(`unexpected PING reply ${String(reply)}`);
  } catch (error) {
    throw new Error(`cannot reach ${what}: ${(error as Error).message}`);
  } finally {
    conn?.close();
  }
}
