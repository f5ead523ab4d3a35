/**
 * A typed client for browser code (and any other TypeScript caller): Hono's `hc` typed by the
 * Worker's app, so every route's path parameters, query, JSON body and the JSON of each response
 * status are checked by the compiler, from the same zod schemas that validate requests and
 * generate the OpenAPI document.
 *
 * ```ts
 * const api = createStatusLevelsClient("https://status-levels.example.workers.dev", { token: () => session.access_token });
 * const res = await api["status-levels"].organizations[":id"].$get({ param: { id: orgId } });
 * if (res.status === 200) console.log((await res.json()).level_c_progress?.review_count);
 * ```
 *
 * Imports only types from the Worker: a browser bundle gets `hono/client` (a few KiB) and nothing
 * else.
 */
import type { ClientRequestOptions } from "hono/client";
import { hc } from "hono/client";
import type { App } from "./app.ts";

export type { App } from "./app.ts";

/** The HTTP methods' keys on the client (`$get`, `$post`, ...). */
type MethodKey = `$${"get" | "post" | "put" | "delete" | "patch" | "options" | "head"}`;

/**
 * List routes declare only optional query parameters (`limit`, `offset`, `status`), yet `hc` would
 * make the caller write `query: {}`. Here a `query` without required fields may be left out, and
 * so may the whole argument when nothing else is required. Types only: `hc` sends no query string
 * for a missing one.
 */
type RelaxArgs<A> = A extends { query: infer Q } ? ({} extends Q ? Omit<A, "query"> & { query?: Q } : A) : A;
type RelaxCall<F> = F extends (args: infer A, ...options: never[]) => infer R
  ? {} extends RelaxArgs<NonNullable<A>>
    ? (args?: RelaxArgs<NonNullable<A>>, options?: ClientRequestOptions) => R
    : (args: RelaxArgs<NonNullable<A>>, options?: ClientRequestOptions) => R
  : F;
type Relax<T> = { [K in keyof T]: K extends MethodKey ? RelaxCall<T[K]> : K extends `$${string}` ? T[K] : Relax<T[K]> };

/** The client's type: `client["status-levels"].<path segments>.$get(...)` / `.$post(...)`. */
export type StatusLevelsClient = Relax<ReturnType<typeof hc<App>>>;

export interface StatusLevelsClientOptions {
  /**
   * The caller's Supabase access token, sent as `Authorization: Bearer`. A function is asked before
   * every request (a session's token is refreshed); null or missing: an anonymous call.
   */
  token?: string | null | (() => string | null | undefined | Promise<string | null | undefined>);
  /** Other headers for every request. */
  headers?: Record<string, string>;
  /** Another fetch (tests, a fetch with retries). */
  fetch?: typeof fetch;
}

/**
 * A client for the Worker at `baseUrl` (its origin, e.g. `https://status-levels.example.workers.dev`;
 * the paths start with `status-levels`).
 */
export function createStatusLevelsClient(baseUrl: string, options: StatusLevelsClientOptions = {}): StatusLevelsClient {
  const { token, headers = {} } = options;
  const client = hc<App>(baseUrl, {
    headers: async () => {
      const value = typeof token === "function" ? await token() : token;
      return value ? { ...headers, authorization: `Bearer ${value}` } : headers;
    },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  return encodingPathParameters(client) as unknown as StatusLevelsClient;
}

/**
 * `hc` puts path parameters into the URL as they are, so an id taken from a page's own URL
 * (`?org=../admin/email-outbox`, a `?` or a `#`) could send the caller's token to another
 * endpoint. Every `param` value is percent-encoded first: it stays one path segment, which the
 * API then refuses as a bad id.
 */
function encodingPathParameters<T extends object>(node: T): T {
  return new Proxy(node, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (typeof key === "string" && key.startsWith("$") && typeof value === "function") {
        return (args?: { param?: Record<string, unknown> }, ...rest: unknown[]) =>
          (value as (...a: unknown[]) => unknown)(
            args?.param ? { ...args, param: Object.fromEntries(Object.entries(args.param).map(([k, v]) => [k, encodeURIComponent(String(v))])) } : args,
            ...rest,
          );
      }
      return typeof value === "function" || (typeof value === "object" && value !== null) ? encodingPathParameters(value as object) : value;
    },
  });
}
