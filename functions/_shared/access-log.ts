import { createMiddleware } from "hono/factory";
import { routePath } from "hono/route";
import type { AppEnv } from "./app-env.ts";
import { config } from "./env.ts";
import { createLogger } from "./log.ts";

/**
 * Gives each request its logger (with the request id) and writes one access-log line when it
 * ends: route, status, duration, cache hit or miss, user id, error code. Runs after
 * `hono/request-id`.
 */
export const accessLog = createMiddleware<AppEnv>(async (c, next) => {
  const started = Date.now();
  const requestId = c.get("requestId");
  const minLevel = safeLogLevel(c.env);
  const log = createLogger({ request_id: requestId }, minLevel);
  c.set("log", log);
  c.set("logFields", {});
  await next();
  log(c.res.status >= 500 ? "error" : "info", "request", {
    method: c.req.method,
    route: routePath(c, -1),
    path: new URL(c.req.url).pathname,
    status: c.res.status,
    duration_ms: Date.now() - started,
    ...c.get("logFields"),
  });
});

function safeLogLevel(env: AppEnv["Bindings"]): "debug" | "info" | "warn" | "error" {
  try {
    return config(env).LOG_LEVEL;
  } catch {
    return "info";
  }
}
