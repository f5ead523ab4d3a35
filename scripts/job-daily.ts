/**
 * `npm run job:daily`: runs the daily job now on the running dev stack (`npm run dev`), through the
 * Worker's admin endpoint with the service-role key, and prints the summary.
 *   --as-of 2027-01-01T02:00:00Z   act as of another time (backfills, trying notices out)
 *   --org <uuid>                   only these organizations (repeatable)
 *   --json                         the raw summary
 */
import { readDevStatus } from "./stack/dev-status.ts";

const args = process.argv.slice(2);
const valueOf = (flag: string) => args.flatMap((a, i) => (a === flag && args[i + 1] ? [args[i + 1]!] : []));

const status = await readDevStatus();
if (!status) {
  console.error("The dev stack is not running: start it with `npm run dev` (in another terminal), then run this again.");
  process.exit(1);
}
const asOf = valueOf("--as-of")[0];
const orgs = valueOf("--org");
if (asOf && Number.isNaN(Date.parse(asOf))) {
  console.error(`--as-of must be an ISO date-time, e.g. 2027-01-01T02:00:00Z (got ${asOf})`);
  process.exit(2);
}
console.error(`running the daily job as of ${asOf ?? "now"}${orgs.length ? ` for ${orgs.length} organization(s)` : ""}...`);
const res = await fetch(`${status.API_URL}/admin/jobs/daily`, {
  method: "POST",
  headers: { authorization: `Bearer ${status.SERVICE_ROLE_KEY}`, "content-type": "application/json" },
  body: JSON.stringify({ ...(asOf ? { as_of: asOf } : {}), ...(orgs.length ? { organization_ids: orgs } : {}) }),
});
const body = (await res.json()) as Record<string, any>;
const summary = res.ok ? body : body.summary;
if (args.includes("--json") || !summary) {
  console.log(JSON.stringify(body, null, 2));
} else {
  console.log(`\n${summary.ok ? "ok" : "FAILED"}  as of ${summary.as_of}  in ${summary.duration_ms} ms\n`);
  for (const [step, s] of Object.entries(summary.steps as Record<string, Record<string, unknown>>)) {
    const { ok, duration_ms, batches, error, ...counts } = s;
    console.log(`  ${step.padEnd(15)} ${ok ? "ok    " : "FAILED"} ${String(duration_ms).padStart(6)} ms  ${batches} batch(es)  ${JSON.stringify(counts)}${error ? `\n${" ".repeat(18)}${error}` : ""}`);
  }
}
process.exit(res.ok ? 0 : 1);
