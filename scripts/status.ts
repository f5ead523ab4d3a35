/**
 * `npm run status`: the running dev stack's URLs, keys and demo tokens.
 *   --json          everything as JSON (like `supabase status -o json`)
 *   --token NAME    just one demo token (platformAdmin, orgOwner, orgMember, outsider)
 */
import { readDevStatus } from "./stack/dev-status.ts";

const status = await readDevStatus();
if (!status) {
  console.error("The dev stack is not running: start it with `npm run dev`.");
  process.exit(1);
}
const args = process.argv.slice(2);
const tokenIndex = args.indexOf("--token");
if (tokenIndex !== -1) {
  const name = args[tokenIndex + 1] as keyof typeof status.DEMO_TOKENS;
  const token = status.DEMO_TOKENS[name];
  if (!token) {
    console.error(`unknown demo user "${String(name)}"; one of: ${Object.keys(status.DEMO_TOKENS).join(", ")}`);
    process.exit(2);
  }
  console.log(token);
} else if (args.includes("--json")) {
  const { PID: _pid, ...rest } = status;
  console.log(JSON.stringify(rest, null, 2));
} else {
  for (const [key, value] of Object.entries(status)) {
    if (key === "PID") continue;
    if (typeof value === "string") console.log(`${key.padEnd(18)} ${value}`);
    else for (const [name, token] of Object.entries(value)) console.log(`${`TOKEN ${name}`.padEnd(18)} ${token}`);
  }
}
