import { createMiddleware } from "hono/factory";
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import type { AppEnv } from "./app-env.ts";
import { config } from "./env.ts";
import { constantTimeEqual } from "./crypto.ts";
import { ApiError, dependencyDown, unauthorized } from "./errors.ts";
import { cachedVerification, rememberVerification } from "./token-cache.ts";

/** A verified signed-in user. The token goes on to Supabase so RLS decides what they may do. */
export interface Caller {
  userId: string;
  email: string | null;
  token: string;
}

const asymmetric = new Set(["ES256", "RS256", "EdDSA", "ES384", "RS384", "RS512", "PS256"]);
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// One key set per JWKS URL and isolate: jose caches the keys and refetches when an unknown kid
// shows up (key rotation), at most once per cooldown.
const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

function keySet(supabaseUrl: string, timeoutMs: number) {
  const url = `${supabaseUrl.replace(/\/$/, "")}/auth/v1/.well-known/jwks.json`;
  let set = keySets.get(url);
  if (!set) {
    set = createRemoteJWKSet(new URL(url), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: timeoutMs });
    keySets.set(url, set);
  }
  return set;
}

/**
 * Verifies a Supabase Auth access token: asymmetric keys through the project's JWKS, the legacy
 * HS256 secret as the fallback; audience `authenticated`, expiry, a user id. Any failure is a 401
 * that says what was wrong (never which key or secret was tried).
 */
export async function verifyAccessToken(env: AppEnv["Bindings"], token: string): Promise<Caller> {
  const cfg = config(env);
  const known = cachedVerification<Caller & { secret: string | undefined; issuer: string }>(token);
  // A token verified with the HS256 secret stays valid only while that secret (and the issuer) is configured.
  if (known && known.secret === cfg.SUPABASE_JWT_SECRET && known.issuer === cfg.SUPABASE_JWT_ISSUER) {
    return { userId: known.userId, email: known.email, token };
  }
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw unauthorized("the bearer token is not a JWT");
  }
  // Only this project's Supabase Auth issues tokens for it: another project's (or a stray) token
  // signed with a shared key must not pass.
  const options = { audience: "authenticated", issuer: cfg.SUPABASE_JWT_ISSUER, clockTolerance: 5, requiredClaims: ["exp", "sub", "iss"] };
  let payload: JWTPayload;
  try {
    if (alg && asymmetric.has(alg)) {
      ({ payload } = await jwtVerify(token, keySet(cfg.SUPABASE_URL, Math.min(cfg.DEPENDENCY_TIMEOUT_MS, 3000)), {
        ...options,
        algorithms: [...asymmetric],
      }));
    } else if (alg === "HS256" && cfg.SUPABASE_JWT_SECRET) {
      ({ payload } = await jwtVerify(token, new TextEncoder().encode(cfg.SUPABASE_JWT_SECRET), { ...options, algorithms: ["HS256"] }));
    } else {
      throw unauthorized(`tokens signed with ${alg ?? "no algorithm"} are not accepted`);
    }
  } catch (error) {
    throw toAuthError(error, cfg.SUPABASE_JWT_ISSUER);
  }
  if (payload.role !== "authenticated" || typeof payload.sub !== "string" || !uuidPattern.test(payload.sub)) {
    throw unauthorized("the token is not a signed-in user's access token");
  }
  const caller: Caller = { userId: payload.sub.toLowerCase(), email: typeof payload.email === "string" ? payload.email : null, token };
  rememberVerification(token, { ...caller, secret: cfg.SUPABASE_JWT_SECRET, issuer: cfg.SUPABASE_JWT_ISSUER }, payload.exp!);
  return caller;
}

function toAuthError(error: unknown, issuer: string): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof errors.JWTExpired) return unauthorized("the token has expired; sign in again");
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === "iss") {
    return unauthorized(`the token was not issued by this project's Supabase Auth: its iss claim must be ${issuer}`);
  }
  if (error instanceof errors.JWTClaimValidationFailed) return unauthorized(`the token's ${error.claim} claim is not accepted`);
  if (error instanceof errors.JWKSTimeout) return dependencyDown("auth", "the signing keys could not be fetched; try again shortly");
  if (error instanceof errors.JWKSNoMatchingKey) return unauthorized("the token was not signed by this project's keys");
  if (error instanceof errors.JOSEError) return unauthorized("the token's signature is not valid");
  // The key set could not be fetched at all (network error): that is the auth service being down.
  return dependencyDown("auth", "the signing keys could not be fetched; try again shortly");
}

function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized("the Authorization header must be `Bearer <access token>`");
  return match[1]!;
}

type Mode = "required" | "optional" | "user-or-service";

function authenticate<E extends AppEnv>(mode: Mode) {
  return createMiddleware<E>(async (c, next) => {
    const token = bearer(c.req.header("authorization"));
    c.set("service", false);
    if (mode === "user-or-service" && token && (await constantTimeEqual(token, config(c.env).SUPABASE_SERVICE_ROLE_KEY))) {
      c.set("service", true);
      c.set("caller", null);
      c.get("logFields").user_id = "service_role";
      return next();
    }
    if (!token) {
      if (mode !== "optional") throw unauthorized("sign in: this endpoint needs a bearer access token");
      c.set("caller", null);
      return next();
    }
    const caller = await verifyAccessToken(c.env, token);
    c.set("caller", caller);
    c.get("logFields").user_id = caller.userId;
    return next();
  });
}

/** A signed-in user is required (401 otherwise); `c.get("caller")` is then set. */
export const signedIn = authenticate<AppEnv>("required");
/** Signed in or anonymous (`caller` null). A token that is sent must be valid. */
export const signedInOrAnonymous = authenticate<AppEnv>("optional");
/**
 * A signed-in user or the platform's backend with the service-role key itself (`caller` null,
 * `service` true).
 */
export const signedInOrService = authenticate<AppEnv>("user-or-service");
