import { SignJWT, exportJWK, generateKeyPair, importJWK } from "jose";
import { describe, expect, it } from "vitest";
import { signToken, userToken } from "../../scripts/stack/tokens.ts";
import { call, deadUrl, expectProblem, fixtures, jwksFetches, stack } from "../_test/harness.ts";

async function orgAndMember() {
  const orgId = await fixtures.organization();
  const member = await fixtures.member(orgId, "member");
  return { orgId, member, path: `/status-levels/organizations/${orgId}/history` };
}

const unauthorized = async (res: Response, detail: RegExp) => {
  const problem = await expectProblem(res, 401, "unauthorized");
  expect(problem.detail).toMatch(detail);
  expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
};

describe("authentication", () => {
  it("accepts an ES256 token verified through the JWKS, and fetches the JWKS once, not per request", async () => {
    const { path, member } = await orgAndMember();
    expect((await call(path, { token: member.token })).status).toBe(200);
    const before = await jwksFetches();
    for (let i = 0; i < 5; i++) expect((await call(path, { token: member.token })).status).toBe(200);
    // The gateway counts the whole run's fetches: another test file's first ES256 call (its own
    // isolate, its own key set) may land in this window once. Per request would be 5.
    expect((await jwksFetches()) - before).toBeLessThanOrEqual(1);
  });

  it("accepts an HS256 token signed with the legacy secret, and refuses it when no secret is configured", async () => {
    const { path, member } = await orgAndMember();
    const hs256 = await userToken(stack.keys, member.id, { alg: "HS256" });
    expect((await call(path, { token: hs256 })).status).toBe(200);
    await unauthorized(await call(path, { token: hs256 }, { SUPABASE_JWT_SECRET: "" }), /HS256 are not accepted/);
  });

  it("refuses a missing token, a malformed header and a non-JWT", async () => {
    const { path } = await orgAndMember();
    await unauthorized(await call(path), /needs a bearer access token/);
    await unauthorized(await call(path, { headers: { authorization: "Basic dXNlcjpwYXNz" } }), /Bearer <access token>/);
    await unauthorized(await call(path, { token: "not-a-jwt" }), /not a JWT/);
  });

  it("refuses an expired token", async () => {
    const { path, member } = await orgAndMember();
    const expired = await signToken(stack.keys, { sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer }, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    await unauthorized(await call(path, { token: expired }), /expired/);
  });

  it("refuses forged tokens: another key (same kid), another project's key, a wrong secret", async () => {
    const { path, member } = await orgAndMember();
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const sameKid = await new SignJWT({ sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer })
      .setProtectedHeader({ alg: "ES256", kid: stack.keys.signingKey.kid })
      .setExpirationTime("1h")
      .sign(privateKey);
    await unauthorized(await call(path, { token: sameKid }), /signature/);
    const otherKid = await new SignJWT({ sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer })
      .setProtectedHeader({ alg: "ES256", kid: "some-other-kid" })
      .setExpirationTime("1h")
      .sign(privateKey);
    await unauthorized(await call(path, { token: otherKid }), /not signed by this project's keys|signature/);
    const wrongSecret = await signToken({ ...stack.keys, jwtSecret: "not-the-secret-at-all-0123456789" }, { sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer }, { alg: "HS256" });
    await unauthorized(await call(path, { token: wrongSecret }), /signature/);
  });

  it("refuses algorithm tricks: alg none, and HS256 keyed with the public key", async () => {
    const { path, member } = await orgAndMember();
    const header = btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "");
    const payload = btoa(JSON.stringify({ sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer, exp: Math.floor(Date.now() / 1000) + 3600 })).replace(/=+$/, "");
    await unauthorized(await call(path, { token: `${header}.${payload}.` }), /none are not accepted|no algorithm/);
    const publicKeyAsSecret = new TextEncoder().encode(JSON.stringify(stack.keys.publicKey));
    const confused = await new SignJWT({ sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("1h")
      .sign(publicKeyAsSecret);
    await unauthorized(await call(path, { token: confused }), /signature/);
  });

  it("refuses tokens that are not a signed-in user's: wrong audience, the anon key, the service-role key", async () => {
    const { path, member } = await orgAndMember();
    const wrongAudience = await signToken(stack.keys, { sub: member.id, role: "authenticated", aud: "someone-else", iss: stack.keys.issuer });
    await unauthorized(await call(path, { token: wrongAudience }), /aud/);
    await unauthorized(await call(path, { token: stack.anonKey }), /aud|signed-in/);
    await unauthorized(await call(path, { token: stack.serviceRoleKey }), /aud|signed-in/);
  });

  it("accepts tokens of this project's issuer only: another issuer or none is a 401 that names the issuer", async () => {
    const { path, member } = await orgAndMember();
    expect(stack.keys.issuer).toBe(`${stack.supabaseUrl}/auth/v1`);
    expect((await call(path, { token: member.token })).status).toBe(200);
    const claims = { sub: member.id, role: "authenticated", aud: "authenticated" };
    const otherProject = await signToken(stack.keys, { ...claims, iss: "https://another-project.supabase.co/auth/v1" });
    await unauthorized(await call(path, { token: otherProject }), /not issued by this project's Supabase Auth: its iss claim must be http:\/\/127\.0\.0\.1:\d+\/auth\/v1/);
    await unauthorized(await call(path, { token: await signToken(stack.keys, { ...claims, iss: "supabase" }) }), /not issued by this project/);
    await unauthorized(await call(path, { token: await signToken(stack.keys, claims) }), /not issued by this project/);
    await unauthorized(await call(path, { token: await signToken(stack.keys, claims, { alg: "HS256" }) }), /not issued by this project/);

    const configured = { SUPABASE_JWT_ISSUER: "https://another-project.supabase.co/auth/v1" };
    expect((await call(path, { token: otherProject }, configured)).status).toBe(200);
    await unauthorized(await call(path, { token: member.token }, configured), /iss claim must be https:\/\/another-project\.supabase\.co\/auth\/v1/);
  });

  it("does not fall back to anonymous on an endpoint where signing in is optional", async () => {
    const { orgId } = await orgAndMember();
    await unauthorized(await call(`/status-levels/organizations/${orgId}`, { token: "garbage" }), /not a JWT/);
  });

  it("is a 503, not a 401, when the signing keys cannot be fetched", async () => {
    const { path, member } = await orgAndMember();
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    const kid = crypto.randomUUID();
    void (await exportJWK(publicKey));
    const unknownKid = await new SignJWT({ sub: member.id, role: "authenticated", aud: "authenticated", iss: stack.keys.issuer })
      .setProtectedHeader({ alg: "ES256", kid })
      .setExpirationTime("1h")
      .sign(await importJWK(await exportJWK(privateKey), "ES256"));
    await expectProblem(await call(path, { token: unknownKid }, { SUPABASE_URL: deadUrl }), 503, "dependency_unavailable");
  });
});
