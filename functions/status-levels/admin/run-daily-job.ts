import { z } from "zod";
import { ApiError, badRequest, forbidden } from "../../_shared/errors.ts";
import { defineRoute } from "../../_shared/route.ts";
import { Timestamp, Uuid } from "../../_shared/schemas.ts";
import { supabaseAsCaller } from "../../_shared/supabase.ts";
import { runDailyJob } from "../../scheduled/daily-job.ts";

const RunJobBody = z.strictObject({
  as_of: Timestamp.optional().describe("act as of this time (service-role key only)"),
  organization_ids: z.array(Uuid).min(1).max(1000).optional().describe("limit the run to these organizations"),
});

const Step = z.object({ ok: z.boolean(), duration_ms: z.number(), batches: z.number(), incomplete: z.boolean().optional(), error: z.string().optional() }).passthrough();

export const runDailyJobNow = defineRoute({
  method: "post",
  path: "/admin/jobs/daily",
  operationId: "runDailyJob",
  summary: "Run the daily job now (platform admins, or the service-role key)",
  description:
    "The same job as the 02:00 UTC cron: expire, end grace periods, expiry notices, deliver notifications. " +
    "`as_of` (backfills, tests) is accepted with the service-role key only. Answers with the run's summary; a 503 " +
    "problem (with the summary) when a step failed - the next run delivers what is owed.",
  tags: ["admin"],
  auth: "user-or-service",
  body: RunJobBody,
  responses: {
    200: {
      description: "The run's summary",
      schema: z.object({ ok: z.boolean(), as_of: Timestamp, duration_ms: z.number(), steps: z.record(z.string(), Step) }),
    },
  },
  errors: [400, 401, 403, 415, 503],
  handler: async (c, { body }) => {
    const caller = c.get("caller");
    if (!c.get("service")) {
      if (!caller) throw forbidden("only platform admins can run the daily job");
      const { data, error } = await supabaseAsCaller(c.env, caller.token)
        .from("platform_admins").select("user_id").eq("user_id", caller.userId).is("revoked_at", null).maybeSingle();
      if (error) throw new ApiError(503, "dependency_unavailable", "could not check your rights; try again shortly", {}, { "retry-after": "5" });
      if (!data) throw forbidden("only platform admins can run the daily job");
      if (body.as_of) throw badRequest("as_of_not_allowed", "as_of is for the service role (backfills); platform admins run the job as of now");
    }
    const runId = crypto.randomUUID();
    const log = c.get("log");
    const summary = await runDailyJob(c.env, {
      ...(body.as_of ? { asOf: body.as_of } : {}),
      ...(body.organization_ids ? { organizationIds: body.organization_ids } : {}),
      // A caller waits for the answer: new batches for 25 s, everything recorded within 45 s.
      deadlineMs: 25_000,
      hardDeadlineMs: 45_000,
      log: (level, msg, fields) => log(level, msg, { job: "daily", run_id: runId, triggered_by: caller?.userId ?? "service_role", ...fields }),
    });
    if (!summary.ok) {
      throw new ApiError(503, "daily_job_failed", "a step of the daily job failed; the next run retries what is owed", { summary }, { "retry-after": "60" });
    }
    return c.json(summary);
  },
});
