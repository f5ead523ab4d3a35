import { describe, expect, it } from "vitest";
import { call, expectProblem, fixtures } from "../../_test/harness.ts";

describe("GET /status-levels/badge/{id}.svg and .json", () => {
  it("renders the current level as an accessible SVG with ETag and cache headers", async () => {
    const orgId = await fixtures.organization();
    await fixtures.levelRow(orgId, "B");
    const res = await call(`/status-levels/badge/${orgId}.svg`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/svg+xml; charset=utf-8");
    expect(res.headers.get("cache-control")).toMatch(/public, max-age=60/);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-f]{40}"$/);
    const svg = await res.text();
    expect(svg).toMatch(/^<svg [^>]*role="img"[^>]*aria-labelledby="badge-title badge-desc"/);
    expect(svg).toContain("<title id=\"badge-title\">Status level: B · Verified</title>");
    // The description is one sentence that says "the platform" once (it used to say it twice).
    const description = /<desc id="badge-desc">([^<]*)<\/desc>/.exec(svg)![1]!;
    expect(description).toBe("This organization holds level B: its quality is verified by the platform.");
    expect(description.match(/the platform/g)).toHaveLength(1);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("answers 304 to a matching If-None-Match, and a new body once the level changes", async () => {
    const orgId = await fixtures.organization();
    await fixtures.levelRow(orgId, "A", { subscriptionId: (await fixtures.subscription(orgId)).id });
    const first = await call(`/status-levels/badge/${orgId}.svg`);
    const etag = first.headers.get("etag")!;
    const again = await call(`/status-levels/badge/${orgId}.svg`, { headers: { "if-none-match": `W/"other", ${etag}` } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    expect(again.headers.get("etag")).toBe(etag);

    const admin = await fixtures.platformAdmin();
    const grant = await call(`/status-levels/organizations/${orgId}/grant`, { method: "POST", token: admin.token, json: { level: "B" } });
    expect(grant.status).toBe(201);
    const changed = await call(`/status-levels/badge/${orgId}.svg`, { headers: { "if-none-match": etag } });
    expect(changed.status).toBe(200);
    expect(await changed.text()).toContain("B · Verified");
  });

  it("gives unknown and non-public organizations the same neutral badge: nothing leaks", async () => {
    const hidden = await fixtures.organization({ isPublic: false });
    await fixtures.levelRow(hidden, "C");
    const unknown = await call(`/status-levels/badge/${crypto.randomUUID()}.svg`);
    const secret = await call(`/status-levels/badge/${hidden}.svg`);
    expect(unknown.status).toBe(200);
    expect(secret.status).toBe(200);
    const [a, b] = [await unknown.text(), await secret.text()];
    expect(a).toBe(b);
    expect(a).toContain("Not available");
    expect(unknown.headers.get("etag")).toBe(secret.headers.get("etag"));
    await expectProblem(await call(`/status-levels/badge/${hidden}.json`), 404, "organization_not_found");
  });

  it("serves the same data as JSON, and ignores cache-busting query parameters", async () => {
    const orgId = await fixtures.organization();
    await fixtures.levelRow(orgId, "B");
    const res = await call(`/status-levels/badge/${orgId}.json?v=3`);
    expect(res.status).toBe(200);
    const json = (await res.json()) as Record<string, any>;
    expect(json).toMatchObject({ organization_id: orgId, current_level: "B", label: "B · Verified", svg: `${orgId}.svg` });
    expect(Object.keys(json.active_levels[0]).sort()).toEqual(["level", "valid_from", "valid_until"]);
  });
});

describe("GET /status-levels/levels", () => {
  it("is public and cacheable", async () => {
    const res = await call("/status-levels/levels");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("public, max-age=3600");
    const catalog = (await res.json()) as { levels: Array<{ level: string; requires: string[] }>; precedence: string[] };
    expect(catalog.levels.map((l) => l.level)).toEqual(["A", "B", "C"]);
    expect(catalog.levels[2]!.requires).toEqual(["B"]);
    expect(catalog.precedence).toEqual(["C", "B", "A", "0"]);
  });
});

describe("CORS for browser clients", () => {
  it("answers a preflight from an allowed origin, with credentials and the exposed headers", async () => {
    const res = await call("/status-levels/organizations/00000000-0000-4000-a000-000000000000", {
      method: "OPTIONS",
      headers: { origin: "http://app.localhost:5173", "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.localhost:5173");
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    const get = await call("/status-levels/levels", { headers: { origin: "http://app.localhost:5173" } });
    expect(get.headers.get("access-control-expose-headers")).toMatch(/x-request-id/);
  });

  it("does not allow an unknown origin", async () => {
    const res = await call("/status-levels/levels", { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "GET" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("echoes a sane x-request-id and replaces a hostile one", async () => {
    const mine = await call("/status-levels/levels", { headers: { "x-request-id": "trace-123" } });
    expect(mine.headers.get("x-request-id")).toBe("trace-123");
    const hostile = await call("/status-levels/levels", { headers: { "x-request-id": "a\"b<script>" } });
    expect(hostile.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
