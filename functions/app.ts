import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "./_shared/app-env.ts";
import { config, ConfigError } from "./_shared/env.ts";
import { ApiError, problem } from "./_shared/errors.ts";
import { log } from "./_shared/log.ts";
import { mountRoutes } from "./_shared/route.ts";
import { allRoutes } from "./status-levels/routes.ts";

const requestIdPattern = /^[\w.:-]{1,128}$/;

/** Builds the API: middleware shared by every route, then one mounted handler per endpoint. */
export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use("*", async (c, next) => {
    const started = Date.now();
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && requestIdPattern.test(incoming) ? incoming : crypto.randomUUID();
    const minLevel = safeLogLevel(c.env);
    c.set("requestId", requestId);
    c.set("logFields", {});
    c.set("log", (level, msg, fields) => log(level, msg, { request_id: requestId, ...fields }, minLevel));
    await next();
    c.header("x-request-id", requestId);
    log(
      c.res.status >= 500 ? "error" : "info",
      "request",
      {
        request_id: requestId,
        method: c.req.method,
        route: c.req.routePath,
        path: new URL(c.req.url).pathname,
        status: c.res.status,
        duration_ms: Date.now() - started,
        ...c.get("logFields"),
      },
      minLevel,
    );
  });

  app.use("*", (c, next) => corsFor(c.env.CORS_ALLOWED_ORIGINS)(c, next));

  // Fail fast and clearly on missing bindings, before any handler touches them.
  app.use("*", async (c, next) => {
    config(c.env);
    await next();
  });

  app.use(
    "*",
    bodyLimit({
      maxSize: 64 * 1024,
      onError: () => {
        throw new ApiError(413, "payload_too_large", "the request body is limited to 64 KiB");
      },
    }),
  );

  app.onError((error, c) => {
    if (error instanceof HTTPException && error.status < 500) {
      const malformed = /malformed json/i.test(error.message);
      error = new ApiError(
        error.status as 400,
        malformed ? "malformed_json" : "bad_request",
        malformed ? "the request body is not valid JSON" : error.message || "bad request",
      );
    }
    if (error instanceof ApiError) {
      if (error.status >= 500) c.get("log")("error", error.message, { code: error.code });
      c.get("logFields").error_code = error.code;
      return problem(c, error);
    }
    if (error instanceof ConfigError) {
      c.get("log")("error", error.message);
      return problem(c, new ApiError(503, "misconfigured", "the service is misconfigured; the operators have been told"));
    }
    c.get("log")("error", "unhandled error", { error: error.message, stack: error.stack });
    return problem(c, new ApiError(500, "internal_error", "something went wrong on our side; try again later"));
  });

  app.notFound((c) => problem(c, new ApiError(404, "route_not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`)));

  const api = new Hono<AppEnv>();
  mountRoutes(api, allRoutes);
  app.route("/status-levels", api);
  return app;
}

// One CORS middleware per distinct setting (in practice one per isolate), not one per request.
const corsMiddlewares = new Map<string, MiddlewareHandler<AppEnv>>();

function corsFor(setting: string | undefined): MiddlewareHandler<AppEnv> {
  const key = setting ?? "";
  let middleware = corsMiddlewares.get(key);
  if (!middleware) {
    const allowed = allowedOrigins(key);
    middleware = cors({
      origin: (origin) => (allowed === "*" ? "*" : allowed.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "OPTIONS"],
      allowHeaders: ["authorization", "content-type", "x-request-id", "if-none-match"],
      exposeHeaders: ["x-request-id", "etag", "retry-after", "x-cache", "x-total-count"],
      credentials: true,
      maxAge: 600,
    });
    corsMiddlewares.set(key, middleware);
  }
  return middleware;
}

function allowedOrigins(setting: string | undefined): string[] | "*" {
  const value = (setting ?? "").trim();
  if (value === "*") return "*";
  return value.split(",").map((o) => o.trim()).filter(Boolean);
}

function safeLogLevel(env: AppEnv["Bindings"]): "debug" | "info" | "warn" | "error" {
  try {
    return config(env).LOG_LEVEL;
  } catch {
    return "info";
  }
}
