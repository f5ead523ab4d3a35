import { zValidator } from "@hono/zod-validator";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import type { AppEnv } from "./app-env.ts";
import { authenticate } from "./auth.ts";
import { ApiError, badRequest } from "./errors.ts";

type Target = "param" | "query" | "json";

export interface ResponseDoc {
  description: string;
  schema?: z.ZodType;
  /** Defaults to application/json. */
  contentType?: string;
  headers?: Record<string, string>;
}

/**
 * One endpoint: its HTTP shape (validated with zod, documented in OpenAPI from the same schemas)
 * and its handler, which receives the validated input.
 */
export interface RouteDef<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: "get" | "post";
  /** OpenAPI form, relative to /status-levels: `/organizations/{id}`. */
  path: string;
  /** When the Hono pattern differs from `path` (e.g. a file extension after the id). */
  honoPath?: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /**
   * `required`/`optional`: a Supabase access token; `user-or-service`: that or the service-role key;
   * `none`: public; `signature`: an HMAC-signed webhook (checked by the handler on the raw body).
   */
  auth: "required" | "optional" | "user-or-service" | "none" | "signature";
  params?: P;
  /** Without a query schema, any query parameter is a 400 (unless `anyQuery`). */
  query?: Q;
  /** Ignore query parameters (e.g. cache busters on an embedded badge). */
  anyQuery?: boolean;
  body?: B;
  /** A body the handler reads raw (e.g. to check a signature first): documented, validated by the handler. */
  rawBody?: z.ZodType;
  responses: Record<number, ResponseDoc>;
  /** Error statuses this endpoint can answer (documented as problem JSON). */
  errors: number[];
  handler: (
    c: Context<AppEnv>,
    input: { params: z.output<P>; query: z.output<Q>; body: z.output<B> },
  ) => Response | Promise<Response>;
}

export type AnyRoute = RouteDef<z.ZodType, z.ZodType, z.ZodType>;

export function defineRoute<P extends z.ZodType = z.ZodNever, Q extends z.ZodType = z.ZodNever, B extends z.ZodType = z.ZodNever>(
  route: RouteDef<P, Q, B>,
): AnyRoute {
  return route as unknown as AnyRoute;
}

const noQuery = z.strictObject({});

const where: Record<Target, string> = { param: "path", query: "query", json: "body" };

/** A zod failure as one 400 problem listing every issue with where it was. */
export function invalidInput(target: Target, error: z.ZodError): ApiError {
  const errors = error.issues.map((issue) => ({
    in: where[target],
    path: issue.path.map(String).join(".") || "(root)",
    message: issue.code === "unrecognized_keys" ? `unknown field(s): ${issue.keys.join(", ")}` : issue.message,
  }));
  return badRequest("invalid_request", `the request ${where[target]} is not valid: ${errors.map((e) => `${e.path} ${e.message}`).join("; ")}`, { errors });
}

function validate(target: Target, schema: z.ZodType): MiddlewareHandler<AppEnv> {
  return zValidator(target, schema, (result) => {
    if (!result.success) throw invalidInput(target, result.error as z.ZodError);
  }) as unknown as MiddlewareHandler<AppEnv>;
}

/**
 * A body must be JSON: anything else would validate as `{}`. No body at all is fine here (the
 * schema then reports the missing fields by name).
 */
const requireJson: MiddlewareHandler<AppEnv> = async (c, next) => {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const hasBody = c.req.raw.body !== null && c.req.header("content-length") !== "0";
  if (hasBody && type !== "application/json" && !/^application\/[\w.-]+\+json$/.test(type)) {
    throw new ApiError(415, "unsupported_media_type", "send the body as JSON with `Content-Type: application/json`");
  }
  return next();
};

export function mountRoutes(app: Hono<AppEnv>, routes: readonly AnyRoute[]): void {
  for (const route of routes) {
    const honoPath = route.honoPath ?? route.path.replace(/\{(\w+)\}/g, ":$1");
    const chain: MiddlewareHandler<AppEnv>[] = [];
    if (route.auth === "required" || route.auth === "optional" || route.auth === "user-or-service") chain.push(authenticate(route.auth));
    if (route.params) chain.push(validate("param", route.params));
    if (route.query) chain.push(validate("query", route.query));
    else if (!route.anyQuery) chain.push(validate("query", noQuery));
    if (route.body) chain.push(requireJson, validate("json", route.body));
    const on = app.on.bind(app) as unknown as (method: string, path: string, ...handlers: MiddlewareHandler<AppEnv>[]) => void;
    on(route.method.toUpperCase(), honoPath, ...chain, async (c) => {
      const valid = (target: Target) => (c.req.valid as (t: Target) => unknown)(target);
      return route.handler(c, {
        params: route.params ? valid("param") : undefined,
        query: route.query ? valid("query") : undefined,
        body: route.body ? valid("json") : undefined,
      } as never);
    });
  }
}
