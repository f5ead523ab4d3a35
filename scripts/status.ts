/**
 * `npm run status`: the running dev stack's URLs, keys and demo tokens (this checkout's).
 *   --json          everything as JSON (like `supabase status -o json`)
 *   --token NAME    just one demo token (platformAdmin, orgOwner, orgMember, outsider)
 *   --get KEY       just one value, e.g. API_URL or WEBHOOK_SECRET (for scripts)
 */
import { readDevStatus } from "./stack/dev-status.ts";

const status = await readDevStatus();
if (!status) {
  console.error("The dev stack is not running in this checkout: start it with `npm run dev`.");
  process.exit(1);
}
const args = process.argv.slice(2);
const valueAfter = (flag: string) => {
  const index = args.indexOf(flag);
  return index === -1 ? undefined : (args[index + 1] ?? "");
};
const tokenName = valueAfter("--token");
const key = valueAfter("--get");
if (tokenName !== undefined) {
  const token = status.DEMO_TOKENS[tokenName as keyof typeof status.DEMO_TOKENS];
  if (!token) {
    console.error(`unknown demo user "${tokenName}"; one of: ${Object.keys(status.DEMO_TOKENS).join(", ")}`);
    process.exit(2);
  }
  console.log(token);
} else if (key !== undefined) {
  const value = (status as unknown as Record<string, unknown>)[key];
  if (typeof value !== "string" || key === "PID") {
    const keys = Object.entries(status).filter(([k, v]) => typeof v === "string" && k !== "PID").map(([k]) => k);
    console.error(`unknown key "${key}"; one of: ${keys.join(", ")}`);
    process.exit(2);
  }
  console.log(value);
} else if (args.includes("--json")) {
  const { PID: _pid, ...rest } = status;
  console.log(JSON.stringify(rest, null, 2));
} else {
  for (const [name, value] of Object.entries(status)) {
    if (name === "PID") continue;
    if (typeof value === "string") console.log(`${name.padEnd(18)} ${value}`);
    else for (const [user, token] of Object.entries(value)) console.log(`${`TOKEN ${user}`.padEnd(18)} ${token}`);
  }
}
