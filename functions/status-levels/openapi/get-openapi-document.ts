import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../_shared/app-env.ts";

export const apiVersion = "1.1.0";

export const openApiInfo = {
  openapi: "3.1.0",
  info: {
    title: "Status levels",
    version: apiVersion,
    description:
      "Organizations earn levels A (subscription), B (verified, 18 months) and C (top level). Errors are RFC 9457 " +
      "problem documents with a stable `code` and a `detail` for people. The reference page is at /status-levels/docs.",
  },
  servers: [{ url: "/status-levels" }],
  tags: [
    { name: "organizations" }, { name: "levels" }, { name: "upgrade requests" }, { name: "admin" },
    { name: "badge" }, { name: "subscriptions" }, { name: "notifications" }, { name: "service" },
  ],
};

/**
 * GET /openapi.json: the document `@hono/zod-openapi` generates from the routes, built once per
 * isolate (generating it costs tens of milliseconds of CPU).
 */
export function describeApi(api: OpenAPIHono<AppEnv>): void {
  const registry = api.openAPIRegistry;
  registry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A Supabase Auth access token" });
  registry.registerComponent("securitySchemes", "webhookSignature", {
    type: "apiKey", in: "header", name: "x-status-levels-signature", description: "`v1=` + hex HMAC-SHA256(secret, timestamp + \".\" + raw body)",
  });
  registry.registerComponent("securitySchemes", "webhookTimestamp", {
    type: "apiKey", in: "header", name: "x-status-levels-timestamp", description: "Unix seconds; more than 5 minutes away from now is refused",
  });
  let document: unknown;
  api.get("/openapi.json", (c) => {
    document ??= api.getOpenAPI31Document(openApiInfo);
    c.header("cache-control", "public, max-age=300");
      return c.json(document as object);
  });
}
