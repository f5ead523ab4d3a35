import type { TestProject } from "vitest/node";
import { startEmailServer } from "./email-server.ts";
import { runOnce } from "./run-once.ts";
import "./provided-email.ts";

/**
 * Starts the recording e-mail API once for the run and hands its URLs to both test projects
 * (handler tests in workerd reach it over HTTP). Tests filter what it recorded by their own
 * recipients, so they run in parallel.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { value: server, release } = await runOnce("email-server", startEmailServer, (s) => s.stop());
  project.provide("emailServer", { url: server.url, batchUrl: server.batchUrl, controlUrl: server.controlUrl });
  return release;
}
