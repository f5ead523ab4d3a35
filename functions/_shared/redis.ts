import { Redis } from "@upstash/redis/cloudflare";
import { config, type Env } from "./env.ts";

/**
 * A fresh Upstash client (cheap: it holds configuration only). Not shared between requests: a
 * Worker must not settle one request's promises from another request's I/O, which a shared
 * auto-pipelining client would do. No retries and a time limit per call: the cache is an
 * optimisation, so a slow or absent Redis costs a request milliseconds, never seconds.
 */
export function redisClient(env: Env): Redis {
  const cfg = config(env);
  return new Redis({
    url: cfg.UPSTASH_REDIS_REST_URL,
    token: cfg.UPSTASH_REDIS_REST_TOKEN,
    retry: false,
    enableTelemetry: false,
    enableAutoPipelining: false,
    readYourWrites: false,
    signal: () => AbortSignal.timeout(Math.min(cfg.DEPENDENCY_TIMEOUT_MS, 1500)),
  });
}
