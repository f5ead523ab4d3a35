/**
 * `npm run deploy -- --env staging|production [--dry-run]`: the database first, then the Worker.
 *
 * 1. wrangler.toml's environment must be filled in: a `your-...` or `example.com` placeholder left
 *    in its vars or routes stops a deploy (a dry run only warns).
 * 2. The migrations: `supabase db push --db-url "$SUPABASE_DB_URL"` (the environment's database),
 *    or `supabase db push --linked` with `--linked` (after `supabase link --project-ref <ref>`).
 *    A dry run prints what it would push (`db push --dry-run`) and changes nothing.
 * 3. The Worker: `wrangler deploy --env <env>` (a dry run builds and checks the bundle, uploads
 *    nothing, and needs no Cloudflare account or network).
 * 4. A smoke test: `GET /status-levels/health` on the environment's route (or `--url <base>`)
 *    answers 200 within 60 s.
 *
 * Migrations run before the Worker, so a new Worker never calls a function the database does not
 * have yet; a failed push stops here, with the old Worker still serving.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { projectRoot } from "./stack/migrate.ts";

const usage = "usage: npm run deploy -- --env staging|production [--dry-run] [--linked] [--url <https://host>]";
const environments = ["staging", "production"] as const;
type Environment = (typeof environments)[number];

class DeployError extends Error {}

function parseFlags() {
  const { values } = parseArgs({
    options: {
      env: { type: "string", short: "e" },
      "dry-run": { type: "boolean", default: false },
      linked: { type: "boolean", default: false },
      url: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  if (!values.env || !environments.includes(values.env as Environment)) {
    throw new DeployError(`--env must be one of ${environments.join(", ")}${values.env ? ` (got "${values.env}")` : ""}\n${usage}`);
  }
  return { env: values.env as Environment, dryRun: values["dry-run"], linked: values.linked, url: values.url };
}

function step(title: string): void {
  console.log(`\n=== ${title}`);
}

/** Runs a command with its output shown; rejects with `what` when it fails. */
function run(what: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: projectRoot, stdio: "inherit", env });
    child.once("error", (error) => reject(new DeployError(`${what}: could not run ${command}: ${error.message}`)));
    child.once("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new DeployError(`${what} failed (${signal ?? `exit code ${code}`}); see its output above`)),
    );
  });
}

/** The environment as wrangler resolves it (what `wrangler deploy --env` uploads). */
async function environmentConfig(env: Environment) {
  const file = path.join(projectRoot, "wrangler.toml");
  const raw = parseToml(await readFile(file, "utf8")) as { env?: Record<string, { name?: string }> };
  if (!raw.env?.[env]?.name) throw new DeployError(`wrangler.toml has no [env.${env}] with its own name`);
  const { unstable_readConfig } = await import("wrangler");
  const config = unstable_readConfig({ config: file, env });
  const routes: string[] = (config.routes ?? []).map((r: string | { pattern: string }) => (typeof r === "string" ? r : r.pattern));
  const vars: Record<string, string> = Object.fromEntries(Object.entries(config.vars ?? {}).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
  return { name: config.name, routes, vars, crons: config.triggers?.crons ?? [] };
}

/** Values still as wrangler.toml ships them, for the team to fill in. */
function placeholders(config: Awaited<ReturnType<typeof environmentConfig>>): string[] {
  const placeholder = /your-|example\.(com|org|net)|\.invalid\b/;
  return [
    ...Object.entries(config.vars).filter(([, v]) => placeholder.test(v)).map(([k, v]) => `${k} = "${v}"`),
    ...config.routes.filter((r) => placeholder.test(r)).map((r) => `route "${r}"`),
  ];
}

function supabaseCli(): string {
  const local = path.join(projectRoot, "node_modules", ".bin", "supabase");
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, "supabase"))) return path.join(dir, "supabase");
  }
  throw new DeployError("the Supabase CLI is missing: run `npm ci` (it is a dev dependency of this project) or put `supabase` on the PATH");
}

/** The URL without its password, to say where the migrations go. */
function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    throw new DeployError("SUPABASE_DB_URL is not a valid URL (postgresql://USER:PASSWORD@HOST:PORT/postgres, percent-encoded)");
  }
}

async function pushMigrations(env: Environment, { dryRun, linked }: { dryRun: boolean; linked: boolean }): Promise<void> {
  const cli = supabaseCli();
  let target: string[];
  if (linked) {
    if (!existsSync(path.join(projectRoot, "supabase", ".temp", "project-ref"))) {
      throw new DeployError(`--linked: this checkout is not linked to a project; run \`npx supabase link --project-ref <the ${env} project's ref>\` first`);
    }
    target = ["--linked"];
    console.log(`database: the linked project (supabase/.temp/project-ref)`);
  } else {
    const dbUrl = process.env.SUPABASE_DB_URL;
    if (!dbUrl) {
      throw new DeployError(
        `SUPABASE_DB_URL is not set: the connection string of the ${env} project's database ` +
          "(Supabase dashboard: Connect; postgresql://USER:PASSWORD@HOST:PORT/postgres, percent-encoded), " +
          "or link the project (`npx supabase link --project-ref <ref>`) and pass --linked",
      );
    }
    target = ["--db-url", dbUrl];
    console.log(`database: ${redacted(dbUrl)}`);
  }
  await run("supabase db push", cli, ["db", "push", ...target, ...(dryRun ? ["--dry-run"] : ["--yes"])]);
}

async function deployWorker(env: Environment, dryRun: boolean): Promise<void> {
  const wrangler = path.join(projectRoot, "node_modules", ".bin", "wrangler");
  if (!dryRun) return run("wrangler deploy", wrangler, ["deploy", "--env", env]);
  // No account, no network, nothing left behind: its config folder is thrown away.
  const config = await mkdtemp(path.join(os.tmpdir(), "status-levels-deploy-"));
  try {
    await run("wrangler deploy --dry-run", wrangler, ["deploy", "--dry-run", "--env", env], {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_HIDE_BANNER: "true",
      XDG_CONFIG_HOME: config,
    });
  } finally {
    await rm(config, { recursive: true, force: true });
  }
}

/** The environment's base URL: `--url`, else its first route's host. */
function baseUrl(config: Awaited<ReturnType<typeof environmentConfig>>, url: string | undefined): string | null {
  if (url) return url.replace(/\/+$/, "");
  const host = config.routes[0]?.split("/")[0]?.replace(/^\*\.?/, "");
  return host ? `https://${host}` : null;
}

async function smokeTest(base: string): Promise<void> {
  const health = `${base}/status-levels/health`;
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(health, { signal: AbortSignal.timeout(10_000) });
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) {
        console.log(`GET ${health}: ${last}`);
        return;
      }
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 3000));
  }
  throw new DeployError(
    `the smoke test failed: GET ${health} did not answer 200 within 60 s (last: ${last}). ` +
      "A 503 names the dependency that is down, or says the Worker is misconfigured: check its vars and `wrangler secret list --env`.",
  );
}

async function main(): Promise<void> {
  const { env, dryRun, linked, url } = parseFlags();
  console.log(`${dryRun ? "Dry run: nothing is changed. " : ""}Deploying status levels to ${env}.`);

  step(`wrangler.toml [env.${env}]`);
  const config = await environmentConfig(env);
  console.log(`Worker ${config.name}; routes ${config.routes.join(", ") || "(none)"}; cron ${config.crons.join(", ") || "(none)"}`);
  const unfilled = placeholders(config);
  if (unfilled.length > 0) {
    const message = `[env.${env}] in wrangler.toml still has placeholders: ${unfilled.join("; ")}`;
    if (!dryRun) throw new DeployError(`${message}. Fill them in before deploying.`);
    console.warn(`warning: ${message} (a deploy would stop here)`);
  }

  step(`migrations (supabase db push${dryRun ? " --dry-run" : ""})`);
  await pushMigrations(env, { dryRun, linked });

  step(`Worker (wrangler deploy --env ${env}${dryRun ? " --dry-run" : ""})`);
  await deployWorker(env, dryRun);

  step("smoke test");
  const base = baseUrl(config, url);
  if (!base) {
    console.warn(`warning: [env.${env}] has no route: pass --url <https://host> to check /status-levels/health after a deploy`);
  } else if (dryRun) {
    console.log(`would check GET ${base}/status-levels/health answers 200`);
  } else {
    await smokeTest(base);
  }
  console.log(`\n${dryRun ? "Dry run done: nothing was changed." : `Deployed to ${env}.`}`);
}

main().catch((error) => {
  console.error(`\nnpm run deploy failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
