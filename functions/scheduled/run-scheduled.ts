import type { Env } from "../_shared/env.ts";
import { config } from "../_shared/env.ts";
import { createLogger } from "../_shared/log.ts";
import { DailyJobFailed, runDailyJob } from "./daily-job.ts";

/** Entry point of the Worker's cron trigger (`0 2 * * *` UTC): the daily job. */
export async function runScheduled(controller: ScheduledController, env: Env): Promise<void> {
  // The same line shape as a request's log, with the run's id where a request has its own.
  const jobLog = createLogger({ job: "daily", run_id: crypto.randomUUID(), cron: controller.cron }, config(env).LOG_LEVEL);
  jobLog("info", "daily job started", { scheduled_time: new Date(controller.scheduledTime).toISOString() });
  // The run acts as of the time it was scheduled for (02:00 UTC), not whenever the platform got
  // round to starting it, so what is due does not depend on a late start and a run can be
  // replayed. A cron invocation may run for up to 15 minutes: no new batch after 12, and every
  // e-mail batch is bounded so that all the run sent is recorded by 14 (a minute of margin).
  const summary = await runDailyJob(env, {
    log: jobLog,
    trigger: "cron",
    asOf: new Date(controller.scheduledTime).toISOString(),
    deadlineMs: 12 * 60_000,
    hardDeadlineMs: 14 * 60_000,
  });
  // Thrown after every step ran, so the platform marks this invocation as failed.
  if (!summary.ok) throw new DailyJobFailed(summary);
}
