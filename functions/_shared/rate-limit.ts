import { Ratelimit } from "@upstash/ratelimit";
import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import { config } from "./env.ts";
import { ApiError } from "./errors.ts";
import { redisClient } from "./redis.ts";

// Identifiers known to be over the limit, per isolate: saves Redis calls for a client hammering us.
const blocked = new Map<string, number>();

/**
 * Sliding-window limit per user for an action. Over the limit: 429 with Retry-After. Redis down:
 * the request goes through (logged) - a cache outage must not stop members from working.
 */
export async function enforceRateLimit(c: Context<AppEnv>, action: string, userId: string, limit: number, windowSeconds: number): Promise<void> {
  const cfg = config(c.env);
  const ratelimit = new Ratelimit({
    redis: redisClient(c.env),
    limiter: Ratelimit.slidingWindow(limit, `${windowSeconds} s`),
    prefix: `${cfg.CACHE_KEY_PREFIX}:rl:${action}`,
    ephemeralCache: blocked,
    analytics: false,
  });
  let result: Awaited<ReturnType<Ratelimit["limit"]>>;
  try {
    result = await ratelimit.limit(userId);
  } catch (error) {
    c.get("log")("warn", "rate limit check failed; letting the request through", { action, error: (error as Error).message });
    return;
  }
  c.header("ratelimit-limit", String(result.limit));
  c.header("ratelimit-remaining", String(Math.max(0, result.remaining)));
  if (!result.success) {
    const retryAfter = Math.max(1, Math.ceil((result.reset - Date.now()) / 1000));
    throw new ApiError(
      429,
      "rate_limited",
      `too many ${action.replace(/-/g, " ")} attempts: at most ${limit} per ${windowSeconds} s; try again in ${retryAfter} s`,
      { retry_after_seconds: retryAfter },
      { "retry-after": String(retryAfter) },
    );
  }
}
