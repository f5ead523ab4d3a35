import type { Env } from "../_shared/env.ts";
import { log } from "../_shared/log.ts";

/** Entry point of the Worker's cron trigger (`0 2 * * *`). */
export async function runScheduled(controller: ScheduledController, _env: Env): Promise<void> {
  log("info", "scheduled trigger", { cron: controller.cron, scheduled_time: new Date(controller.scheduledTime).toISOString() });
}
