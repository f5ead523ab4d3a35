import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "./app-env.ts";

/** Response headers a browser page may read. */
export const exposedHeaders = ["x-request-id", "etag", "retry-after", "x-cache", "x-total-count", "link", "x-computed-at"];

// One CORS middleware per distinct setting (in practice one per isolate), not one per request.
const bySetting = new Map<string, MiddlewareHandler<AppEnv>>();

/**
 * What any page may read or embed whatever the setting: the badge and the API description. `*`,
 * and so never with credentials (they need none).
 */
const publicResource = /^\/status-levels\/(?:badge\/|openapi\.json$)/;
const anyOrigin = cors({ origin: "*", allowMethods: ["GET", "HEAD", "OPTIONS"], allowHeaders: ["if-none-match"], exposeHeaders: exposedHeaders, maxAge: 600 });

/**
 * CORS from `CORS_ALLOWED_ORIGINS`: a comma-separated list of origins, which may send the
 * caller's credentials; or `*`, any origin without credentials (a wildcard with credentials is
 * what browsers refuse and what would let any site act for a signed-in user).
 */
export const corsFromEnv: MiddlewareHandler<AppEnv> = (c, next) => {
  if (publicResource.test(c.req.path)) return anyOrigin(c, next);
  const setting = (c.env.CORS_ALLOWED_ORIGINS ?? "").trim();
  let middleware = bySetting.get(setting);
  if (!middleware) {
    const any = setting === "*";
    // An origin is scheme://host[:port], without a path: `https://App.example/` means `https://app.example`.
    const allowed = any ? [] : setting.split(",").map((o) => o.trim().replace(/\/+$/, "").toLowerCase()).filter(Boolean);
    middleware = cors({
      origin: any ? "*" : (origin) => (allowed.includes(origin.toLowerCase()) ? origin : null),
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
