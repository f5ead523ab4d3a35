import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { OrgWithPeople } from "../../scripts/test/fixtures.ts";
import { body, call, exec, expectProblem, fixtures, postSignedEvent, stack } from "../_test/harness.ts";

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
  { name: "request: organization_id not a UUID", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "x", target_level: "B" }, status: 400, code: "invalid_request" },
  { name: "request: level A", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "A" }, status: 400, code: "invalid_request" },
  { name: "request: message too long", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "B", message: huge }, status: 400, code: "invalid_request" },
  { name: "request: 11 evidence links", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "B", evidence_urls: Array.from({ length: 11 }, (_, i) => `https://example.org/${i}`) }, status: 400, code: "invalid_request" },
  { name: "request: http evidence link", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "B", evidence_urls: ["http://example.org/a"] }, status: 400, code: "invalid_request" },
  { name: "request: javascript: link", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "B", evidence_urls: ["javascript:alert(1)"] }, status: 400, code: "invalid_request" },
  { name: "request: evidence not an array", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "B", evidence_urls: "https://example.org" }, status: 400, code: "invalid_request" },
  { name: "request: unknown organization", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: uuid(), target_level: "B" }, status: 404, code: "organization_not_found" },
  { name: "request: status field smuggled in", method: "POST", path: () => "/status-levels/upgrade-requests", who: "owner", json: { organization_id: "__ORG__", target_level: "B", status: "approved" }, status: 400, code: "invalid_request" },
  { name: "cancel: non-UUID id", method: "POST", path: () => "/status-levels/upgrade-requests/42/cancel", who: "owner", status: 400, code: "invalid_request" },
  { name: "cancel: unknown request", method: "POST", path: () => `/status-levels/upgrade-requests/${uuid()}/cancel`, who: "owner", status: 404, code: "request_not_found" },
  { name: "approve: notes of the wrong type", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/approve`, who: "platformAdmin", json: { notes: { text: "ok" } }, status: 400, code: "invalid_request" },
  { name: "approve: malformed JSON", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/approve`, who: "platformAdmin", body: '{"notes":', headers: { "content-type": "application/json" }, status: 400, code: "malformed_json" },
  { name: "reject: empty note", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/reject`, who: "platformAdmin", json: { note: "" }, status: 400, code: "invalid_request" },
  { name: "reject: note too long", method: "POST", path: () => `/status-levels/upgrade-requests/${requestId}/reject`, who: "platformAdmin", json: { note: huge }, status: 400, code: "invalid_request" },
  // badge, catalog, unknown routes and methods
  { name: "badge: not a UUID", path: () => "/status-levels/badge/nope.svg", status: 400, code: "invalid_request" },
  { name: "badge: other extension", path: () => `/status-levels/badge/${p.orgId}.png`, status: 400, code: "invalid_request" },
  { name: "badge: unknown organization as JSON", path: () => `/status-levels/badge/${uuid()}.json`, status: 404, code: "organization_not_found" },
  { name: "catalog: unknown query parameter", path: () => "/status-levels/levels?x=1", status: 400, code: "invalid_request" },
  { name: "health: unknown query parameter", path: () => "/status-levels/health?x=1", status: 400, code: "invalid_request" },
  { name: "grant: a JSON media type the route does not take", method: "POST", path: () => `/status-levels/organizations/${p.orgId}/grant`, who: "platformAdmin", body: "{\"level\":\"B\"}", headers: { "content-type": "application/vnd_x+json" }, status: 415, code: "unsupported_media_type" },
  { name: "unknown route", path: () => "/status-levels/organisations", status: 404, code: "route_not_found" },
  { name: "wrong method", method: "POST", path: () => `/status-levels/organizations/${p.orgId}`, who: "platformAdmin", json: {}, status: 404, code: "route_not_found" },
];

async function snapshot(orgId: string): Promise<Record<string, unknown>> {
  const [row] = await exec(
    `select
       (select count(*)::int from public.organization_status_levels where organization_id = $1) as levels,
       (select count(*)::int from public.status_level_history where organization_id = $1) as history,
       (select jsonb_agg(jsonb_build_object('id', id, 'status', status) order by id) from public.upgrade_requests where organization_id = $1) as requests,
       (select count(*)::int from public.subscriptions where organization_id = $1) as subscriptions,
       (select count(*)::int from public.subscription_events where organization_id = $1) as subscription_events,
       (select count(*)::int from public.expiry_notices n join public.organization_status_levels l on l.id = n.status_level_id where l.organization_id = $1) as notices`,
    [orgId],
  );
  return row!;
}

beforeAll(async () => {
  p = await fixtures.orgWithPeople();
  const res = await call("/status-levels/upgrade-requests", { method: "POST", token: p.owner.token, json: { organization_id: p.orgId, target_level: "B" } });
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

/**
 * Every string field of every write endpoint, fuzzed: text with C0 control characters (NUL among
 * them) or unpaired surrogates, dates outside the years the product means (2000-2199) or with
 * offsets past ±14:00. Each must be a 400 naming the field, never a 500, and change nothing.
 */
type Writer = "platformAdmin" | "owner" | "service" | "payments";
interface WriteField {
  endpoint: string;
  path: () => string;
  who: Writer;
  base: () => Record<string, unknown>;
  field: string;
  kind: "text" | "date" | "id";
}

const future = () => new Date(Date.now() + 90 * 86_400_000).toISOString();
const fields = (endpoint: string, path: () => string, who: Writer, base: () => Record<string, unknown>, kinds: Record<string, WriteField["kind"]>): WriteField[] =>
  Object.entries(kinds).map(([field, kind]) => ({ endpoint, path, who, base, field, kind }));

const writeFields: WriteField[] = [
  ...fields("grant", () => `/status-levels/organizations/${p.orgId}/grant`, "platformAdmin", () => ({ level: "B" }), { level: "id", notes: "text", valid_until: "date", subscription_id: "id" }),
  ...fields("revoke", () => `/status-levels/organizations/${p.orgId}/revoke`, "platformAdmin", () => ({ level: "B", reason: "audit" }), { level: "id", reason: "text" }),
  ...fields("renew", () => `/status-levels/organizations/${p.orgId}/renew`, "platformAdmin", () => ({}), { notes: "text" }),
  ...fields("validity", () => `/status-levels/organizations/${p.orgId}/validity`, "platformAdmin", () => ({ level: "B", valid_until: future() }), { level: "id", valid_until: "date", reason: "text" }),
  ...fields("request", () => "/status-levels/upgrade-requests", "owner", () => ({ organization_id: p.orgId, target_level: "C" }), {
    organization_id: "id",
    target_level: "id",
    message: "text",
    "evidence_urls.0": "text",
  }),
  ...fields("approve", () => `/status-levels/upgrade-requests/${requestId}/approve`, "platformAdmin", () => ({}), { notes: "text" }),
  ...fields("reject", () => `/status-levels/upgrade-requests/${requestId}/reject`, "platformAdmin", () => ({ note: "missing audit" }), { note: "text" }),
  ...fields("notifications read", () => "/status-levels/notifications/read", "owner", () => ({}), { "ids.0": "id" }),
  ...fields("daily job", () => "/status-levels/admin/jobs/daily", "service", () => ({ organization_ids: [p.orgId] }), { as_of: "date", "organization_ids.0": "id" }),
  ...fields("subscription event", () => "/status-levels/subscriptions/events", "payments", () => ({
    id: `evt_${crypto.randomUUID()}`,
    subscription_id: `sub_${crypto.randomUUID()}`,
    organization_id: p.orgId,
    status: "active",
    occurred_at: new Date().toISOString(),
    current_period_end: future(),
  }), { id: "text", subscription_id: "text", organization_id: "id", status: "id", occurred_at: "date", current_period_end: "date" }),
];

const controlCharacters = [
  ...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).filter((ch) => !"\t\n\r".includes(ch)),
  "\uD800", // a high surrogate without its pair
  "\uDFFF", // a low surrogate alone
];
// Anywhere in the text, at either end too (where trimming could hide it).
const textWithControl = fc
  .tuple(fc.string({ maxLength: 20 }), fc.constantFrom(...controlCharacters), fc.string({ maxLength: 20 }), fc.constantFrom("start", "middle", "end"))
  .map(([before, control, after, where]) => (where === "start" ? `${control}${before}${after}` : where === "end" ? `${before}${after}${control}` : `${before}${control}${after}`));
// Years Postgres or the product cannot mean, and offsets no place on Earth has.
const edgeDates = ["0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "+275760-09-13T00:00:00Z", "2030-01-01T00:00:00+23:00", "2030-01-01T00:00:00+14:01", "2030-01-01T00:00:00-14:01"];
const outOfRangeDate = fc.oneof(
  fc.constantFrom(...edgeDates),
  fc
    .integer({ min: -271_820, max: 275_759 })
    .filter((year) => year < 2000 || year > 2199)
    .map((year) => new Date(Date.UTC(year, 0, 1)).toISOString()),
  fc
    .integer({ min: 14 * 60 + 1, max: 23 * 60 + 59 })
    .chain((minutes) => fc.constantFrom("+", "-").map((sign) => `2030-06-01T12:00:00${sign}${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`)),
);

function withField(base: Record<string, unknown>, field: string, value: string): Record<string, unknown> {
  const [name, index] = field.split(".");
  return { ...base, [name!]: index === undefined ? value : [value] };
}

async function send(f: WriteField, json: Record<string, unknown>): Promise<Response> {
  if (f.who === "payments") return postSignedEvent(json);
  const token = f.who === "service" ? stack.serviceRoleKey : p[f.who].token;
  return call(f.path(), { method: "POST", token, json });
}

describe("fuzzed text and dates on every write endpoint", () => {
  it.each(writeFields.map((f) => ({ ...f, name: `${f.endpoint}: ${f.field}` })))(
    "$name refuses control characters and out-of-range dates with a 400 naming the field, and changes nothing",
    async (f) => {
      const before = await snapshot(p.orgId);
      const values = f.kind === "date" ? fc.oneof(outOfRangeDate, textWithControl) : textWithControl;
      await fc.assert(
        fc.asyncProperty(values, async (value) => {
          const res = await send(f, withField(f.base(), f.field, value));
          const problem = await expectProblem(res, 400, "invalid_request");
          expect((problem.errors as Array<{ in: string; path: string }>).map((e) => e.path)).toContain(f.field);
        }),
        { numRuns: f.kind === "date" ? 25 : 15, endOnFailure: true, examples: [["\u0000"], ["\u000Bleading"], ["trailing\u000C"], ["\u001F"], ["\uD800"]] },
      );
      expect(await snapshot(p.orgId)).toEqual(before);
    },
  );

  it("accepts the widest real offsets (+14:00, -14:00) and tab and line breaks in text", async () => {
    const q = await fixtures.orgWithPeople();
    const grant = await call(`/status-levels/organizations/${q.orgId}/grant`, {
      method: "POST",
      token: q.platformAdmin.token,
      json: { level: "B", valid_until: "2030-01-01T00:00:00-14:00", notes: "line one\n\tline two\r\n" },
    });
    expect(grant.status).toBe(201);
    expect(await body(grant)).toMatchObject({ valid_until: "2030-01-01T14:00:00+00:00", notes: "line one\n\tline two\r\n" });
    const validity = await call(`/status-levels/organizations/${q.orgId}/validity`, {
      method: "POST",
      token: q.platformAdmin.token,
      json: { level: "B", valid_until: "2199-12-31T23:59:59+14:00" },
    });
    expect(validity.status).toBe(200);
  });

  it("refuses evidence links that carry a user name or password", async () => {
    const before = await snapshot(p.orgId);
    for (const url of ["https://user:pass@example.org/audit.pdf", "https://user@example.org/", "https://:secret@example.org/", "https://@example.org/"]) {
      const res = await call("/status-levels/upgrade-requests", { method: "POST", token: p.owner.token, json: { organization_id: p.orgId, target_level: "B", evidence_urls: [url] } });
      const problem = await expectProblem(res, 400, "invalid_request");
      expect(problem.errors).toEqual([{ in: "body", path: "evidence_urls.0", message: expect.stringMatching(/user name or password/) }]);
    }
    expect(await snapshot(p.orgId)).toEqual(before);
  });
});
