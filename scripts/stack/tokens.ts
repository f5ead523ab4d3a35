import { SignJWT, importJWK, type JWK } from "jose";

/**
 * Token minting with Web APIs only (jose + WebCrypto), so the same code runs in Node (dev,
 * status, bench) and inside workerd (handler tests).
 */
export interface SigningKeys {
  jwtSecret: string;
  signingKey: JWK & { kid: string };
  /** The `iss` of user tokens: the project's URL + `/auth/v1`, as Supabase Auth sets it (the Worker checks it). */
  issuer: string;
  /** How long a user token lasts unless asked otherwise: `[auth] jwt_expiry` of supabase/config.toml. */
  jwtExpirySeconds?: number;
}

/**
 * The signing material of a local stack, shaped like a current Supabase project's: user tokens
 * are ES256 (verified through the JWKS), the anon and service-role keys use the legacy HS256 secret.
 */
export interface StackKeys extends SigningKeys {
  publicKey: JWK & { kid: string };
}

export async function signToken(
  keys: Pick<SigningKeys, "jwtSecret" | "signingKey">,
  claims: Record<string, unknown>,
  { alg = "ES256", expiresIn = "1h" }: { alg?: "ES256" | "HS256"; expiresIn?: string | number } = {},
): Promise<string> {
  const jwt = new SignJWT(claims).setIssuedAt().setExpirationTime(expiresIn);
  if (alg === "HS256") {
    return jwt.setProtectedHeader({ alg, typ: "JWT" }).sign(new TextEncoder().encode(keys.jwtSecret));
  }
  const key = await importJWK(keys.signingKey, "ES256");
  return jwt.setProtectedHeader({ alg, typ: "JWT", kid: keys.signingKey.kid }).sign(key);
}

/** A signed-in user's access token, shaped as Supabase Auth issues it. */
export async function userToken(
  keys: SigningKeys,
  userId: string,
  { email, expiresIn, alg = "ES256" }: { email?: string; expiresIn?: string | number; alg?: "ES256" | "HS256" } = {},
): Promise<string> {
  return signToken(
    keys,
    {
      sub: userId,
      role: "authenticated",
      aud: "authenticated",
      iss: keys.issuer,
      ...(email ? { email } : {}),
      session_id: crypto.randomUUID(),
    },
    { alg, expiresIn: expiresIn ?? `${keys.jwtExpirySeconds ?? 3600}s` },
  );
}
