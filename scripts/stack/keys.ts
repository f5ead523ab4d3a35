import { randomBytes, randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { signToken, type StackKeys } from "./tokens.ts";

export { signToken, userToken } from "./tokens.ts";

export type { StackKeys } from "./tokens.ts";

/** A project's keys; the issuer of its user tokens once its URL is known. */
export type KeyMaterial = Omit<StackKeys, "issuer"> & { issuer?: string };

export async function generateKeys(): Promise<KeyMaterial> {
  const kid = randomUUID();
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return {
    jwtSecret: randomBytes(32).toString("base64url"),
    signingKey: { ...(await exportJWK(privateKey)), kid, alg: "ES256", use: "sig" },
    publicKey: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" },
  };
}

/** What `/auth/v1/.well-known/jwks.json` serves: public asymmetric keys only, like Supabase. */
export function publicJwks(keys: KeyMaterial): { keys: JWK[] } {
  return { keys: [keys.publicKey] };
}

/** What PostgREST verifies with: the public key plus the legacy secret as an `oct` key. */
export function postgrestJwks(keys: KeyMaterial): string {
  const legacy: JWK = {
    kty: "oct",
    k: Buffer.from(keys.jwtSecret).toString("base64url"),
    alg: "HS256",
    kid: "legacy-hs256",
  };
  return JSON.stringify({ keys: [keys.publicKey, legacy] });
}

/** The project's API keys: long-lived HS256 JWTs, as the legacy Supabase keys are. */
export async function apiKeys(keys: KeyMaterial): Promise<{ anonKey: string; serviceRoleKey: string }> {
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
