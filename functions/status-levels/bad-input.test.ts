import { beforeAll, describe, expect, it } from "vitest";
import type { OrgWithPeople } from "../../scripts/test/fixtures.ts";
import { call, exec, expectProblem, fixtures } from "../_test/harness.ts";

/**
 * Bad input for every endpoint: each case must be a 4xx problem document, and nothing in the
 * database may change. The requests come from the people allowed to call the endpoint, so a
 * 4xx here is about the input, not about permissions.
 */
let p: OrgWithPeople;
let requestId: string;

type Case = { name: string; path: () => string; method?: "GET" | "POST"; who?: "owner" | "platformAdmin" | "member" | null; body?: string; json?: unknown; headers?: Record<string, string>; status: number; code: string };

const huge = "x".repeat(2001);
const uuid = () => crypto.randomUUID();

const cases: Case[] = [
  // organization status / eligibility / history / requests list
  { name: "status: non-UUID id", path: () => "/status-levels/organizations/not-a-uuid", status: 400, code: "invalid_request" },
  { name: "status: SQL in the id", path: () => "/status-levels/organizations/1';drop%20table%20reviews;--", status: 400, code: "invalid_request" },
  { name: "status: unknown query parameter", path: () => `/status-levels/organizations/${p.orgId}?debug=1`, status: 400, code: "invalid_request" },
  { name: "eligibility: non-UUID id", path: () => "/status-levels/organizations/123/eligibility", who: "member", status: 400, code: "invalid_request" },
  { name: "history: negative limit", path: () => `/status-levels/organizations/${p.orgId}/history?limit=-1`, who: "member", status: 400, code: "invalid_request" },
  { name: "history: huge limit", path: () => `/status-levels/organizations/${p.orgId}/history?limit=100000`, who: "member", status: 400, code: "invalid_request" },
  { name: "history: limit not a number", path: () => `/status-levels/organizations/${p.orgId}/history?limit=ten`, who: "member", status: 400, code: "invalid_request" },
  { name: "history: fractional offset", path: () => `/status-levels/organizations/${p.orgId}/history?offset=1.5`, who: "member", status: 400, code: "invalid_request" },
  { name: "history: offset past the bound", path: () => `/status-levels/organizations/${p.orgId}/history?offset=99999999`, who: "member", status: 400, code: "invalid_request" },
  { name: "requests list: unknown status", path: () => `/status-levels/organizations/${p.orgId}/upgrade-requests?status=maybe`, who: "member", status: 400, code: "invalid_request" },
  { name: "queue: limit 0", path: () => "/status-levels/admin/upgrade-requests?limit=0", who: "platformAdmin", status: 400, code: "invalid_request" },
  // grant
  { name: "grant: malformed JSON", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", body: "{level: B", headers: { "content-type": "application/json" }, status: 400, code: "malformed_json" },
  { name: "grant: empty body", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", status: 400, code: "invalid_request" },
  { name: "grant: JSON array", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: ["B"], status: 400, code: "invalid_request" },
  { name: "grant: unknown level", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "D" }, status: 400, code: "invalid_request" },
  { name: "grant: level of the wrong type", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: 2 }, status: 400, code: "invalid_request" },
  { name: "grant: unknown field", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "B", is_active: false }, status: 400, code: "invalid_request" },
  { name: "grant: valid_until not a date", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "B", valid_until: "next year" }, status: 400, code: "invalid_request" },
  { name: "grant: valid_until without a zone", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "B", valid_until: "2030-01-01T00:00:00" }, status: 400, code: "invalid_request" },
  { name: "grant: notes too long", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "B", notes: huge }, status: 400, code: "invalid_request" },
  { name: "grant: subscription_id not a UUID", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "A", subscription_id: "sub_1" }, status: 400, code: "invalid_request" },
  { name: "grant: form-encoded body", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", body: "level=B", headers: { "content-type": "application/x-www-form-urlencoded" }, status: 415, code: "unsupported_media_type" },
  { name: "grant: body over 64 KiB", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", json: { level: "B", notes: "x".repeat(70_000) }, status: 413, code: "payload_too_large" },
  { name: "grant: bad token", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, headers: { authorization: "Bearer abc.def.ghi" }, json: { level: "B" }, status: 401, code: "unauthorized" },
  // revoke / renew / validity
  { name: "revoke: no reason", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/revoke`, who: "platformAdmin", json: { level: "B" }, status: 400, code: "invalid_request" },
  { name: "revoke: reason too long", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/revoke`, who: "platformAdmin", json: { level: "B", reason: huge }, status: 400, code: "invalid_request" },
  { name: "revoke: lowercase level", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/revoke`, who: "platformAdmin", json: { level: "b", reason: "x" }, status: 400, code: "invalid_request" },
  { name: "renew: unknown field", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/renew`, who: "platformAdmin", json: { months: 36 }, status: 400, code: "invalid_request" },
  { name: "validity: level C", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/validity`, who: "platformAdmin", json: { level: "C", valid_until: "2030-01-01T00:00:00Z" }, status: 400, code: "invalid_request" },
  { name: "validity: in the past", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/validity`, who: "platformAdmin", json: { level: "B", valid_until: "2001-01-01T00:00:00Z" }, status: 422, code: "valid_until_in_past" },
  // upgrade requests
  { name: "request: organization_id not a UUID", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "x", requested_level: "B" }, status: 400, code: "invalid_request" },
  { name: "request: level A", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "A" }, status: 400, code: "invalid_request" },
  { name: "request: message too long", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "B", message: huge }, status: 400, code: "invalid_request" },
  { name: "request: 11 evidence links", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "B", evidence_urls: Array.from({ length: 11 }, (_, i) => `https://example.org/${i}`) }, status: 400, code: "invalid_request" },
  { name: "request: http evidence link", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "B", evidence_urls: ["http://example.org/a"] }, status: 400, code: "invalid_request" },
  { name: "request: javascript: link", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "B", evidence_urls: ["javascript:alert(1)"] }, status: 400, code: "invalid_request" },
  { name: "request: evidence not an array", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "B", evidence_urls: "https://example.org" }, status: 400, code: "invalid_request" },
  { name: "request: unknown organization", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: uuid(), requested_level: "B" }, status: 404, code: "organization_not_found" },
  { name: "request: status field smuggled in", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", requested_level: "B", status: "approved" }, status: 400, code: "invalid_request" },
  { name: "cancel: non-UUID id", method: "POST", path: () => "/status-levels/upgrade-requests/42/cancel", who: "owner", status: 400, code: "invalid_request" },
  { name: "cancel: unknown request", method: "POST", path: () => `/status-levels/upgrade-requests/${uuid()}/cancel`, who: "owner", status: 404, code: "request_not_found" },
  { name: "approve: notes of the wrong type", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/approve`, who: "platformAdmin", json: { notes: { text: "ok" } }, status: 400, code: "invalid_request" },
  { name: "approve: malformed JSON", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/approve`, who: "platformAdmin", body: '{"notes":', headers: { "content-type": "application/json" }, status: 400, code: "malformed_json" },
  { name: "reject: empty note", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/reject`, who: "platformAdmin", json: { note: "" }, status: 400, code: "invalid_request" },
  { name: "reject: note too long", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/reject`, who: "platformAdmin", json: { note: huge }, status: 400, code: "invalid_request" },
  // badge, catalog, unknown routes and methods
  { name: "badge: not a UUID", path: () => "/status-levels/badge/nope.svg", status: 400, code: "invalid_request" },
  { name: "badge: other extension", path: () => `/status-levels/badge/${p.orgId}.png`, status: 404, code: "route_not_found" },
  { name: "badge: unknown organization as JSON", path: () => `/status-levels/badge/${uuid()}.json`, status: 404, code: "organization_not_found" },
  { name: "unknown route", path: () => "/status-levels/organisations", status: 404, code: "route_not_found" },
  { name: "wrong method", method: "POST", path: () => `/status-levels/organizations/${p.orgId}`, who: "platformAdmin", json: {}, status: 404, code: "route_not_found" },
];

async function snapshot(orgId: string): Promise<Record<string, unknown>> {
  const [row] = await exec(
    `select
       (select count(*)::int from public.organization_status_levels where organization_id = $1) as levels,
       (select count(*)::int from public.status_level_history where organization_id = $1) as history,
       (select jsonb_agg(jsonb_build_object('id', id, 'status', status) order by id) from public.upgrade_requests where organization_id = $1) as requests`,
    [orgId],
  );
  return row!;
}

beforeAll(async () => {
  p = await fixtures.orgWithPeople();
  const res = await call("/status-levels/upgrade-requests", { method: "POST", token: p.owner.token, json: { organization_id: p.orgId, requested_level: "B" } });
  const created = (await res.json()) as { id: string };
  if (res.status !== 201) throw new Error(`could not create the request the cases need: ${JSON.stringify(created)}`);
  requestId = created.id;
});

describe("bad input on every endpoint", () => {
  it.each(cases)("$name -> $status $code, database unchanged", async (c) => {
    const before = await snapshot(p.orgId);
    const token = c.who === undefined || c.who === null ? null : p[c.who].token;
    const res = await call(c.path(), {
      method: c.method ?? "GET",
      token,
      ...(c.headers ? { headers: c.headers } : {}),
      ...(c.json !== undefined ? { json: JSON.parse(JSON.stringify(c.json).replaceAll("__ORG__", p.orgId)) } : {}),
      ...(c.body !== undefined ? { body: c.body } : {}),
    });
    const problem = await expectProblem(res, c.status, c.code);
    expect(problem.detail.length).toBeGreaterThan(0);
    expect(JSON.stringify(problem)).not.toMatch(/\bat .+\.ts:\d+|select |insert into|PL\/pgSQL/i);
    expect(await snapshot(p.orgId)).toEqual(before);
  });

  it("lists every invalid field with where it was", async () => {
    const res = await call(`/status-levels/organizations/${p.orgId}/grant`, { method: "POST", token: p.platformAdmin.token, json: { level: "Z", notes: 5, extra: true } });
    const problem = await expectProblem(res, 400, "invalid_request");
    const paths = (problem.errors as Array<{ in: string; path: string }>).map((e) => `${e.in}:${e.path}`).sort();
    expect(paths).toEqual(["body:(root)", "body:level", "body:notes"]);
  });
});
