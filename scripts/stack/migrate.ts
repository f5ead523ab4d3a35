import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { stackLog } from "./log.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
export const projectRoot = path.resolve(here, "../..");
export const migrationsDir = path.join(projectRoot, "supabase", "migrations");
const bootstrapFile = path.join(here, "supabase-bootstrap.sql");

export interface MigrationFile {
  version: string;
  name: string;
  file: string;
}

/** `supabase/migrations/<version>_<name>.sql`, in version order, as the Supabase CLI reads them. */
export async function listMigrations(): Promise<MigrationFile[]> {
  const files = (await readdir(migrationsDir)).filter((f) => f.endsWith(".sql")).sort();
  return files.map((file) => {
    const match = /^(\d+)_(.+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file name must be <version>_<name>.sql: ${file}`);
    return { version: match[1]!, name: match[2]!, file: path.join(migrationsDir, file) };
  });
}

/**
 * Every migration not yet recorded in supabase_migrations.schema_migrations (the table the
 * Supabase CLI uses), each in its own transaction; before them, on the local stack only
 * (`localBootstrap`), what a Supabase project already has (roles, the auth schema, ...: it sets a
 * role's password, so never on a database it was not made for). A recorded migration whose file
 * changed since is reported, not re-run; one the CLI recorded (no checksum) is taken as it is.
 */
export async function migrate(
  databaseUrl: string,
  { seedFile, localBootstrap = false }: { seedFile?: string; localBootstrap?: boolean } = {},
): Promise<{ applied: string[] }> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const applied: string[] = [];
  try {
    if (localBootstrap) await runBootstrap(sql);
    else await ensureMigrationsTable(sql);
    const done = new Map(
      (await sql<{ version: string; checksum: string | null }[]>`
        select version, checksum from supabase_migrations.schema_migrations`).map((r) => [r.version, r.checksum]),
    );
    for (const migration of await listMigrations()) {
      const text = await readFile(migration.file, "utf8");
      const checksum = createHash("sha256").update(text).digest("hex");
      if (done.has(migration.version)) {
        const recorded = done.get(migration.version);
        // The Supabase CLI records no checksum: unknown, not changed.
        if (recorded !== null && recorded !== checksum) {
          stackLog(`warning: ${path.basename(migration.file)} changed after it was applied; reset the database to re-run it`);
        }
        continue;
      }
      try {
        await sql.begin(async (tx) => {
          await tx.unsafe(text);
          await tx`insert into supabase_migrations.schema_migrations (version, name, statements, checksum)
                   values (${migration.version}, ${migration.name}, ${[text]}, ${checksum})`;
        });
      } catch (error) {
        const e = error as Error & { position?: string };
        const where = e.position ? ` at ${lineOf(text, Number(e.position))}` : "";
        throw new Error(`migration ${path.basename(migration.file)} failed${where}: ${e.message}`);
      }
      applied.push(migration.version);
    }
    if (seedFile) {
      const seed = await readFile(seedFile, "utf8");
      await sql.begin((tx) => tx.unsafe(seed));
    }
  } finally {
    await sql.end({ timeout: 2 });
  }
  return { applied };
}

function lineOf(text: string, position: number): string {
  return `line ${text.slice(0, position).split("\n").length}`;
}

/** The CLI's bookkeeping table, as `supabase db push` creates it, plus our checksum column. */
async function ensureMigrationsTable(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`
    create schema if not exists supabase_migrations;
    create table if not exists supabase_migrations.schema_migrations (version text primary key, statements text[], name text);
    alter table supabase_migrations.schema_migrations add column if not exists checksum text;`);
}

/** Retries the role statements when another run's bootstrap updates the same role at once. */
async function runBootstrap(sql: postgres.Sql): Promise<void> {
  const text = await readFile(bootstrapFile, "utf8");
  for (let attempt = 1; ; attempt++) {
    try {
      await sql.unsafe(text);
      return;
    } catch (error) {
      const message = (error as Error).message;
      const raced = /concurrently|already exists|duplicate key/.test(message);
      if (!raced || attempt >= 5) throw new Error(`local Supabase bootstrap failed: ${message}`);
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200 * attempt));
    }
  }
}
