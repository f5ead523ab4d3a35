import type { LogFn } from "./app-env.ts";

type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Structured logs: one JSON object per line (`level`, `msg`, `time`, then the fields), so
 * `wrangler tail` and log drains can filter by field. Callers never pass tokens or keys.
 */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}, minLevel: Level = "info"): void {
  if (order[level] < order[minLevel]) return;
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/** A logger that adds the same fields to every line: a request's id, or a job run's. */
export function createLogger(context: Record<string, unknown>, minLevel: Level = "info"): LogFn {
  return (level, msg, fields) => log(level, msg, { ...context, ...fields }, minLevel);
}
