import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
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
  const bin = process.env.REDIS_SERVER_BIN ?? "redis-server";
  try {
    execFileSync(bin, ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error(
      "No Redis found: set REDIS_URL, start Redis on 127.0.0.1:6379, or install redis-server " +
        "(Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`).",
    );
  }
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "status-levels-redis-"));
  const proc = startProcess("redis-server", bin, [
    "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--dir", dir,
  ]);
  const url = `redis://127.0.0.1:${port}`;
  try {
    await waitUntil("redis-server", async () => {
      if (proc.child.exitCode !== null) throw new Error(`exited with ${proc.child.exitCode}`);
      return ping(url, "redis-server").then(() => true);
    });
  } catch (error) {
    await proc.stop();
    throw new Error(`redis-server did not start: ${(error as Error).message}\n${proc.recentOutput()}`);
  }
  stackLog(`redis-server on 127.0.0.1:${port}`);
  return { url, source: "redis-server", stop: proc.stop };
}

async function ping(url: string, what: string): Promise<void> {
  let conn: RespConnection | undefined;
  try {
    conn = await RespConnection.connect(url, 2000);
    const reply = await conn.command(["PING"]);
    if (reply !== "PONG") throw new Error(`unexpected PING reply ${String(reply)}`);
  } catch (error) {
    throw new Error(`cannot reach ${what}: ${(error as Error).message}`);
  } finally {
    conn?.close();
  }
}
