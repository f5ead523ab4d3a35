import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { DemoTokens } from "./demo.ts";
import { stackDir } from "./stack.ts";

/** What `npm run dev` publishes for `npm run status` (the shape of `supabase status -o json`). */
export interface DevStatus {
  /** The dev stack's name: its database is status_levels_dev_<NAME>, its Redis prefix sl-dev-<NAME>. */
  NAME: string;
  API_URL: string;
  SUPABASE_URL: string;
  DB_URL: string;
  ANON_KEY: string;
  SERVICE_ROLE_KEY: string;
  JWKS_URL: string;
  REDIS_REST_URL: string;
  REDIS_REST_TOKEN: string;
  CACHE_KEY_PREFIX: string;
  /** The shared secret of the subscription events webhook (`x-status-levels-signature`). */
  WEBHOOK_SECRET: string;
  DEMO_TOKENS: DemoTokens;
  PID: number;
}

const file = path.join(stackDir, "status.json");

/** The checkout's `.stack/`, the one place dev keeps secrets: only its owner may enter it. */
export async function privateStackDir(): Promise<string> {
  await mkdir(stackDir, { recursive: true, mode: 0o700 });
  await chmod(stackDir, 0o700);
  return stackDir;
}

/** It holds keys and tokens: only its owner may read it (0600), inside `.stack/` (0700). */
export async function writeDevStatus(status: DevStatus): Promise<void> {
  await privateStackDir();
  await writeFile(file, JSON.stringify(status, null, 2), { mode: 0o600 });
  await chmod(file, 0o600);
}

export async function clearDevStatus(): Promise<void> {
  await rm(file, { force: true });
}

/** The running dev stack's status, or null when none is running. */
export async function readDevStatus(): Promise<DevStatus | null> {
  if (!existsSync(file)) return null;
  const status = JSON.parse(await readFile(file, "utf8")) as DevStatus;
  try {
    process.kill(status.PID, 0);
  } catch {
    return null; // left behind by a dev run that was killed
  }
  return status;
}
