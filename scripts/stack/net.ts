import net from "node:net";

/** Asks the OS for a port nobody listens on (bind to 0, read it back, release it). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not read the port the OS picked"));
      });
    });
  });
}

/** True when something accepts TCP connections on host:port within timeoutMs. */
export async function isListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Polls check() until it returns true; throws with `what` in the message after timeoutMs, or at
 * once when `failIf` names a reason to stop waiting (the process it waits for has died), even
 * while a check is still waiting for an answer.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  { timeoutMs = 15_000, intervalMs = 50, failIf }: { timeoutMs?: number; intervalMs?: number; failIf?: () => string | null } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let failure: string | null = null;
  let watch: NodeJS.Timeout | undefined;
  const failed = new Promise<false>((resolve) => {
    if (!failIf) return;
    const look = () => {
      failure ??= failIf();
      if (failure) resolve(false);
    };
    look();
    watch = setInterval(look, intervalMs);
  });
  try {
    while (Date.now() < deadline && !failure) {
      try {
        if (await Promise.race([check(), failed])) return;
      } catch (error) {
        lastError = error;
      }
      if (failure) break;
      await Promise.race([new Promise((r) => setTimeout(r, intervalMs)), failed]);
    }
  } finally {
    clearInterval(watch);
  }
  if (failure) throw new Error(`${failure} while waiting for ${what}`);
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}
