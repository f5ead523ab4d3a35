import { createApp } from "./app.ts";
import type { Env } from "./_shared/env.ts";
import { runScheduled } from "./scheduled/run-scheduled.ts";

const app = createApp();

export type { App } from "./app.ts";

export default {
  fetch: app.fetch,
  // Awaited, not waitUntil: a failed run must fail the invocation so the platform shows it.
  scheduled: (controller: ScheduledController, env: Env) => runScheduled(controller, env),
} satisfies ExportedHandler<Env>;
