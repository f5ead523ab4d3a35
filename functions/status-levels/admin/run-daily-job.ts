import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createApi, json, jsonBody, noQueryParameters, problems } from "../../_shared/api.ts";
import { signedInOrService } from "../../_shared/auth.ts";
import { badRequest, unavailable } from "../../_shared/errors.ts";
import { callRpc } from "../../_shared/rpc.ts";
import { Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseForRequest } from "../../_shared/supabase.ts";
import { runDailyJob } from "../../scheduled/daily-job.ts";

const RunJobBody = z.strictObject({
  as_of: Timestamp.optional().describe("act as of this time (service-role key only)"),
  organization_ids: z.array(Uuid).min(1).max(1000).optional().describe("limit the run to these organizations"),
});

const Step = z.looseObject({ ok: z.boolean(), duration_ms: z.number(), batches: z.number(), incomplete: z.boolean().optional(), error: z.string().optional() });
const Summary = z.object({ ok: z.boolean(), as_of: Timestamp, duration_ms: z.number(), steps: z.record(z.string(), Step) });

const route = createRoute({
  method: "post",
  path: "/admin/jobs/daily",
  operationId: "runDailyJob",
  summary: "Run the daily job now (platform admins, or the service-role key)",
  description:
    "The same job as the 02:00 UTC cron: expire, end grace periods, expiry notices, deliver notifications. " +
    "`as_of` (backfills, tests) is accepted with the service-role key only. Answers with the run's summary; a 503 " +
    "problem (with the summary) when a step failed - the next run delivers what is owed.",
  tags: ["admin"],
  security: bearerAuth,
  middleware: [signedInOrService, noQueryParameters] as const,
  request: { body: jsonBody(RunJobBody) },
  responses: { 200: json(Summary, "The run's summary"), ...problems(400, 401, 403, 413, 415, 503) },
});

export const runDailyJobNow = createApi().openapi(route, async (c) => {
  const body = c.req.valid("json");
  const caller = c.get("caller");
  if (!c.get("service")) {
    // The rights are the database's to decide; the job itself then runs as the service role.
    await callRpc(supabaseForRequest(c), "authorize_daily_job_run", {});
    if (body.as_of) throw badRequest("as_of_not_allowed", "as_of is for the service role (backfills); platform admins run the job as of now");
  }
  const runId = crypto.randomUUID();
  const log = c.get("log");
  const summary = await runDailyJob(c.env, {
    ...(body.as_of ? { asOf: body.as_of } : {}),
    ...(body.organization_ids ? { organizationIds: body.organization_ids } : {}),
    // A caller waits for the answer: new batches for 25 s, everything recorded within 45 s.
    trigger: c.get("service") ? "service" : "admin",
    deadlineMs: 25_000,
    hardDeadlineMs: 45_000,
    log: (level, msg, fields) => log(level, msg, { job: "daily", run_id: runId, triggered_by: caller?.userId ?? "service_role", ...fields }),
  });
  if (!summary.ok) {
    throw unavailable("daily_job_failed", "a step of the daily job failed; the next run retries what is owed", { summary }, 60);
  }
  return c.json(summary, 200);
});
