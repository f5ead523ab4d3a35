import { createRoute, z } from "@hono/zod-openapi";
import { createApi, json, optionalBearerAuth, problems } from "../_shared/api.ts";
import { signedInOrAnonymous } from "../_shared/auth.ts";
import { dependencyDown, unavailable } from "../_shared/errors.ts";
import { redisClient } from "../_shared/redis.ts";
import { callRpc } from "../_shared/rpc.ts";
import { Timestamp } from "../_shared/schemas.ts";
import { supabaseForRequest } from "../_shared/supabase.ts";

type Check = { status: "up" | "down"; latency_ms: number; error?: string };

async function timed<T>(run: () => Promise<T>): Promise<{ check: Check; value: T | null }> {
  const started = Date.now();
  try {
    const value = await run();
    return { check: { status: "up", latency_ms: Date.now() - started }, value };
  } catch (error) {
    return { check: { status: "down", latency_ms: Date.now() - started, error: (error as Error).message }, value: null };
  }
}

const CheckResult = z.object({ status: z.enum(["up", "down"]), latency_ms: z.number() });
const Operations = z.object({
  daily_job: z.object({
    last_finished_at: Timestamp.nullable(),
    last_ok: z.boolean().nullable(),
    last_success_at: Timestamp.nullable().describe("with `?strict=1`, older than 26 hours (or never) is a 503"),
    last_summary: z.record(z.string(), z.unknown()).nullable().describe("the last run's summary: platform admins only"),
  }),
  email_outbox: z.object({
    pending: z.number().int(),
    failed: z.number().int().describe("waiting for a retry"),
    dead: z.number().int().describe("given up after every retry; with `?strict=1`, any is a 503"),
  }),
  checked_at: Timestamp,
});
type OperationsData = z.infer<typeof Operations>;

/** Without a successful run for this long, the cron (02:00 UTC daily) has missed at least one. */
export const dailyJobOverdueMs = 26 * 3_600_000;

/** Why a strict health check fails, from what the database reports (none: healthy). */
export function operationalProblems(ops: OperationsData, now = Date.now()): string[] {
  const problems: string[] = [];
  const lastSuccess = ops.daily_job.last_success_at ? Date.parse(ops.daily_job.last_success_at) : null;
  if (lastSuccess === null) problems.push("the daily job has never finished successfully");
  else if (now - lastSuccess > dailyJobOverdueMs) {
    problems.push(`the daily job last succeeded ${Math.floor((now - lastSuccess) / 3_600_000)} h ago (more than 26 h)`);
  }
  if (ops.email_outbox.dead > 0) problems.push(`${ops.email_outbox.dead} e-mail(s) are dead letters (GET /status-levels/admin/email-outbox)`);
  return problems;
}

const Health = z.object({ status: z.literal("ok"), checks: z.object({ database: CheckResult, cache: CheckResult }) }).extend(Operations.shape);

const route = createRoute({
  method: "get",
  path: "/health",
  operationId: "getHealth",
  summary: "Is the service working: the database and the cache reachable, the daily job running, e-mails going out",
  description:
    "200 when the database (through PostgREST) and the cache answer, with when the daily job last finished and " +
    "succeeded and the e-mail outbox's counts. With `strict=1` (for uptime monitors) it is also a 503 when the daily " +
    "job has not succeeded for 26 hours or dead letters wait. The last run's summary only for platform admins.",
  tags: ["service"],
  security: optionalBearerAuth,
  middleware: [signedInOrAnonymous] as const,
  request: { query: z.strictObject({ strict: z.enum(["0", "1"]).optional().describe("1: also 503 when the job is overdue or dead letters wait") }) },
  responses: { 200: json(Health, "Working"), ...problems(400, 401, 503) },
});

export const getHealth = createApi().openapi(route, async (c) => {
  const [database, cache] = await Promise.all([
    // The caller's rights decide what the database reports (the last run's summary for admins).
    timed(() => callRpc<"status_levels_health", OperationsData>(supabaseForRequest(c), "status_levels_health", {})),
    timed(async () => {
      const pong = await redisClient(c.env).ping();
      if (pong !== "PONG") throw new Error(`unexpected reply ${String(pong)}`);
    }),
  ]);
  const down = Object.entries({ database: database.check, cache: cache.check }).filter(([, check]) => check.status === "down");
  // The reasons go to the log, not the body: they can name internal hosts.
  for (const [name, check] of down) c.get("log")("warn", "health check failed", { dependency: name, error: check.error });
  const checks = {
    database: { status: database.check.status, latency_ms: database.check.latency_ms },
    cache: { status: cache.check.status, latency_ms: cache.check.latency_ms },
  };
  c.header("cache-control", "no-store");
  if (down.length > 0) {
    const names = down.map(([name]) => name).join(" and ");
    throw dependencyDown(names, `${names} unreachable; see the service logs`, { checks });
  }
  const operations = database.value!;
  if (c.req.valid("query").strict === "1") {
    const reasons = operationalProblems(operations);
    if (reasons.length > 0) throw unavailable("not_operational", reasons.join("; "), { checks, ...operations, reasons }, 60);
  }
  return c.json({ status: "ok" as const, checks, ...operations }, 200);
});
