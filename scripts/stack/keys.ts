import { randomBytes, randomUUID } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";

/**
 * The signing material of a local stack, shaped like a current Supabase project's:
 * user tokens are ES256 (verified through the JWKS), the anon and service-role keys
 * are signed with the legacy HS256 secret.
 */
export interface StackKeys {
  jwtSecret: string;
  signingKey: JWK & { kid: string };
  publicKey: JWK & { kid: string };
}

export async function generateKeys(): Promise<StackKeys> {
  const kid = randomUUID();
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return {
    jwtSecret: randomBytes(32).toString("base64url"),
    signingKey: { ...(await exportJWK(privateKey)), kid, alg: "ES256", use: "sig" },
    publicKey: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" },
  };
}

/** What `/auth/v1/.well-known/jwks.json` serves: public asymmetric keys only, like Supabase. */
export function publicJwks(keys: StackKeys): { keys: JWK[] } {
  return { keys: [keys.publicKey] };
}

/** What PostgREST verifies with: the public key plus the legacy secret as an `oct` key. */
export function postgrestJwks(keys: StackKeys): string {
  const legacy: JWK = {
    kty: "oct",
    k: Buffer.from(keys.jwtSecret).toString("base64url"),
    alg: "HS256",
    kid: "legacy-hs256",
  };
  return JSON.stringify({ keys: [keys.publicKey, legacy] });
}

type Claims = Record<string, unknown>;

export async function signToken(
  keys: StackKeys,
  claims: Claims,
  { alg = "ES256", expiresIn = "1h" }: { alg?: "ES256" | "HS256"; expiresIn?: string | number } = {},
): Promise<string> {
  const jwt = new SignJWT(claims).setIssuedAt().setExpirationTime(expiresIn);
  if (alg === "HS256") {
    return jwt.setProtectedHeader({ alg, typ: "JWT" }).sign(new TextEncoder().encode(keys.jwtSecret));
  }
  const key = await importJWK(keys.signingKey, "ES256");
  return jwt.setProtectedHeader({ alg, typ: "JWT", kid: keys.signingKey.kid }).sign(key);
}

/** The project's API keys: long-lived HS256 JWTs, as the legacy Supabase keys are. */
export async function apiKeys(keys: StackKeys): Promise<{ anonKey: string; serviceRoleKey: string }> {
  const tenYears = "3650d";
  return {
    anonKey: await signToken(keys, { role: "anon", iss: "supabase" }, { alg: "HS256", expiresIn: tenYears }),
    serviceRoleKey: await signToken(
      keys,
      { role: "service_role", iss: "supabase" },
      { alg: "HS256", expiresIn: tenYears },
    ),
  };
}

/** A signed-in user's access token, as Supabase Auth issues it. */
export async function userToken(
  keys: StackKeys,
  userId: string,
  { email, expiresIn = "1h", alg = "ES256" }: { email?: string; expiresIn?: string | number; alg?: "ES256" | "HS256" } = {},
): Promise<string> {
  return signToken(
    keys,
    {
      sub: userId,
      role: "authenticated",
      aud: "authenticated",
      iss: "supabase",
      ...(email ? { email } : {}),
      session_id: randomUUID(),
    },
    { alg, expiresIn },
  );
}
