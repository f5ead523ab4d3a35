import { describe, expect, it } from "vitest";
import { body, call, exec, fixtures } from "../../_test/harness.ts";

/** The status cache never shows what the database would not (DESIGN.md, "Reads, caching and who sees what"). */

const sleepUntil = (instant: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, instant - Date.now())));

describe("a cached status never outlives the earliest valid_until in it", () => {
  it("stops showing a level at its valid_until, also when the read before was a cache hit", async () => {
    const p = await fixtures.orgWithPeople();
    // Far enough ahead for the grant and four reads on a loaded machine, all before it.
    const validUntil = new Date(Date.now() + 8000);
    const grant = await call(`/status-levels/organizations/${p.orgId}/grant`, {
      method: "POST",
      token: p.platformAdmin.token,
      json: { level: "B", valid_until: validUntil.toISOString() },
    });
    expect(grant.status).toBe(201);

    for (const token of [p.member.token, null]) {
      const first = await call(`/status-levels/organizations/${p.orgId}`, { token });
      expect(first.headers.get("x-cache")).toBe("miss");
      expect((await body(first)).current_level).toBe("B");
      const second = await call(`/status-levels/organizations/${p.orgId}`, { token });
      expect(second.headers.get("x-cache")).toBe("hit");
      expect((await body(second)).current_level).toBe("B");
    }

    await sleepUntil(validUntil.getTime() + 50);
    for (const token of [p.member.token, null]) {
      const after = await body(await call(`/status-levels/organizations/${p.orgId}`, { token }));
      expect(after.current_level).toBe("0");
      expect(after.active_levels).toEqual([]);
    }
    const badge = await body(await call(`/status-levels/badge/${p.orgId}.json`));
    expect(badge.current_level).toBe("0");
  });

  it("gives the badge a Cache-Control max-age (and stale-while-revalidate) that ends by the earliest valid_until", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B", { validUntil: new Date(Date.now() + 20_000) });
    const badge = await call(`/status-levels/badge/${p.orgId}.svg`);
    expect(badge.status).toBe(200);
    const cacheControl = badge.headers.get("cache-control")!;
    const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)![1]);
    const stale = Number(/stale-while-revalidate=(\d+)/.exec(cacheControl)?.[1] ?? 0);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge + stale).toBeLessThanOrEqual(20);

    const far = await fixtures.orgWithPeople();
    await fixtures.levelRow(far.orgId, "B");
    expect((await call(`/status-levels/badge/${far.orgId}.svg`)).headers.get("cache-control")).toMatch(/max-age=60\b/);
  });
});

describe("ids are lowercase before they make a cache key or reach the database", () => {
  it("serves upper- and lowercase reads from one cache entry, and a revoke through either shows at once through the other", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    const lower = p.orgId.toLowerCase();
    const upper = p.orgId.toUpperCase();

    const first = await call(`/status-levels/organizations/${upper}`, { token: p.member.token });
    expect(first.headers.get("x-cache")).toBe("miss");
    expect((await body(first)).organization_id).toBe(lower);
    const second = await call(`/status-levels/organizations/${lower}`, { token: p.member.token });
    expect(second.headers.get("x-cache")).toBe("hit");

    const revoke = await call(`/status-levels/organizations/${lower}/revoke`, { method: "POST", token: p.platformAdmin.token, json: { level: "B", reason: "audit failed" } });
    expect(await body(revoke)).toMatchObject({ organization_id: lower, success: true });
    const afterRevoke = await call(`/status-levels/organizations/${upper}`, { token: p.member.token });
    expect(afterRevoke.headers.get("x-cache")).toBe("miss");
    expect((await body(afterRevoke)).current_level).toBe("0");

    expect((await call(`/status-levels/organizations/${lower}`, { token: p.member.token })).headers.get("x-cache")).toBe("hit");
    const grant = await call(`/status-levels/organizations/${upper}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "B" } });
    expect(grant.status).toBe(201);
    expect((await body(await call(`/status-levels/organizations/${lower}`, { token: p.member.token }))).current_level).toBe("B");
  });

  it("lowercases ids in bodies too (an upgrade request for an uppercase organization id)", async () => {
    const p = await fixtures.orgWithPeople();
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.owner.token }))).pending_upgrade_request).toBeNull();
    const created = await call("/status-levels/upgrade-requests", {
      method: "POST",
      token: p.owner.token,
      json: { organization_id: p.orgId.toUpperCase(), target_level: "B" },
    });
    expect(created.status).toBe(201);
    expect((await body(created)).organization_id).toBe(p.orgId);
    expect((await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.owner.token }))).pending_upgrade_request).not.toBeNull();
  });
});

describe("a platform admin removed from platform_admins stops reading full views at once", () => {
  it("reads the public projection on the next read after the admin row is revoked, cached reads included", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    for (let i = 0; i < 2; i++) {
      const res = await call(`/status-levels/organizations/${p.orgId}`, { token: p.platformAdmin.token });
      expect((await body(res)).visibility).toBe("full");
    }
    await exec("update public.platform_admins set revoked_at = now() where user_id = $1", [p.platformAdmin.id]);
    const after = await body(await call(`/status-levels/organizations/${p.orgId}`, { token: p.platformAdmin.token }));
    expect(after).toMatchObject({ visibility: "public", can_manage: false, level_c_progress: null });
  });
});

describe("a cache hit sends the cached JSON as it is", () => {
  it("answers a hit with the very text of the miss that filled it, can_manage for each caller", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    for (const [token, canManage] of [[p.member.token, false], [p.owner.token, true]] as const) {
      const miss = await call(`/status-levels/organizations/${p.orgId}`, { token });
      const missText = await miss.text();
      const hit = await call(`/status-levels/organizations/${p.orgId}`, { token });
      expect(hit.headers.get("x-cache")).toBe("hit");
      expect(hit.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await hit.text()).toBe(missText);
      expect(JSON.parse(missText)).toMatchObject({ organization_id: p.orgId, visibility: "full", current_level: "B", can_manage: canManage });
    }
  });
});
