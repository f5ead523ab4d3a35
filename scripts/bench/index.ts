/**
 * `npm run bench`: the benchmarks of the issues, each against a fresh local stack, printing a
 * table of figures and ratios to a baseline measured in the same run.
 *   npm run bench                 all of them (db, http, job)
 *   npm run bench -- http job     some of them
 *   BENCH_SCALE=0.01 npm run bench -- db    a smaller data set (quick check of the script itself)
 */
import { startStack } from "../stack/stack.ts";
import { defaultDbBench, runDbBench } from "./db.ts";
import { defaultHttpBench, runHttpBench } from "./http.ts";
import { defaultJobBench, runJobBench } from "./job.ts";
import { defaultProfile, runProfile } from "./profile.ts";
import { progress } from "./report.ts";

const benches = {
  db: async (scale: number) => {
    const stack = await startStack({ mode: "test" });
    try {
      return await runDbBench(stack.info, {
        ...defaultDbBench,
        organizations: Math.max(10, Math.round(defaultDbBench.organizations * scale)),
        reviews: Math.max(1000, Math.round(defaultDbBench.reviews * scale)),
        targetReviews: Math.max(100, Math.round(defaultDbBench.targetReviews * scale)),
      });
    } finally {
      await stack.stop();
    }
  },
  http: async (scale: number) => {
    const stack = await startStack({ mode: "test" });
    try {
      const durationScale = Math.min(1, scale * 10);
      return await runHttpBench(stack.info, {
        ...defaultHttpBench,
        durationSeconds: Math.max(2, Math.round(defaultHttpBench.durationSeconds * durationScale)),
        missOrganizations: Math.max(3000, Math.round(defaultHttpBench.missOrganizations * durationScale)),
      });
    } finally {
      await stack.stop();
    }
  },
  /** Not part of `npm run bench` without names: a CPU profile of the Worker's hit and miss (issue 14). */
  profile: async (scale: number) => {
    const stack = await startStack({ mode: "test" });
    try {
      return await runProfile(stack.info, { ...defaultProfile, durationSeconds: Math.max(2, Math.round(defaultProfile.durationSeconds * Math.min(1, scale * 10))) });
    } finally {
      await stack.stop();
    }
  },
  job: async (scale: number) => {
    const stack = await startStack({ mode: "test" });
    try {
      return await runJobBench(stack.info, {
        ...defaultJobBench,
        levelRows: Math.max(1000, Math.round(defaultJobBench.levelRows * scale)),
        dueNotices: Math.max(100, Math.round(defaultJobBench.dueNotices * scale)),
        levelCHolders: Math.max(50, Math.round(defaultJobBench.levelCHolders * scale)),
        levelCCandidates: Math.max(50, Math.round(defaultJobBench.levelCCandidates * scale)),
      });
    } finally {
      await stack.stop();
    }
  },
};

const requested = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const names = (requested.length ? requested : Object.keys(benches).filter((n) => n !== "profile")) as Array<keyof typeof benches>;
for (const name of names) {
  if (!(name in benches)) {
    console.error(`unknown benchmark "${name}"; one of: ${Object.keys(benches).join(", ")}`);
    process.exit(2);
  }
}
const scale = Number(process.env.BENCH_SCALE ?? 1);
process.env.STACK_QUIET ??= "1";
for (const name of names) {
  progress(`=== ${name} benchmark${scale !== 1 ? ` (scale ${scale})` : ""}`);
  const started = Date.now();
  const report = await benches[name](scale);
  console.log(`\n## ${name} (${Math.round((Date.now() - started) / 1000)} s)\n\n${report}\n`);
}
process.exit(0);
