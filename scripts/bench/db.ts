import postgres from "postgres";
import { userToken } from "../stack/tokens.ts";
import { postgrestJwks } from "../stack/keys.ts";
import { roleUrl } from "../stack/postgres.ts";
import { startPostgrest } from "../stack/postgrest.ts";
import type { StackInfo } from "../stack/stack-info.ts";
import { format, percentile, progress, sequentialLatencies, table, timed } from "./report.ts";

/**
 * Issue 3's measure: the level C check and get_organization_status for an organization with
 * 100,000 reviews, in a database of 10 million reviews across 100,000 organizations, through
 * PostgREST (via the gateway, as the Worker calls it), against a baseline of the cheapest RPC.
 */
export interface DbBenchOptions {
  organizations: number;
  reviews: number;
  targetReviews: number;
  samples: number;
}

export const defaultDbBench: DbBenchOptions = { organizations: 100_000, reviews: 10_000_000, targetReviews: 100_000, samples: 500 };

const target = "b0000000-0000-4000-a000-000000000001";
const targetMember = "b0000000-0000-4000-a000-0000000000aa";

export async function runDbBench(stack: StackInfo, options: DbBenchOptions): Promise<string> {
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {}, idle_timeout: 0 });
  const out: string[] = [];
  try {
    const generation = await timed(`generating ${format(options.reviews)} reviews across ${format(options.organizations)} organizations`, () =>
      generate(sql, options),
    );
    const [{ count }] = (await sql`select count(*)::bigint as count from public.reviews`) as unknown as [{ count: string }];
    out.push(`Data: ${format(Number(count))} reviews, ${format(options.organizations)} organizations, ${format(options.targetReviews)} for the measured one; generated set-based in ${format(generation.ms / 1000)} s.`);

    const token = await userToken(stack.keys, targetMember);
    const rpc = (fn: string, base = `${stack.supabaseUrl}/rest/v1`) => async () => {
      const res = await fetch(`${base}/rpc/${fn}`, {
        method: "POST",
        headers: { apikey: stack.anonKey, authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: fn === "status_levels_ping" ? "{}" : JSON.stringify({ p_organization_id: target }),
      });
      if (!res.ok) throw new Error(`${fn}: HTTP ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    };
    // Correctness first: the measured organization really has its reviews counted.
    const check = (await (await fetch(`${stack.supabaseUrl}/rest/v1/rpc/check_level_c_criteria`, {
      method: "POST",
      headers: { apikey: stack.anonKey, authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ p_organization_id: target }),
    })).json()) as { criteria: { review_count: number } };
    const [{ direct }] = (await sql`
      select count(*)::int as direct from public.reviews
      where organization_id = ${target} and status = 'published' and published_at >= now() - interval '12 months' and published_at <= now()`) as unknown as [{ direct: number }];
    out.push(`Check: reviews in 12 months by the RPC ${format(check.criteria.review_count)}, by a direct count ${format(direct)}.`);

    // Three paths to the same RPCs: PostgREST itself (what the target is about), the local API
    // gateway in front of it (a Node proxy in this process, as the Worker reaches it), and a second
    // PostgREST on the same database without its JWT cache (PostgREST's default), so the cost of
    // verifying the ES256 token on every request shows.
    const measured: Array<[string, number[]]> = [];
    const series = async (label: string, fn: string, base: string) => {
      progress(`${options.samples} sequential calls of ${fn} (${label})`);
      measured.push([`${fn} (${label})`, await sequentialLatencies(options.samples, rpc(fn, base))]);
    };
    await series("PostgREST", "status_levels_ping", stack.postgrestUrl);
    await series("PostgREST", "check_level_c_criteria", stack.postgrestUrl);
    await series("PostgREST", "get_organization_status", stack.postgrestUrl);
    await series("gateway + PostgREST", "check_level_c_criteria", `${stack.supabaseUrl}/rest/v1`);
    await series("gateway + PostgREST", "get_organization_status", `${stack.supabaseUrl}/rest/v1`);
    const uncached = await startPostgrest({
      dbUri: roleUrl(stack.databaseUrl, "authenticator", "authenticator-local-only"),
      jwtSecret: postgrestJwks(stack.keys),
      jwtCacheSeconds: 0,
    });
    try {
      await series("PostgREST, JWT cache off", "check_level_c_criteria", uncached.url);
      await series("PostgREST, JWT cache off", "get_organization_status", uncached.url);
    } finally {
      await uncached.stop();
    }
    progress(`${Math.min(options.samples, 100)} runs of the naive aggregate over reviews (what the rollup replaces)`);
    const naive = await sequentialLatencies(Math.min(options.samples, 100), async () => {
      await sql`
        select count(*) filter (where published_at >= now() - interval '12 months'),
               count(*) filter (where published_at >= now() - interval '90 days'),
               count(responded_at) filter (where published_at >= now() - interval '90 days'),
               avg(extract(epoch from responded_at - published_at)) filter (where published_at >= now() - interval '90 days' and responded_at is not null)
        from public.reviews
        where organization_id = ${target} and status = 'published' and published_at >= now() - interval '12 months' and published_at <= now()`;
    }, 5);
    const baseline = percentile(measured[0]![1], 50);
    out.push("");
    out.push(
      table(
        ["call (path; PostgREST's JWT cache on unless said)", "p50 ms", "p99 ms", "p50 vs baseline", "target p50"],
        [
          ...measured.map(([label, s], i) => [label + (i === 0 ? ", baseline" : ""), percentile(s, 50), percentile(s, 99), `${format(percentile(s, 50) / baseline)}x`, i === 1 || i === 2 ? "< 5 ms" : ""]),
          ["naive aggregate over reviews, direct SQL (for comparison)", percentile(naive, 50), percentile(naive, 99), `${format(percentile(naive, 50) / baseline)}x`, ""],
        ],
      ),
    );
    out.push("");
    out.push(await plans(stack, token));
    return out.join("\n");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function generate(sql: postgres.Sql, o: DbBenchOptions): Promise<void> {
  await sql.unsafe(`
    insert into auth.users (id, email) values ('${targetMember}', 'bench-member@example.test');
    insert into public.organizations (id, name) values ('${target}', 'Measured organization');
    insert into public.organizations (name) select 'Organization ' || g from generate_series(2, ${o.organizations}) g;
    insert into public.organization_members (organization_id, user_id, role) values ('${target}', '${targetMember}', 'member');
    insert into public.case_studies (organization_id, title, is_published) values ('${target}', 'Case', true);
    insert into public.organization_status_levels (organization_id, level, valid_until) values ('${target}', 'B', now() + interval '300 days');
    create table bench_orgs as select id, row_number() over (order by id) as rn from public.organizations where id <> '${target}';
    create index on bench_orgs (rn);
  `);
  // The measured organization: reviews over two years, 90 % answered within 0-47 hours.
  await sql.unsafe(`
    insert into public.reviews (organization_id, status, published_at, responded_at)
    select '${target}', 'published', p, case when random() < 0.9 then p + random() * interval '47 hours' end
    from (select now() - random() * interval '730 days' as p from generate_series(1, ${o.targetReviews})) r`);
  const others = o.reviews - o.targetReviews;
  const chunk = 1_000_000;
  const orgCount = o.organizations - 1;
  for (let start = 0; start < others; start += chunk) {
    const end = Math.min(others, start + chunk);
    const t = performance.now();
    await sql.unsafe(`
      insert into public.reviews (organization_id, status, published_at, responded_at)
      select b.id, case when g % 20 = 0 then 'hidden' else 'published' end, p, case when g % 4 <> 0 then p + (g % 72) * interval '1 hour' end
      from (select g, now() - (g % 1000) * interval '17 hours' as p from generate_series(${start}, ${end - 1}) g) r
      join bench_orgs b on b.rn = (r.g % ${orgCount}) + 1`);
    progress(`  reviews ${format(end + o.targetReviews)} / ${format(o.reviews)} (${format((performance.now() - t) / 1000)} s for this chunk)`);
  }
  await sql.unsafe("drop table bench_orgs");
  await timed("vacuum analyze", () => sql.unsafe("vacuum analyze public.reviews, private.review_daily_stats, public.organizations, public.organization_status_levels"));
}

/** The plans of every statement the two RPCs run (auto_explain, nested statements included). */
async function plans(stack: StackInfo, _token: string): Promise<string> {
  const notices: string[] = [];
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
  try {
    await sql.begin(async (tx) => {
      await tx.unsafe(`load 'auto_explain'`);
      await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
      await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
      await tx.unsafe(`set local auto_explain.log_analyze = on`);
      await tx.unsafe(`set local client_min_messages = log`);
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: targetMember, role: "authenticated" })}, true)`;
      await tx.unsafe(`set local role authenticated`);
      await tx`select public.get_organization_status(${target})`;
    });
  } finally {
    await sql.end({ timeout: 2 });
  }
  const text = notices.join("\n");
  const reviewScans = [...text.matchAll(/(Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan)[^\n]* on (reviews|review_daily_stats)[^\n]*/g)].map((m) => m[0].trim());
  const seq = reviewScans.filter((s) => s.startsWith("Seq Scan"));
  return [
    `Query plans (auto_explain of get_organization_status, nested statements): ${reviewScans.length} scans of reviews / review_daily_stats, ${seq.length} sequential.`,
    ...reviewScans.map((s) => `  ${s}`),
  ].join("\n");
}
