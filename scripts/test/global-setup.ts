import type { TestProject } from "vitest/node";
import { buildAssets } from "../assets/build.ts";
import { startStack } from "../stack/stack.ts";
import "./provided-context.ts";
import { runOnce } from "./run-once.ts";
import { startSqlServer } from "./sql-server.ts";

/**
 * Starts the whole local stack once for the run (a fresh database with every migration) and hands
 * its URLs and keys to both test projects (one stack, however many projects run this setup). Tests isolate themselves by data - their own users and
 * organizations - so they run in parallel and nothing is truncated.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { value, release } = await runOnce(
    "stack",
    async () => {
      // The Worker's static assets (wrangler.toml [assets]): the workers pool and wrangler dev need them.
      await buildAssets();
      const stack = await startStack({ mode: "test" });
      const sqlServer = await startSqlServer(stack.info.databaseUrl);
      return { stack, sqlServer };
    },
    async ({ stack, sqlServer }) => {
      await sqlServer.stop();
      await stack.stop();
    },
  );
  project.provide("stack", value.stack.info);
  project.provide("sqlServer", { url: value.sqlServer.url, token: value.sqlServer.token });
  return release;
}
