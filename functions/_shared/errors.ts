import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * The one error type of the API. Everything a handler throws ends up as an RFC 9457 problem
 * document with a stable machine `code` (see `onError`).
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const titles: Record<number, string> = {
  400: "Bad request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  409: "Conflict",
  413: "Payload too large",
  415: "Unsupported media type",
  422: "Unprocessable content",
  429: "Too many requests",
  500: "Internal server error",
  503: "Service unavailable",
};

export const badRequest = (code: string, message: string, extra?: Record<string, unknown>) =>
  new ApiError(400, code, message, extra);
export const unauthorized = (message: string) =>
  new ApiError(401, "unauthorized", message, {}, { "www-authenticate": 'Bearer realm="status-levels"' });
export const forbidden = (message: string) => new ApiError(403, "not_allowed", message);
export const notFound = (code: string, message: string) => new ApiError(404, code, message);
/** The one way to answer 503: a stable code, what to do, and when to come back (`Retry-After`). */
export const unavailable = (code: string, message: string, extra: Record<string, unknown> = {}, retryAfterSeconds = 5) =>
  new ApiError(503, code, message, extra, { "retry-after": String(retryAfterSeconds) });
/** A dependency (database, cache, auth keys, ...) did not answer, or not in time. */
export const dependencyDown = (dependency: string, message: string, extra: Record<string, unknown> = {}) =>
  unavailable("dependency_unavailable", message, { dependency, ...extra });

export function problem(c: Context, error: ApiError): Response {
  const body = {
    type: "about:blank",
    title: titles[error.status] ?? "Error",
    status: error.status,
    code: error.code,
    detail: error.message,
    instance: new URL(c.req.url).pathname,
    request_id: c.get("requestId" as never) as string | undefined,
    ...error.extra,
  };
  return c.json(body, error.status, { "content-type": "application/problem+json", ...error.headers });
}

/** PostgREST/Postgres error as supabase-js reports it. */
export interface DbError {
  code?: string;
  message?: string;
  details?: string | null;
  hint?: string | null;
}

/**
 * Maps an error from supabase-js to an ApiError. Our SQL functions raise SQLSTATE `PTxxx`
 * (PostgREST turns it into HTTP xxx) with a message `<stable_code>: <human text>`; the generic
 * Postgres and PostgREST codes map to the nearest meaning. `status` is the HTTP status supabase-js
 * saw (0 when the request never got an answer).
 */
export function fromDbError(error: DbError, status: number): ApiError {
  const code = error.code ?? "";
  const message = error.message ?? "database error";
  const own = /^([a-z][a-z0-9_]*): (.+)$/s.exec(message);
  if (/^PT\d{3}$/.test(code) && own) {
    const httpStatus = Number(code.slice(2)) as ContentfulStatusCode;
    const extra: Record<string, unknown> = error.hint ? { hint: error.hint } : {};
    const headers: Record<string, string> = {};
    // A rate limit in SQL says when to come back (DETAIL `{"retry_after_seconds": n}`).
    const retryAfter = httpStatus === 429 ? retryAfterSeconds(error.details) : null;
    if (retryAfter !== null) {
      extra.retry_after_seconds = retryAfter;
      headers["retry-after"] = String(retryAfter);
    }
    return new ApiError(httpStatus, own[1]!, own[2]!, extra, headers);
  }
  if (status === 0 || status === 502 || status === 503 || status === 504 || /^PGRST00\d$/.test(code) || code === "57014") {
    return dependencyDown("database", "the database is unavailable; try again shortly");
  }
  switch (code) {
    case "42501":
      return forbidden("you are not allowed to do this");
    case "23505":
      return new ApiError(409, "conflict", "this conflicts with the current state");
    case "23503":
      return notFound("not_found", "a referenced record does not exist");
    case "22P02":
    case "22023":
    case "23514":
    case "22001":
      return badRequest("invalid_input", "the database rejected the input as invalid");
    case "PGRST301":
    case "PGRST302":
      return unauthorized("the token was rejected by the database");
    case "PGRST116":
      return notFound("not_found", "no such record");
  }
  // Any other data exception (class 22: a value out of range, a character text cannot hold, ...)
  // is about what the caller sent, never a server fault.
  if (code.startsWith("22")) return badRequest("invalid_input", "the database rejected a value in the request as invalid");
  if (status === 401) return unauthorized("the token was rejected by the database");
  if (status === 403) return forbidden("you are not allowed to do this");
  return new ApiError(500, "internal_error", "unexpected database error", { db_code: code || undefined });
}

function retryAfterSeconds(details: string | null | undefined): number | null {
  try {
    const value = (JSON.parse(details ?? "") as { retry_after_seconds?: unknown }).retry_after_seconds;
    return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : null;
  } catch {
    return null;
  }
}
