import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { decodeJwt } from "jose";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, sql, stack } from "../test/node-harness.ts";
import { startPostgrest } from "./postgrest.ts";
import { createDatabase, databaseUrl, dropDatabase, roleUrl } from "./postgres.ts";
import { configFile, localSeedFile, readSupabaseConfig, supabaseDir, type SupabaseConfig } from "./supabase-config.ts";

/** The local stack runs with what supabase/config.toml says, the file the Supabase CLI reads. */
let config: SupabaseConfig;
beforeAll(async () => {
  config = await readSupabaseConfig();
});

describe("supabase/config.toml and the running stack agree", () => {
  it("the stack's PostgREST exposes exactly [api] schemas", async () => {
    const res = await fetch(`${stack.postgrestUrl}/`, { headers: { "accept-profile": "no_such_schema" } });
    expect(res.status).toBe(406);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("PGRST106");
    expect(body.message).toBe(`The schema must be one of the following: ${config.api.schemas.join(", ")}`);
  });

  it("Postgres is the [db] major_version", async () => {
    const [row] = await sql<{ major: number }[]>`select current_setting('server_version_num')::int / 10000 as major`;
    expect(row!.major).toBe(config.db.majorVersion);
  });

  it("user tokens last [auth] jwt_expiry", async () => {
    const org = await fixtures.organization();
    const member = await fixtures.member(org, "member");
    const { iat, exp } = decodeJwt(member.token);
    expect(exp! - iat!).toBe(config.auth.jwtExpirySeconds);
  });

  it("`npm run dev` seeds from [db.seed] sql_paths", () => {
    expect(localSeedFile(config)).toBe(path.join(supabaseDir, "seed.sql"));
  });
});

describe("PostgREST as the stack starts it: [api] max_rows and extra_search_path", () => {
  const adminUrl = databaseUrl(stack.databaseUrl, "postgres");
  const name = `${stack.databaseName}_config`;
  let postgrest: Awaited<ReturnType<typeof startPostgrest>> | undefined;

  beforeAll(async () => {
    await createDatabase(adminUrl, name);
    const db = postgres(databaseUrl(stack.databaseUrl, name), { max: 1, onnotice: () => {} });
    try {
      // A table one row longer than the limit, and a function that reports the request's search path.
      await db.unsafe(`
        create table public.config_probe as select n from generate_series(1, ${config.api.maxRows + 1}) n;
        create function public.config_probe_search_path() returns text language sql stable
          as $$ select current_setting('search_path') $$;
        grant select on public.config_probe to anon;
        grant execute on function public.config_probe_search_path() to anon;`);
    } finally {
      await db.end({ timeout: 2 });
    }
    postgrest = await startPostgrest({
      dbUri: roleUrl(databaseUrl(stack.databaseUrl, name), "authenticator", "authenticator-local-only"),
      jwtSecret: "config-test-secret-".padEnd(40, "x"),
    });
  }, 60_000);

  afterAll(async () => {
    await postgrest?.stop();
    await dropDatabase(adminUrl, name);
  });

  it("answers at most max_rows rows", async () => {
    const res = await fetch(`${postgrest!.url}/config_probe?select=n`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as unknown[]).length).toBe(config.api.maxRows);
  });

  it("runs every request with extra_search_path after the exposed schema", async () => {
    const res = await fetch(`${postgrest!.url}/rpc/config_probe_search_path`, { method: "POST" });
    expect(res.status).toBe(200);
    const searchPath = ((await res.json()) as string).split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    expect(searchPath).toEqual([config.api.schemas[0], ...config.api.extraSearchPath]);
  });
});

describe("readSupabaseConfig", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "status-levels-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const read = async (text: string) => {
    const file = path.join(dir, `${crypto.randomUUID()}.toml`);
    await writeFile(file, text);
    return readSupabaseConfig(file);
  };
  const valid = `
[api]
schemas = ["public"]
extra_search_path = ["public", "extensions"]
max_rows = 1000
[db]
major_version = 15
[db.seed]
sql_paths = ["./seed.sql", "./more.sql"]
[auth]
jwt_expiry = 3600
`;

  it("reads the project's file", async () => {
    expect(configFile).toBe(path.join(supabaseDir, "config.toml"));
    expect(config.api).toEqual({ schemas: ["public"], extraSearchPath: ["public", "extensions"], maxRows: 1000 });
    expect(config.db.majorVersion).toBe(15);
  });

  it("resolves seed files from the file's folder; none when [db.seed] is disabled", async () => {
    expect((await read(valid)).db.seedFiles).toEqual([path.join(dir, "seed.sql"), path.join(dir, "more.sql")]);
    expect((await read(valid.replace("[db.seed]", "[db.seed]\nenabled = false"))).db.seedFiles).toEqual([]);
  });

  it("refuses more seed files than the local stack loads, naming the key", async () => {
    expect(() => localSeedFile({ ...config, db: { ...config.db, seedFiles: ["a.sql", "b.sql"] } })).toThrow(
      "[db.seed] sql_paths lists 2 files; the local stack loads one",
    );
  });

  it("names the key that is missing or wrong", async () => {
    await expect(read(valid.replace("max_rows = 1000", ""))).rejects.toThrow(/: \[api\] max_rows: /);
    await expect(read(valid.replace("max_rows = 1000", 'max_rows = "1000"'))).rejects.toThrow(/\[api\] max_rows: .*number/);
    await expect(read(valid.replace('"./more.sql"', '"./seeds/*.sql"'))).rejects.toThrow(
      /\[db\.seed\] sql_paths\[1\]: a file name \(the local stack reads no globs\)/,
    );
    await expect(read(valid.replace("[auth]\njwt_expiry = 3600", ""))).rejects.toThrow(/\[auth\]: /);
    await expect(read("[api\n")).rejects.toThrow(/\.toml: /);
  });
});
