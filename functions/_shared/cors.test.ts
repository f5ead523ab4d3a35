import { describe, expect, it } from "vitest";
import { call, fixtures } from "../_test/harness.ts";

/** CORS as browsers see it: credentials only for listed origins, never together with `*`. */
describe("CORS", () => {
  it("lets listed origins send credentials, written however the setting writes them (case, trailing slash, spaces)", async () => {
    const orgId = await fixtures.organization();
    const env = { CORS_ALLOWED_ORIGINS: " https://App.Example/ , https://b.example " };
    for (const origin of ["https://app.example", "https://b.example"]) {
      const res = await call(`/status-levels/organizations/${orgId}`, { headers: { origin } }, env);
      expect([res.headers.get("access-control-allow-origin"), res.headers.get("access-control-allow-credentials")]).toEqual([origin, "true"]);
    }
    const other = await call(`/status-levels/organizations/${orgId}`, { headers: { origin: "https://evil.example" } }, env);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("answers `*` without credentials where any page may read or embed (the badge, the API description), whatever the setting", async () => {
    const orgId = await fixtures.organization();
    for (const path of [`/status-levels/badge/${orgId}.svg`, `/status-levels/badge/${orgId}.json`, "/status-levels/openapi.json"]) {
      for (const origin of ["http://app.localhost:5173", "https://anywhere.example"]) {
        const res = await call(path, { headers: { origin } });
        expect({ path, origin, allow: res.headers.get("access-control-allow-origin"), credentials: res.headers.get("access-control-allow-credentials") })
          .toEqual({ path, origin, allow: "*", credentials: null });
      }
    }
    const etag = (await call(`/status-levels/badge/${orgId}.svg`)).headers.get("etag")!;
    const notModified = await call(`/status-levels/badge/${orgId}.svg`, { headers: { "if-none-match": etag, "x-request-id": "trace-304" } });
    expect([notModified.status, notModified.headers.get("access-control-allow-origin"), notModified.headers.get("x-request-id")]).toEqual([304, "*", "trace-304"]);
  });

  it("never combines `*` with credentials, also when the setting is `*`", async () => {
    const orgId = await fixtures.organization();
    const res = await call(`/status-levels/organizations/${orgId}`, { headers: { origin: "https://anywhere.example" } }, { CORS_ALLOWED_ORIGINS: "*" });
    expect([res.headers.get("access-control-allow-origin"), res.headers.get("access-control-allow-credentials")]).toEqual(["*", null]);
  });
});
