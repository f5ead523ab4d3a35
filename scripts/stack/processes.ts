import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

/**
 * Child processes of the stack. Every one is killed when this process exits, however it exits
 * (normal end, Ctrl-C, SIGTERM from a CI runner, an uncaught error): no PostgREST or
 * redis-server is left behind.
 */
const children = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const child of children) child.kill("SIGKILL");
  });
}

export interface ManagedProcess {
  child: ChildProcess;
  /** The last lines it printed, for error messages. */
  recentOutput(): string;
  /** Why it is not running (could not be started, exited, killed), or null while it runs. */
  failure(): string | null;
  stop(): Promise<void>;
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  { stopSignal = "SIGTERM", ...options }: SpawnOptions & { stopSignal?: NodeJS.Signals } = {},
): ManagedProcess {
  hookExit();
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  children.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.on("exit", () => children.delete(child));
  // Without a listener a failed spawn (missing binary, EACCES) is an uncaught exception.
  let spawnError: Error | null = null;
  child.on("error", (error) => {
    spawnError ??= error;
    children.delete(child);
    lines.push(`${name}: ${error.message}`);
  });
  return {
    child,
    recentOutput: () => lines.join("\n"),
    failure: () => {
      if (spawnError) return `could not start ${command}: ${spawnError.message}`;
      if (child.signalCode !== null) return `${name} was killed by ${child.signalCode}`;
      if (child.exitCode !== null) return `${name} exited with code ${child.exitCode}`;
      return null;
    },
    stop: () => stopChild(child, stopSignal),
  };
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** Runs `stop` on Ctrl-C / SIGTERM, then exits; a second signal exits at once. */
export function onInterrupt(stop: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130);
      stopping = true;
      stop()
        .catch((error) => console.error(error))
        .finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    });
  }
}
