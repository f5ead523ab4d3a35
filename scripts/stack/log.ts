const quiet = process.env.STACK_QUIET === "1";

/** Progress lines for the stack's start-up, on stderr so `--json` output stays clean. */
export function stackLog(message: string): void {
  if (!quiet) process.stderr.write(`[stack] ${message}\n`);
}
