import { buildOpenApiDocument } from "../../_shared/openapi.ts";
import { defineRoute, type AnyRoute } from "../../_shared/route.ts";

export const apiVersion = "1.0.0";

/** GET /openapi.json, built once per isolate from the mounted routes. */
export function openApiRoute(routes: () => readonly AnyRoute[]): AnyRoute {
  let document: Record<string, unknown> | undefined;
  return defineRoute({
    method: "get",
    path: "/openapi.json",
    operationId: "getOpenApiDocument",
    summary: "This document",
    tags: ["service"],
    auth: "none",
    responses: { 200: { description: "OpenAPI 3.1" } },
    errors: [],
    handler: (c) => {
      document ??= buildOpenApiDocument(routes(), apiVersion);
      c.header("cache-control", "public, max-age=300");
      c.header("access-control-allow-origin", "*");
      return c.json(document);
    },
  });
}
