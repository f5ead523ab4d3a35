import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { accessLog } from "./_shared/access-log.ts";
import type { AppEnv } from "./_shared/app-env.ts";
import { corsFromEnv } from "./_shared/cors.ts";
import { config } from "./_shared/env.ts";
import { onError, onNotFound } from "./_shared/error-handler.ts";
import { ApiError } from "./_shared/errors.ts";
import { basePath, createStatusLevelsApi } from "./status-levels/routes.ts";

/** The Worker's app: the middleware every request passes, then the API under /status-levels. */
export function createApp() {
  return new Hono<AppEnv>()
    .use(requestId({ headerName: "x-request-id", limitLength: 128 }))
    .use(accessLog)
    .use(corsFromEnv)
    .use(
      secureHeaders({
        // A route that sets its own (the badge's CORP, the reference page's CSP) keeps it.
        overwrite: false,
        crossOriginResourcePolicy: "same-site",
        contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
      }),
    )
    // Fail fast and clearly on missing bindings, before any handler touches them.
    .use(async (c, next) => {
      config(c.env);
      await next();
    })
    .use(
      bodyLimit({
        maxSize: 64 * 1024,
        onError: () => {
          throw new ApiError(413, "payload_too_large", "the request body is limited to 64 KiB");
        },
      }),
    )
    .onError(onError)
    .notFound(onNotFound)
    .route(basePath, createStatusLevelsApi());
}

export type App = ReturnType<typeof createApp>;
