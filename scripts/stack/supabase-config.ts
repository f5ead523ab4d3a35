import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "smol-toml";
import { z } from "zod";

export const supabaseDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../supabase");
export const configFile = path.join(supabaseDir, "config.toml");

/**
 * What the local stack takes from supabase/config.toml, the file the Supabase CLI reads, so the
 * two cannot disagree: PostgREST's schemas, search path and row limit, the seed files, the
 * Postgres major version and how long user tokens last.
 */
export interface SupabaseConfig {
  api: { schemas: string[]; extraSearchPath: string[]; maxRows: number };
  /** seedFiles: absolute paths, in order; none when `[db.seed] enabled = false`. */
  db: { majorVersion: number; seedFiles: string[] };
  auth: { jwtExpirySeconds: number };
}

const name = z.string().regex(/^[a-z_][a-z0-9_]*$/, "a lower-case schema name");

const configSchema = z.object({
  api: z.object({
    schemas: z.array(name).min(1),
    extra_search_path: z.array(name),
    max_rows: z.number().int().positive(),
  }),
  db: z.object({
    major_version: z.number().int(),
    seed: z.object({
      enabled: z.boolean().default(true),
      // The CLI also takes globs; the local stack loads plain file names only.
      sql_paths: z.array(z.string().refine((p) => !/[*?[{]/.test(p), "a file name (the local stack reads no globs)")),
    }),
  }),
  auth: z.object({ jwt_expiry: z.number().int().positive().max(604_800) }),
});

export async function readSupabaseConfig(file = configFile): Promise<SupabaseConfig> {
  const where = path.relative(process.cwd(), file) || file;
  let raw: unknown;
  try {
    raw = parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${tomlKey(issue.path)}: ${issue.message}`);
    throw new Error(`${where}: ${problems.join("; ")}`);
  }
  const { api, db, auth } = parsed.data;
  return {
    api: { schemas: api.schemas, extraSearchPath: api.extra_search_path, maxRows: api.max_rows },
    db: {
      majorVersion: db.major_version,
      seedFiles: db.seed.enabled ? db.seed.sql_paths.map((p) => path.resolve(path.dirname(file), p)) : [],
    },
    auth: { jwtExpirySeconds: auth.jwt_expiry },
  };
}

/** migrate() loads one seed file: a config listing more would be loaded only in part, so it is refused. */
export function localSeedFile(config: SupabaseConfig): string | undefined {
  const [first, ...more] = config.db.seedFiles;
  if (more.length > 0) {
    throw new Error(`supabase/config.toml: [db.seed] sql_paths lists ${config.db.seedFiles.length} files; the local stack loads one`);
  }
  return first;
}

/** ["db", "seed", "sql_paths", 0] -> "[db.seed] sql_paths[0]", as the key reads in the file. */
function tomlKey(keyPath: PropertyKey[]): string {
  const firstIndex = keyPath.findIndex((k) => typeof k === "number");
  const keys = (firstIndex === -1 ? keyPath : keyPath.slice(0, firstIndex)).map(String);
  const indexes = firstIndex === -1 ? "" : keyPath.slice(firstIndex).map((k) => `[${String(k)}]`).join("");
  if (keys.length <= 1) return `[${keys[0] ?? ""}]${indexes}`;
  return `[${keys.slice(0, -1).join(".")}] ${keys.at(-1)}${indexes}`;
}
