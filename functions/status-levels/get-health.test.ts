import { describe, expect, it } from "vitest";
import { body, call, deadUrl, exec, expectProblem, fixtures, stack } from "../_test/harness.ts";
import { operationalProblems } from "./get-health.ts";

describe("GET /status-levels/health", () => {
  it("reports database and cache up", async () => {
    const res = await call("/status-levels/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string; latency_ms: number }> };
    expect(body.status).toBe("ok");
    expect(body.checks.database!.status).toBe("up");
    expect(body.checks.cache!.status).toBe("up");
  });

  it("is 503 with a problem JSON body when Redis is unreachable", async () => {
    const res = await call("/status-levels/health", {}, { UPSTASH_REDIS_REST_URL: deadUrl });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.headers.get("retry-after")).toBe("5");
    const body = (await res.json()) as Record<string, any>;
    expect(body).toMatchObject({ status: 503, code: "dependency_unavailable", title: "Service unavailable" });
    expect(body.checks.cache.status).toBe("down");
    expect(body.checks.database.status).toBe("up");
    expect(JSON.stringify(body)).not.toContain("127.0.0.1");
  });

  it("is 503 when the database (PostgREST) is unreachable", async () => {
    const res = await call("/status-levels/health", {}, { SUPABASE_URL: deadUrl });
    expect(res.status).toBe(503);
    const body = (await res.json()) as Record<string, any>;
    expect(body.checks.database.status).toBe("down");
    expect(body.checks.cache.status).toBe("up");
  });

  it("answers 503 'misconfigured' rather than crashing when a binding is missing", async () => {
    const res = await call("/status-levels/health", {}, { SUPABASE_URL: "" });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string }).code).toBe("misconfigured");
  });
});

describe("GET /status-levels/health: is the service working", () => {
  it("reports when the daily job last finished and succeeded and the e-mail outbox's counts; the last run's summary only to platform admins", async () => {
    const admin = await fixtures.platformAdmin();
    const before = Date.now();
    const run = await call("/status-levels/admin/jobs/daily", { method: "POST", token: stack.serviceRoleKey, json: { organization_ids: [await fixtures.organization()] } });
    expect(run.status).toBe(200);
    const anyone = await body(await call("/status-levels/health"));
    expect(Date.parse(anyone.daily_job.last_success_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(anyone.daily_job.last_summary).toBeNull();
    expect(anyone.email_outbox).toEqual({ pending: expect.any(Number), failed: expect.any(Number), dead: expect.any(Number) });
    const forAdmin = await body(await call("/status-levels/health", { token: admin.token }));
    expect(forAdmin.daily_job.last_summary).toMatchObject({ steps: expect.any(Object) });
  });

  it("with strict=1 answers 503 while dead letters wait, naming them", async () => {
    const orgId = await fixtures.organization();
    await exec(
      `insert into public.email_outbox (organization_id, recipient, kind, subject, body_text, dedupe_key, state, attempts)
       values ($1, 'dead@example.test', 'expiry_notice', 's', 'b', 'health:' || gen_random_uuid(), 'dead', 5)`,
      [orgId],
    );
    const lenient = await call("/status-levels/health");
    expect(lenient.status).toBe(200);
    const strict = await expectProblem(await call("/status-levels/health?strict=1"), 503, "not_operational");
    expect(strict.detail).toMatch(/dead letters/);
    expect(strict.email_outbox.dead).toBeGreaterThanOrEqual(1);
    await expectProblem(await call("/status-levels/health?strict=yes"), 400, "invalid_request");
  });

  it("strict: fails when the daily job never succeeded or last succeeded over 26 hours ago, or dead letters wait (the rule itself)", () => {
    const now = Date.parse("2027-03-02T12:00:00Z");
    const ops = (lastSuccess: string | null, dead = 0) => ({
      daily_job: { last_finished_at: lastSuccess, last_ok: lastSuccess ? true : null, last_success_at: lastSuccess, last_summary: null },
      email_outbox: { pending: 3, failed: 1, dead },
      checked_at: new Date(now).toISOString(),
    });
    expect(operationalProblems(ops("2027-03-01T10:00:01Z"), now)).toEqual([]);
    expect(operationalProblems(ops("2027-03-01T09:59:00Z"), now)).toEqual(["the daily job last succeeded 26 h ago (more than 26 h)"]);
    expect(operationalProblems(ops(null), now)).toEqual(["the daily job has never finished successfully"]);
    expect(operationalProblems(ops("2027-03-02T02:00:00Z", 2), now)).toEqual(["2 e-mail(s) are dead letters (GET /status-levels/admin/email-outbox)"]);
  });
});

describe("unknown routes", () => {
  it("are 404 problem JSON", async () => {
    const res = await call("/status-levels/nope");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe("route_not_found");
  });
});
