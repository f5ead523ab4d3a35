import type { ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "./app-env.ts";
import { ConfigError } from "./env.ts";
import { ApiError, problem, unavailable } from "./errors.ts";

/** Whatever a handler or middleware throws becomes one problem document. */
export const onError: ErrorHandler<AppEnv> = (thrown, c) => {
  let error: Error = thrown;
  // What Hono and @hono/zod-openapi throw before a handler runs: a body that is not JSON
  // (a media type the route does not take is a 415), or JSON that does not parse.
  if (error instanceof HTTPException && error.status === 415) {
    error = new ApiError(415, "unsupported_media_type", "send the body as JSON with `Content-Type: application/json`");
  } else if (error instanceof HTTPException && error.status < 500) {
    const malformed = /malformed json/i.test(error.message);
    error = new ApiError(
      error.status as 400,
      malformed ? "malformed_json" : "bad_request",
      malformed ? "the request body is not valid JSON" : error.message || "bad request",
    );
  }
  const log = c.get("log");
  if (error instanceof ApiError) {
    if (error.status >= 500) log("error", error.message, { code: error.code });
    c.get("logFields").error_code = error.code;
    return problem(c, error);
  }
  if (error instanceof ConfigError) {
    log("error", error.message);
    c.get("logFields").error_code = "misconfigured";
    return problem(c, unavailable("misconfigured", "the service is misconfigured; the operators have been told", {}, 60));
  }
  log("error", "unhandled error", { error: error.message, stack: error.stack });
  c.get("logFields").error_code = "internal_error";
  return problem(c, new ApiError(500, "internal_error", "something went wrong on our side; try again later"));
};

export const onNotFound: NotFoundHandler<AppEnv> = (c) =>
  problem(c, new ApiError(404, "route_not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}; the API is described at /status-levels/openapi.json`));
