import { compileErrors, validate } from "@readme/openapi-parser";
import { describe, expect, it } from "vitest";
import { createApp } from "../../functions/app.ts";
import { allRoutes } from "../../functions/status-levels/routes.ts";

/** The OpenAPI document is generated from the same route definitions the Worker mounts. */
describe("GET /status-levels/openapi.json", () => {
  const app = createApp();
  const env = {
    SUPABASE_URL: "http://127.0.0.1:9",
    SUPABASE_ANON_KEY: "anon",
    SUPABASE_SERVICE_ROLE_KEY: "service",
    UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
    UPSTASH_REDIS_REST_TOKEN: "token",
  };

  async function fetchDocument(): Promise<Record<string, any>> {
    const res = await app.request("/status-levels/openapi.json", {}, env);
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, any>;
  }

  it("validates as OpenAPI 3.1", async () => {
    const document = await fetchDocument();
    expect(document.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(document) as never);
    if (!result.valid) throw new Error(compileErrors(result));
    expect(result.valid).toBe(true);
  });

  it("lists every route the Worker serves, with its method", async () => {
    const document = await fetchDocument();
    // Hono lists a route once per handler in its chain (auth, validators, handler): dedupe.
    const mounted = [...new Set(app.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/status-levels/")).map((r) => `${r.method} ${r.path}`))].sort();
    const documented = allRoutes
      .map((r) => `${r.method.toUpperCase()} /status-levels${r.honoPath ?? r.path.replace(/\{(\w+)\}/g, ":$1")}`)
      .sort();
    expect(documented).toEqual(mounted);
    for (const route of allRoutes) {
      expect(document.paths[route.path]?.[route.method], `${route.method} ${route.path}`).toMatchObject({ operationId: route.operationId });
    }
    expect(mounted.length).toBeGreaterThanOrEqual(17);
  });

  it("documents request bodies, parameters and problem responses from the zod schemas", async () => {
    const document = await fetchDocument();
    const grant = document.paths["/organizations/{id}/grant"].post;
    expect(grant.parameters).toEqual([expect.objectContaining({ name: "id", in: "path", required: true })]);
    const body = grant.requestBody.content["application/json"].schema;
    expect(body.properties.level.enum).toEqual(["A", "B", "C"]);
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(["level"]);
    expect(grant.responses["409"].content["application/problem+json"].schema.$ref).toBe("#/components/schemas/Problem");
    const history = document.paths["/organizations/{id}/history"].get;
    expect(history.parameters.map((p: { name: string }) => p.name)).toEqual(["id", "limit", "offset"]);
    expect(history.parameters[1].schema).toMatchObject({ minimum: 1, maximum: 200, default: 50 });
  });
});
