import type { Caller } from "./auth.ts";
import type { Env } from "./env.ts";

export type LogFn = (level: "debug" | "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/** Per-request values handlers read with `c.get(...)`. */
export interface AppVariables {
  requestId: string;
  /** Logs with the request id attached. */
  log: LogFn;
  /** Extra fields for the request's access-log line (e.g. cache hit or miss). */
  logFields: Record<string, unknown>;
  /** The verified signed-in user, or null for anonymous (set by `authenticate`). */
  caller: Caller | null;
  /** The request carried the service-role key (admin endpoints that allow it). */
  service: boolean;
}

export type AppEnv = { Bindings: Env; Variables: AppVariables };
