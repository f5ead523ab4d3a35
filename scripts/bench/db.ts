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
 * Issue 15's: the level C projection for one organization (a typical C holder and the one with
 * 100,000 reviews), the admin at-risk list's first page, and the projection of all 10,000 C
 * holders in one statement, with their plans.
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
const benchAdmin = "b0000000-0000-4000-a000-0000000000ad";
const count_ = (n: number) => n.toLocaleString("en-US");

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
    const adminToken = await userToken(stack.keys, benchAdmin);
    const call = async (fn: string, base: string, args: object, as = token): Promise<unknown> => {
      const res = await fetch(`${base}/rpc/${fn}`, {
        method: "POST",
        headers: { apikey: stack.anonKey, authorization: `Bearer ${as}`, "content-type": "application/json" },
        body: JSON.stringify(args),
      });
      if (!res.ok) throw new Error(`${fn}: HTTP ${res.status} ${await res.text()}`);
      return res.json();
    };
    const rpc = (fn: string, base = `${stack.supabaseUrl}/rest/v1`) => async () => {
      await call(fn, base, fn === "status_levels_ping" ? {} : { p_organization_id: target });
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
    // Issue 15: the level C projection (30 days) for a typical C holder and for the organization
    // with 100,000 reviews, the admin at-risk list's first page, and the projection of every C
    // holder in one set-based statement (the daily job's step).
    const [typical] = (await sql`
      select l.organization_id as id, o.time_zone,
             (select count(*) from public.reviews r where r.organization_id = l.organization_id and r.status = 'published'
                and r.published_at >= now() - interval '12 months' and r.published_at <= now())::int as reviews_12m
      from public.organization_status_levels l join public.organizations o on o.id = l.organization_id
      where l.level = 'C' and l.is_active order by l.organization_id limit 1`) as unknown as [{ id: string; time_zone: string; reviews_12m: number }];
    const [{ holders }] = (await sql`select count(*)::int as holders from public.organization_status_levels where level = 'C' and is_active`) as unknown as [{ holders: number }];
    const postgrest = stack.postgrestUrl;
    const projection = (org: string, as: string) => async () => void (await call("project_level_c", postgrest, { p_organization_id: org, p_horizon_days: 30 }, as));
    progress(`${options.samples} sequential calls of project_level_c (typical C holder, 100,000-review organization)`);
    const projected: Array<[string, number[], string]> = [
      [`project_level_c (PostgREST), a typical C holder (${typical.reviews_12m} reviews in 12 months, ${typical.time_zone})`, await sequentialLatencies(options.samples, projection(typical.id, adminToken)), "< 10 ms"],
      [`project_level_c (PostgREST), the organization with ${count_(options.targetReviews)} reviews`, await sequentialLatencies(options.samples, projection(target, token)), "< 10 ms"],
    ];
    const atRisk = async () => void (await call("list_level_c_at_risk", postgrest, { p_within_days: 30, p_limit: 50, p_offset: 0 }, adminToken));
    const first = (await call("list_level_c_at_risk", postgrest, { p_within_days: 30, p_limit: 50, p_offset: 0 }, adminToken)) as { total: number; items: unknown[] };
    progress(`${options.samples} sequential calls of list_level_c_at_risk (first page), and 10 that compute it afresh`);
    projected.push([`list_level_c_at_risk (PostgREST), first page of 50: ${count_(first.total)} at risk among ${count_(holders)} C holders, kept up to 5 min`, await sequentialLatencies(options.samples, atRisk), "< 200 ms"]);
    projected.push([
      "list_level_c_at_risk (PostgREST), first page computed afresh (as after a level change)",
      await sequentialLatencies(10, async () => {
        await sql`delete from private.level_c_at_risk_snapshots`;
        await atRisk();
      }, 1),
      "",
    ]);
    progress(`5 runs of the projection of all ${count_(holders)} C holders in one statement`);
    projected.push([
      `private.level_c_projection_for, all ${count_(holders)} C holders in one statement (direct SQL)`,
      await sequentialLatencies(5, async () => {
        await sql`select count(*) from private.level_c_projection_for(array(select organization_id from public.organization_status_levels where level = 'C' and is_active), 30)`;
      }, 1),
      "< 10 s",
    ]);

    const baseline = percentile(measured[0]![1], 50);
    out.push("");
    out.push(
      table(
        ["call (path; PostgREST's JWT cache on unless said)", "p50 ms", "p99 ms", "p50 vs baseline", "target p50"],
        [
          ...measured.map(([label, s], i) => [label + (i === 0 ? ", baseline" : ""), percentile(s, 50), percentile(s, 99), `${format(percentile(s, 50) / baseline)}x`, i === 1 || i === 2 ? "< 5 ms" : ""]),
          ["naive aggregate over reviews, direct SQL (for comparison)", percentile(naive, 50), percentile(naive, 99), `${format(percentile(naive, 50) / baseline)}x`, ""],
          ...projected.map(([label, s, goal]) => [label, percentile(s, 50), percentile(s, 99), `${format(percentile(s, 50) / baseline)}x`, goal]),
        ],
      ),
    );
    out.push("");
    out.push(await plans(stack, token));
    out.push("");
    out.push(await projectionPlans(stack, typical.id, options.targetReviews));
    return out.join("\n");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * The data set. Besides the measured organization, every tenth other organization (10,000 at full
 * scale) holds level C: an active B ending somewhere in the next 18 months, a published case study,
 * and reviews of its own shape (one every 40 to 640 hours, a run of unanswered ones somewhere,
 * answered within a day or three), so that some meet the criteria, some fail now and some will
 * fail within the horizon. Organizations are spread over four time zones.
 */
export async function generate(sql: postgres.Sql, o: DbBenchOptions): Promise<void> {
  await sql.unsafe(`
    insert into auth.users (id, email) values ('${targetMember}', 'bench-member@example.test'), ('${benchAdmin}', 'bench-admin@example.test');
    insert into public.platform_admins (user_id) values ('${benchAdmin}');
    insert into public.organizations (id, name, time_zone) values ('${target}', 'Measured organization', 'Europe/Berlin');
    insert into public.organizations (name, time_zone)
    select 'Organization ' || g, (array['UTC', 'Europe/Berlin', 'America/Los_Angeles', 'Asia/Kolkata'])[g % 4 + 1]
    from generate_series(2, ${o.organizations}) g;
    insert into public.organization_members (organization_id, user_id, role) values ('${target}', '${targetMember}', 'member');
    insert into public.case_studies (organization_id, title, is_published) values ('${target}', 'Case', true);
    insert into public.organization_status_levels (organization_id, level, valid_until) values ('${target}', 'B', now() + interval '300 days');
    create table bench_orgs as select id, row_number() over (order by id) as rn from public.organizations where id <> '${target}';
    create index on bench_orgs (rn);
    insert into public.case_studies (organization_id, title, is_published) select id, 'Case', true from bench_orgs where rn % 10 = 1;
    insert into public.organization_status_levels (organization_id, level, valid_until, last_verified_at)
    select id, 'B', now() + (rn % 547) * interval '1 day' + (rn % 24) * interval '1 hour', now() from bench_orgs where rn % 10 = 1;
    insert into public.organization_status_levels (organization_id, level) select id, 'C' from bench_orgs where rn % 10 = 1;
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
    // Other organizations: one review every 17 hours over 70 days somewhere in the last two years,
    // three in four answered within 0-71 hours. C holders: see above.
    await sql.unsafe(`
      insert into public.reviews (organization_id, status, published_at, responded_at)
      select b.id, case when g % 20 = 0 then 'hidden' else 'published' end, x.p, case when x.answered then x.p + x.hours * interval '1 hour' end
      from generate_series(${start}, ${end - 1}) g
      join bench_orgs b on b.rn = (g % ${orgCount}) + 1
      cross join lateral (
        select case when b.rn % 10 = 1
                 then now() - ((g / ${orgCount}) * (40 + (b.rn / 10) % 600) + b.rn % 24) * interval '1 hour'
                 else now() - (g % 1000) * interval '17 hours' end as p,
               case when b.rn % 10 = 1 then g % 100 >= (b.rn / 10) % 25 else g % 4 <> 0 end as answered,
               case when b.rn % 10 = 1 then g % (24 + (b.rn / 10) % 60) else g % 72 end as hours
      ) x`);
    progress(`  reviews ${format(end + o.targetReviews)} / ${format(o.reviews)} (${format((performance.now() - t) / 1000)} s for this chunk)`);
  }
  await sql.unsafe("drop table bench_orgs");
  await timed("vacuum analyze", () =>
    sql.unsafe("vacuum analyze public.reviews, private.review_daily_stats, public.organizations, public.organization_status_levels, public.case_studies"),
  );
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

/**
 * The plans of the projection (issue 15), as auto_explain logs them with nested statements: the
 * organization with 100,000 reviews and a typical C holder through project_level_c as the member /
 * a platform admin, the at-risk list computed afresh, and every C holder in one statement.
 */
async function projectionPlans(stack: StackInfo, typical: string, targetReviews: number): Promise<string> {
  const out: string[] = [];
  const explain = async (label: string, who: string | null, statement: string, params: unknown[]) => {
    const notices: string[] = [];
    const sql = postgres(stack.databaseUrl, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
    try {
      await sql.begin(async (tx) => {
        if (label.includes("afresh")) await tx`delete from private.level_c_at_risk_snapshots`;
        await tx.unsafe(`load 'auto_explain'`);
        await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
        await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
        await tx.unsafe(`set local auto_explain.log_analyze = on`);
        await tx.unsafe(`set local client_min_messages = log`);
        if (who) {
          await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: who, role: "authenticated" })}, true)`;
          await tx.unsafe(`set local role authenticated`);
        }
        await tx.unsafe(statement, params as never[]);
        throw new Error("rollback");
      }).catch((e) => {
        if ((e as Error).message !== "rollback") throw e;
      });
    } finally {
      await sql.end({ timeout: 2 });
    }
    // The statement that does the work is the projection's own query (it starts "with point as");
    // its query text is dropped, its plan kept.
    const work = notices.find((n) => n.includes("Query Text: with point as"));
    const lines = (work ?? "(no plan logged)").split("\n");
    const start = lines.findIndex((l) => /\(cost=[\d.]+\.\.[\d.]+ rows=/.test(l));
    const plan = lines.slice(Math.max(0, start));
    const scans = plan.filter((l) => /(Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan) .*on (reviews|review_daily_stats|organizations|organization_status_levels|case_studies)\b/.test(l));
    out.push(`Plan of ${label} (auto_explain, analyze, nested statements; ${/duration: [\d.]+ ms/.exec(work ?? "")?.[0] ?? ""}): ${scans.length} scans of the tables, ${scans.filter((l) => l.includes("Seq Scan")).length} sequential.`);
    // Lines are cut at 200 characters: index conditions of the many-organization statement quote its array of ids.
    out.push(...plan.map((l) => `  ${l.length > 200 ? `${l.slice(0, 199)}…` : l}`));
    out.push("");
  };
  await explain(`project_level_c for the organization with ${count_(targetReviews)} reviews (30 days), as its member`, targetMember, "select public.project_level_c($1, 30)", [target]);
  await explain("project_level_c for a typical C holder (30 days), as a platform admin", benchAdmin, "select public.project_level_c($1, 30)", [typical]);
  await explain("the at-risk list computed afresh (all C holders), as a platform admin", benchAdmin, "select public.list_level_c_at_risk(30, 50, 0)", []);
  return out.join("\n");
}
