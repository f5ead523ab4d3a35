import { describe, expect, it } from "vitest";
import { call, deadUrl } from "../_test/harness.ts";

describe("GET /status-levels/health", () => {
  it("reports database and cache up", async () => {
    const res = await call("/status-levels/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string; latency_ms: number }> };
    expect(body.status).toBe("ok");
    expect(body.checks.database!.status).toBe("up");
    expect(body.checks.cache!.status).toBe("up");
  });

  it("is 503 with a problem JSON body when Redis is unreachable", async () => {
    const res = await call("/status-levels/health", {}, { UPSTASH_REDIS_REST_URL: deadUrl });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.headers.get("retry-after")).toBe("5");
    const body = (await res.json()) as Record<string, any>;
    expect(body).toMatchObject({ status: 503, code: "dependency_unavailable", title: "Service unavailable" });
    expect(body.checks.cache.status).toBe("down");
    expect(body.checks.database.status).toBe("up");
    expect(JSON.stringify(body)).not.toContain("127.0.0.1");
  });

  it("is 503 when the database (PostgREST) is unreachable", async () => {
    const res = await call("/status-levels/health", {}, { SUPABASE_URL: deadUrl });
    expect(res.status).toBe(503);
    const body = (await res.json()) as Record<string, any>;
    expect(body.checks.database.status).toBe("down");
    expect(body.checks.cache.status).toBe("up");
  });

  it("answers 503 'misconfigured' rather than crashing when a binding is missing", async () => {
    const res = await call("/status-levels/health", {}, { SUPABASE_URL: "" });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string }).code).toBe("misconfigured");
  });
});

describe("unknown routes", () => {
  it("are 404 problem JSON", async () => {
    const res = await call("/status-levels/nope");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe("route_not_found");
  });
});
