/**
 * Bundles the Worker exactly as `wrangler deploy` would (`--dry-run`, minified) and reports its
 * size. Fails when the gzip size passes the budget (250 KiB), so growth is seen in CI, or when zod's
 * locales are back in it (wrangler.toml's `[alias]` keeps them out: they were 37% of the bundle,
 * which a cold start parses whole; see functions/_shared/zod-locales.ts).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { projectRoot } from "./stack/migrate.ts";

const budgetKiB = 250;

/** Writes the Worker bundle as `wrangler deploy` builds it (minified) into `outdir` (index.js). */
export async function buildBundle(outdir: string): Promise<void> {
  await promisify(execFile)(
    path.join(projectRoot, "node_modules", ".bin", "wrangler"),
    ["deploy", "--dry-run", "--minify", "--outdir", outdir, "--metafile", path.join(outdir, "meta.json")],
    {
      cwd: projectRoot,
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_HIDE_BANNER: "true",
        XDG_CONFIG_HOME: path.join(outdir, "config"),
      },
      timeout: 120_000,
    },
  );
}

export async function measureBundle(): Promise<{ minifiedKiB: number; gzipKiB: number; zodLocales: string[] }> {
  const outdir = await mkdtemp(path.join(os.tmpdir(), "status-levels-bundle-"));
  try {
    await buildBundle(outdir);
    const js = (await readdir(outdir)).filter((f) => f.endsWith(".js"));
    const code = Buffer.concat(await Promise.all(js.map((f) => readFile(path.join(outdir, f)))));
    // esbuild's metafile: every module in the bundle. zod's locale modules other than English.
    const meta = JSON.parse(await readFile(path.join(outdir, "meta.json"), "utf8")) as { inputs: Record<string, unknown> };
    const zodLocales = Object.keys(meta.inputs).filter((input) => /zod\/v4\/locales\/(?!en\.js$)/.test(input));
    return { minifiedKiB: code.length / 1024, gzipKiB: gzipSync(code, { level: 9 }).length / 1024, zodLocales };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { minifiedKiB, gzipKiB, zodLocales } = await measureBundle();
  console.log(`Worker bundle: ${minifiedKiB.toFixed(1)} KiB minified, ${gzipKiB.toFixed(1)} KiB gzip (budget ${budgetKiB} KiB gzip)`);
  if (gzipKiB > budgetKiB) {
    console.error(`the Worker bundle is over budget by ${(gzipKiB - budgetKiB).toFixed(1)} KiB gzip`);
    process.exit(1);
  }
  if (zodLocales.length > 0) {
    console.error(
      `zod's locales are in the bundle again (${zodLocales.length} modules, e.g. ${zodLocales[0]}): ` +
        `wrangler.toml's [alias] for "../locales/index.js" no longer applies (did zod move the import?); see functions/_shared/zod-locales.ts`,
    );
    process.exit(1);
  }
}
