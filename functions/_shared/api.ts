import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "./app-env.ts";
import { ApiError, badRequest } from "./errors.ts";

/**
 * The pieces every endpoint file uses with `@hono/zod-openapi`: a sub-app factory whose
 * validation failures become our 400 problem, response and problem declarations for
 * `createRoute`, and the middleware a route lists in its `middleware`.
 */

type Target = "param" | "query" | "json" | "header" | "cookie" | "form";
const where: Record<Target, string> = { param: "path", query: "query", json: "body", header: "header", cookie: "cookie", form: "body" };

/** A zod failure as one 400 problem listing every issue with where it was. */
export function invalidInput(target: Target, error: z.ZodError): ApiError {
  const errors = error.issues.map((issue) => ({
    in: where[target],
    path: issue.path.map(String).join(".") || "(root)",
    message: issue.code === "unrecognized_keys" ? `unknown field(s): ${issue.keys.join(", ")}` : issue.message,
  }));
  return badRequest("invalid_request", `the request ${where[target]} is not valid: ${errors.map((e) => `${e.path} ${e.message}`).join("; ")}`, { errors });
}

/** A sub-app for endpoints: every validation failure is a 400 problem, one shape for all. */
export function createApi(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw invalidInput(result.target as Target, result.error);
    },
  });
}

/** RFC 9457 problem details; extension members (errors, hint, retry_after_seconds, ...) allowed. */
export const Problem = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string().describe("stable machine-readable error code"),
    detail: z.string().describe("what happened and what to do, for people"),
    instance: z.string(),
    request_id: z.string().optional(),
    hint: z.string().optional(),
    errors: z.array(z.object({ in: z.string(), path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");

const problemDescriptions: Record<number, string> = {
  400: "Bad input (the problem lists each issue)",
  401: "No, expired or invalid token or signature",
  403: "Not allowed",
  404: "Unknown, or not visible to the caller",
  409: "Conflict with the current state",
  413: "Body too large",
  415: "Body is not JSON",
  422: "A business rule refused it",
  429: "Rate limited (see Retry-After)",
  503: "A dependency is down (see Retry-After)",
};

/** The error responses a route can give, each a problem document. */
export function problems<const S extends readonly ContentfulStatusCode[]>(...statuses: S) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: problemDescriptions[status] ?? "Error", content: { "application/problem+json": { schema: Problem } } },
    ]),
  ) as { [K in S[number]]: { description: string; content: { "application/problem+json": { schema: typeof Problem } } } };
}

/** A JSON response of a route. */
export function json<T extends z.ZodType>(schema: T, description: string, headers?: Record<string, string>) {
  return {
    description,
    content: { "application/json": { schema } },
    ...(headers ? { headers: Object.fromEntries(Object.entries(headers).map(([h, d]) => [h, { description: d, schema: { type: "string" as const } }])) } : {}),
  };
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { required: true, ...(description ? { description } : {}), content: { "application/json": { schema } } };
}

const NoQuery = z.strictObject({});

/**
 * For routes without query parameters: any is a 400 (a typo in a parameter name is an error, not
 * silently ignored). A middleware rather than a request schema, so the typed client does not ask
 * for an empty `query`.
 */
export const noQueryParameters: MiddlewareHandler<AppEnv> = async (c, next) => {
  // Most requests have no query: then there is nothing to parse (zod's object parse and a URL
  // parse cost a cache hit more than everything else in this middleware chain).
  const url = c.req.url;
  const query = url.indexOf("?");
  if (query === -1 || query === url.length - 1) return next();
  const result = NoQuery.safeParse(Object.fromEntries(new URL(url).searchParams));
  if (!result.success) throw invalidInput("query", result.error);
  return next();
};

type Security = Array<Record<string, string[]>>;
export const bearerAuth: Security = [{ bearerAuth: [] }];
/** A token is optional: `{}` is the anonymous alternative. */
export const optionalBearerAuth: Security = [{ bearerAuth: [] }, {}];
export const webhookSignature: Security = [{ webhookSignature: [], webhookTimestamp: [] }];
