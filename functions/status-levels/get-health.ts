import { createRoute, z } from "@hono/zod-openapi";
import { createApi, json, noQueryParameters, problems } from "../_shared/api.ts";
import { dependencyDown } from "../_shared/errors.ts";
import { redisClient } from "../_shared/redis.ts";
import { supabaseAsCaller } from "../_shared/supabase.ts";

type Check = { status: "up" | "down"; latency_ms: number; error?: string };

async function timed(run: () => Promise<void>): Promise<Check> {
  const started = Date.now();
  try {
    await run();
    return { status: "up", latency_ms: Date.now() - started };
  } catch (error) {
    return { status: "down", latency_ms: Date.now() - started, error: (error as Error).message };
  }
}

const CheckResult = z.object({ status: z.enum(["up", "down"]), latency_ms: z.number() });

const route = createRoute({
  method: "get",
  path: "/health",
  operationId: "getHealth",
  summary: "Are the database (through PostgREST) and the cache reachable?",
  tags: ["service"],
  
  middleware: [noQueryParameters] as const,
  responses: {
    200: json(z.object({ status: z.literal("ok"), checks: z.object({ database: CheckResult, cache: CheckResult }) }), "Both up"),
    ...problems(400, 503),
  },
});

export const getHealth = createApi().openapi(route, async (c) => {
  const [database, cache] = await Promise.all([
    timed(async () => {
      const { error, status } = await supabaseAsCaller(c.env, null).rpc("status_levels_ping");
      if (error) throw new Error(`HTTP ${status}: ${error.message}`);
    }),
    timed(async () => {
      const pong = await redisClient(c.env).ping();
      if (pong !== "PONG") throw new Error(`unexpected reply ${String(pong)}`);
    }),
  ]);
  const down = Object.entries({ database, cache }).filter(([, check]) => check.status === "down");
  // The reasons go to the log, not the body: they can name internal hosts.
  for (const [name, check] of down) c.get("log")("warn", "health check failed", { dependency: name, error: check.error });
  const checks = {
    database: { status: database.status, latency_ms: database.latency_ms },
    cache: { status: cache.status, latency_ms: cache.latency_ms },
  };
  c.header("cache-control", "no-store");
  if (down.length > 0) {
    const names = down.map(([name]) => name).join(" and ");
    throw dependencyDown(names, `${names} unreachable; see the service logs`, { checks });
  }
  return c.json({ status: "ok" as const, checks }, 200);
});
