import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { DemoTokens } from "./demo.ts";
import { stackDir } from "./stack.ts";

/** What `npm run dev` publishes for `npm run status` (the shape of `supabase status -o json`). */
export interface DevStatus {
  API_URL: string;
  SUPABASE_URL: string;
  DB_URL: string;
  ANON_KEY: string;
  SERVICE_ROLE_KEY: string;
  JWKS_URL: string;
  REDIS_REST_URL: string;
  REDIS_REST_TOKEN: string;
  DEMO_TOKENS: DemoTokens;
  PID: number;
}

const file = path.join(stackDir, "status.json");

export async function writeDevStatus(status: DevStatus): Promise<void> {
  await writeFile(file, JSON.stringify(status, null, 2), { mode: 0o600 });
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
