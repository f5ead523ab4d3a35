/**
 * `npm run gen:worker-types`: writes functions/worker-configuration.d.ts with `wrangler types`, the
 * bindings of every environment in wrangler.toml plus the secrets named in .dev.vars.example (the
 * Worker's `Env` in functions/_shared/env.ts is built on it). `--check` fails (exit 1) when the
 * committed file differs from what wrangler generates now: run it without `--check` and commit.
 *
 * Not `wrangler types --check`: it re-reads the secrets from .dev.vars, never from `--env-file`,
 * so it calls the file stale on any machine without a .dev.vars.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "./stack/migrate.ts";

export const workerTypesFile = "functions/worker-configuration.d.ts";
/**
 * Only the bindings (the runtime's types come from @cloudflare/workers-types), and vars as
 * `string`: their values differ per environment, and env.ts's schema checks them.
 */
const options = ["--env-file", ".dev.vars.example", "--include-runtime=false", "--strict-vars=false"];

/** What `wrangler types` writes for `target` (a path relative to the project). */
async function wranglerTypes(target: string): Promise<void> {
  const config = await mkdtemp(path.join(os.tmpdir(), "status-levels-types-"));
  try {
    await promisify(execFile)(path.join(projectRoot, "node_modules", ".bin", "wrangler"), ["types", target, ...options], {
      cwd: projectRoot,
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_HIDE_BANNER: "true",
        XDG_CONFIG_HOME: config,
      },
      timeout: 120_000,
    });
  } finally {
    await rm(config, { recursive: true, force: true });
  }
}

/**
 * wrangler's `GlobalProps` (`mainModule: typeof import("./index")`, for typed `ctx.exports`, which
 * the Worker does not use) would pull the Worker's entry point, and the Workers runtime types it
 * needs, into every program that reads `Env`: the Node scripts' too, through the typed client.
 */
const globalProps = /\n\tinterface GlobalProps \{\n\t\tmainModule: typeof import\("[^"]*"\);\n\t\}/;

/**
 * A fresh output, generated beside the committed file (so any relative import in it stays the
 * same) under another name, which its header line then names: put back to the committed name.
 */
export async function generateWorkerTypes(): Promise<string> {
  const scratch = workerTypesFile.replace(/\.d\.ts$/, `.${process.pid}.check.d.ts`);
  try {
    await wranglerTypes(scratch);
    const generated = await readFile(path.join(projectRoot, scratch), "utf8");
    if (!globalProps.test(generated)) throw new Error(`wrangler types wrote no GlobalProps block of the expected shape: update ${path.relative(projectRoot, import.meta.filename)}`);
    const [header, ...rest] = generated.replaceAll(scratch, workerTypesFile).replace(globalProps, "").split("\n");
    return [header, "// Written by `npm run gen:worker-types` (without GlobalProps: see scripts/worker-types.ts). Do not edit.", ...rest].join("\n");
  } finally {
    await rm(path.join(projectRoot, scratch), { force: true });
  }
}

async function main(): Promise<void> {
  const generated = await generateWorkerTypes();
  const file = path.join(projectRoot, workerTypesFile);
  if (!process.argv.includes("--check")) {
    await writeFile(file, generated);
    console.log(`wrote ${workerTypesFile}`);
    return;
  }
  if ((await readFile(file, "utf8").catch(() => "")) !== generated) {
    console.error(
      `${workerTypesFile} is out of date with wrangler.toml and .dev.vars.example: run \`npm run gen:worker-types\` and commit the result.`,
    );
    process.exit(1);
  }
  console.log("Worker binding types are up to date");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
