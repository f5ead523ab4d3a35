import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "./app-env.ts";

/** Response headers a browser page may read. */
export const exposedHeaders = ["x-request-id", "etag", "retry-after", "x-cache", "x-total-count", "link"];

// One CORS middleware per distinct setting (in practice one per isolate), not one per request.
const bySetting = new Map<string, MiddlewareHandler<AppEnv>>();

/**
 * CORS from `CORS_ALLOWED_ORIGINS`: a comma-separated list of origins, which may send the
 * caller's credentials; or `*`, any origin without credentials (a wildcard with credentials is
 * what browsers refuse and what would let any site act for a signed-in user).
 */
export const corsFromEnv: MiddlewareHandler<AppEnv> = (c, next) => {
  const setting = (c.env.CORS_ALLOWED_ORIGINS ?? "").trim();
  let middleware = bySetting.get(setting);
  if (!middleware) {
    const any = setting === "*";
    const allowed = any ? [] : setting.split(",").map((o) => o.trim()).filter(Boolean);
    middleware = cors({
      origin: any ? "*" : (origin) => (allowed.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "OPTIONS"],
      allowHeaders: ["authorization", "content-type", "x-request-id", "if-none-match"],
      exposeHeaders: exposedHeaders,
      credentials: !any,
      maxAge: 600,
    });
    bySetting.set(setting, middleware);
  }
  return middleware(c, next);
};
