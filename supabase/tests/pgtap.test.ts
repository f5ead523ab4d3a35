import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { sql, stack } from "../../scripts/test/node-harness.ts";

/**
 * The pgTAP tests (`.sql` and `.pg` files under supabase/tests, what `supabase test db` runs with
 * `pg_prove --ext .pg --ext .sql -r supabase/tests`), run by the same pg_prove against the test
 * stack's database, one vitest test per file. A file passes only when pg_prove passes it AND it
 * ran every assertion it planned, at least one: a file that plans nothing (`1..0`, which
 * pg_prove counts as skipped) fails here, and so does finding no file at all.
 *
 * pgTAP comes from the database server, as `supabase test db` expects (it runs `create extension
 * if not exists pgtap with schema extensions` before pg_prove): the Postgres on 127.0.0.1:5432
 * has it once Debian's postgresql-15-pgtap is installed. An embedded Postgres from npm has no
 * pgTAP, so its SQL is loaded from that installed package (`pg_config --sharedir`) into the schema
 * `extensions`, which is all pgTAP is. Without either, and without pg_prove, this fails and says
 * which package to install; it never skips.
 */

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const testsDir = path.join(projectRoot, "supabase", "tests");

/** The files pg_prove runs with `--ext .pg --ext .sql -r supabase/tests`, in its order. */
function pgTapFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return pgTapFiles(full);
      return /\.(sql|pg)$/.test(entry.name) ? [full] : [];
    })
    .sort();
}

const files = pgTapFiles(testsDir).map((file) => path.relative(projectRoot, file));

/** Where pg_prove should connect: the test stack's database, with pgTAP's schema on the search path as on Supabase. */
function pgEnv(): NodeJS.ProcessEnv {
  const url = new URL(stack.databaseUrl);
  return {
    ...process.env,
    PGHOST: url.hostname,
    PGPORT: url.port || "5432",
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: decodeURIComponent(url.pathname.slice(1)),
    PGOPTIONS: '-c search_path="$user",public,extensions',
    PGAPPNAME: "pgtap",
  };
}

interface ProveResult {
  exitCode: number;
  output: string;
}

/** pg_prove on one file, verbose: every TAP line, the diagnostics of failed assertions and psql's errors. */
function prove(file: string): Promise<ProveResult> {
  return new Promise((resolve, reject) => {
    execFile(
      "pg_prove",
      ["--verbose", "--ext", ".pg", "--ext", ".sql", file],
      { cwd: projectRoot, env: pgEnv(), timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code;
        if (code === "ENOENT") {
          reject(new Error(missingPgProve));
          return;
        }
        const exitCode = error ? (typeof code === "number" ? code : -1) : 0;
        resolve({ exitCode, output: [stdout, stderr].filter((s) => s.trim()).join("\n") + (error?.killed ? "\n(killed: took over 120 s)" : "") });
      },
    );
  });
}

const missingPgProve =
  "pg_prove is not installed: it runs the pgTAP tests, as `supabase test db` does. " +
  "Fix: `apt-get install libtap-parser-sourcehandler-pgtap-perl postgresql-client` (macOS: `cpan TAP::Parser::SourceHandler::pgTAP`).";

/** Why a file's run does not count as passed; empty when it does. */
function problemsOf({ exitCode, output }: ProveResult): string[] {
  const lines = output.split("\n");
  const plan = lines.map((l) => /^1\.\.(\d+)/.exec(l)).find(Boolean);
  const passed = lines.filter((l) => /^ok \d+/.test(l)).length;
  const failed = lines.filter((l) => /^not ok \d+/.test(l)).length;
  const problems: string[] = [];
  if (exitCode !== 0) problems.push(`pg_prove exited with ${exitCode}`);
  if (!plan) problems.push("no plan (select plan(n))");
  const planned = plan ? Number(plan[1]) : 0;
  if (passed + failed === 0) problems.push("ran no assertion");
  if (failed > 0) problems.push(`${failed} of ${passed + failed} assertions failed`);
  if (plan && planned !== passed + failed) problems.push(`planned ${planned} assertions, ran ${passed + failed}`);
  return problems;
}

async function expectPasses(file: string): Promise<number> {
  const result = await prove(file);
  const problems = problemsOf(result);
  if (problems.length > 0) throw new Error(`${file}: ${problems.join("; ")}\n\n${result.output}`);
  return result.output.split("\n").filter((l) => /^ok \d+/.test(l)).length;
}

/**
 * pgTAP in the test database, as `supabase test db` has it: in the schema `extensions`, callable by
 * the API roles (on Supabase the extensions' functions are; here the migrations take EXECUTE away
 * from PUBLIC for functions the migrating role creates), because the tests call pgTAP after
 * `set local role authenticated`. Created in this run's throw-away database only, never by a
 * migration. Returns how it was provided.
 */
async function providePgTap(): Promise<string> {
  const [server] = await sql<{ major: number; available: boolean }[]>`
    select current_setting('server_version_num')::int / 10000 as major,
           exists (select 1 from pg_available_extensions where name = 'pgtap') as available`;
  const { major, available } = server!;
  // pgTAP's functions: the extension's, or the ones its SQL just created.
  const grantPgTapFunctions = `
    do $$
    declare
      f regprocedure;
    begin
      for f in select p.oid::regprocedure from pg_proc p
               where (p.pronamespace = 'extensions'::regnamespace and p.oid not in (select oid from pgtap_before))
                  or exists (select 1 from pg_depend d join pg_extension e on e.oid = d.refobjid
                             where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e' and e.extname = 'pgtap')
      loop
        execute format('grant execute on function %s to anon, authenticated, service_role', f);
      end loop;
    end
    $$`;
  const install = async (what: string): Promise<void> => {
    await sql.begin(async (tx) => {
      // pgTAP is no part of the API: no schema reload for PostgREST (the DDL event trigger) mid-run.
      await tx.unsafe("set local session_replication_role = replica");
      await tx.unsafe(
        "create temporary table pgtap_before on commit drop as select oid from pg_proc where pronamespace = 'extensions'::regnamespace",
      );
      await tx.unsafe(what);
      await tx.unsafe(grantPgTapFunctions);
    });
  };
  if (available) {
    await install("create extension if not exists pgtap with schema extensions");
    return `the pgtap extension of the server (Postgres ${major})`;
  }
  const [loaded] = await sql<{ loaded: boolean }[]>`select to_regprocedure('extensions.plan(integer)') is not null as loaded`;
  if (loaded!.loaded) return "pgTAP's SQL, loaded before";
  const script = await installedPgTapScript(major);
  await install(`set local search_path = extensions;\n${await readFile(script, "utf8")}`);
  return `pgTAP's SQL from ${script} (this Postgres has no pgtap extension)`;
}

/** pgTAP's install script from a pgTAP installed for a system Postgres (Debian: postgresql-<major>-pgtap). */
async function installedPgTapScript(major: number): Promise<string> {
  const sharedir = await new Promise<string | null>((resolve) =>
    execFile("pg_config", ["--sharedir"], (error, stdout) => resolve(error ? null : stdout.trim())),
  );
  // Debian keeps one share folder per major version side by side; pg_config names the newest.
  const candidates = sharedir ? [...(/^\d+$/.test(path.basename(sharedir)) ? [path.join(path.dirname(sharedir), String(major))] : []), sharedir] : [];
  for (const dir of candidates) {
    const control = await readFile(path.join(dir, "extension", "pgtap.control"), "utf8").catch(() => null);
    const version = control && /^default_version\s*=\s*'([^']+)'/m.exec(control)?.[1];
    if (version) return path.join(dir, "extension", `pgtap--${version}.sql`);
  }
  throw new Error(
    `pgTAP is not available: this Postgres ${major} has no pgtap extension (an embedded Postgres from npm never has one), ` +
      `and no installed pgTAP was found${sharedir ? ` under ${sharedir} (pg_config --sharedir)` : " (no pg_config on the PATH)"}. ` +
      `Fix: \`apt-get install postgresql-${major}-pgtap\` (macOS: \`brew install pgtap\`), or run the tests against a Postgres that has pgTAP (DATABASE_URL).`,
  );
}

describe("pgTAP tests (what `supabase test db` runs), against the test stack's database", () => {
  beforeAll(async () => {
    const version = await new Promise<string>((resolve, reject) =>
      execFile("pg_prove", ["--version"], (error, stdout) => (error ? reject(new Error(missingPgProve)) : resolve(stdout.trim()))),
    );
    const how = await providePgTap();
    console.info(`pgTAP: ${how}; ${version}; ${files.length} file(s)`);
  }, 60_000);

  it("finds the .sql and .pg files under supabase/tests", () => {
    expect(files.length, "no pgTAP file under supabase/tests: `supabase test db` would run nothing and pass").toBeGreaterThan(0);
  });

  for (const file of files) {
    it(path.relative("supabase/tests", file), async () => {
      expect(await expectPasses(file)).toBeGreaterThan(0);
    }, 150_000);
  }

  it("a file fails on a failed assertion, an SQL error, a short run, no plan, or no assertion at all", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-pgtap-"));
    const cases: Record<string, string> = {
      good: "begin;\nselect plan(1);\nselect ok(true, 'true');\nselect * from finish();\nrollback;\n",
      failed: "begin;\nselect plan(2);\nselect ok(true, 'true');\nselect is(1, 2, 'one is two');\nselect * from finish();\nrollback;\n",
      sqlError: "begin;\nselect plan(2);\nselect ok(true, 'true');\nselect no_such_function();\nselect ok(true, 'never');\nselect * from finish();\nrollback;\n",
      short: "begin;\nselect plan(3);\nselect ok(true, 'true');\nselect * from finish();\nrollback;\n",
      noPlan: "begin;\nselect 1;\nrollback;\n",
      // pg_prove passes this one ("skipped", exit 0): only the check here catches it.
      planZero: "begin;\nselect plan(0);\nrollback;\n",
    };
    try {
      const verdicts: Record<string, string[]> = {};
      const exitCodes: Record<string, number> = {};
      for (const [name, text] of Object.entries(cases)) {
        const file = path.join(dir, `${name}.sql`);
        await writeFile(file, text);
        const result = await prove(file);
        verdicts[name] = problemsOf(result);
        exitCodes[name] = result.exitCode;
      }
      expect(verdicts.good).toEqual([]);
      expect(verdicts.failed).toContain("1 of 2 assertions failed");
      expect(verdicts.sqlError).toContain("planned 2 assertions, ran 1");
      expect(verdicts.short).toContain("planned 3 assertions, ran 1");
      expect(verdicts.noPlan).toContain("no plan (select plan(n))");
      expect({ exitCode: exitCodes.planZero, problems: verdicts.planZero }).toEqual({ exitCode: 0, problems: expect.arrayContaining(["ran no assertion"]) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
