/** Progress lines for the stack's start-up, on stderr so `--json` output stays clean. STACK_QUIET=1 silences them. */
export function stackLog(message: string): void {
  if (process.env.STACK_QUIET !== "1") process.stderr.write(`[stack] ${message}\n`);
}
