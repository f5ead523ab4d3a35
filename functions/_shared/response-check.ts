import type { OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { AppEnv } from "./app-env.ts";
import { config } from "./env.ts";
import { ApiError, problem } from "./errors.ts";

type Responses = Record<string, { content?: Record<string, { schema: z.ZodType }> }>;

/**
 * With `CHECK_RESPONSES=true` (the tests and `npm run dev`; off in production) every response of
 * a documented route is checked against the schema the route declares for its status: a status
 * it does not declare, a missing or mistyped field, or a field the schema does not know replaces
 * the response with a 500 problem naming the differences. So a test fails, and the OpenAPI
 * document cannot drift from what is sent.
 */
export function checkResponses(api: OpenAPIHono<AppEnv>, basePath: string): MiddlewareHandler<AppEnv> {
  let routes: Map<string, Responses> | undefined;
  const index = () => {
    routes ??= new Map(
      api.openAPIRegistry.definitions.flatMap((d) =>
        d.type === "route"
          ? [[`${d.route.method.toUpperCase()} ${basePath}${d.route.path.replace(/\{(\w+)\}/g, ":$1")}`, d.route.responses as Responses] as const]
          : [],
      ),
    );
    return routes;
  };
  return async (c, next) => {
    await next();
    if (!config(c.env).CHECK_RESPONSES) return;
    const method = c.req.method === "HEAD" ? "GET" : c.req.method;
    const responses = index().get(`${method} ${routePath(c, -1)}`);
    if (!responses || method === "OPTIONS") return;
    const differences = await compare(c.res, responses);
    if (differences.length === 0) return;
    c.get("log")("error", "response does not match the route's declared schema", { differences });
    c.res = problem(c, new ApiError(500, "response_contract_violation", `the response does not match the API description: ${differences.join("; ")}`, { differences }));
  };
}

async function compare(res: Response, responses: Responses): Promise<string[]> {
  const declared = responses[String(res.status)];
  if (!declared) return [`status ${res.status} is not declared for this route`];
  const mediaType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
  const content = declared.content;
  if (!content) return res.body === null ? [] : [`status ${res.status} declares no body, but one was sent`];
  const entry = content[mediaType];
  if (!entry) return [`content type ${mediaType || "(none)"} is not declared for status ${res.status}`];
  if (!/json$/.test(mediaType)) return [];
  const body: unknown = await res.clone().json();
  const parsed = entry.schema.safeParse(body);
  if (!parsed.success) return parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
  return undeclared(body, parsed.data, "");
}

/** Fields the schema dropped (it does not declare them): what a client sees but the document hides. */
function undeclared(sent: unknown, kept: unknown, path: string): string[] {
  if (Array.isArray(sent) && Array.isArray(kept)) return sent.flatMap((item, i) => undeclared(item, kept[i], `${path}${i}.`));
  if (sent && kept && typeof sent === "object" && typeof kept === "object") {
    return Object.entries(sent).flatMap(([key, value]) =>
      key in kept ? undeclared(value, (kept as Record<string, unknown>)[key], `${path}${key}.`) : [`${path}${key}: not declared`],
    );
  }
  return [];
}
