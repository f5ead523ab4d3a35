/**
 * Writes the Worker's static assets (wrangler.toml `[assets]`) into `dist/assets` (gitignored):
 * Swagger UI's script and styles for the API reference page at /status-levels/docs, copied from
 * the pinned `swagger-ui-dist` package, so the page needs no CDN and works offline.
 *
 * Run by wrangler's `[build] command` before `wrangler dev` and `wrangler deploy` (so by
 * `npm run dev` and `npm run bundle:check` too), and by the tests' global setup.
 */
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const assetsDir = path.join(root, "dist", "assets");
/** Where the page's files are served: the same path as the page, so one prefix covers both. */
export const docsAssetsPath = "/status-levels/docs/";

/** What the page loads (no source maps, no standalone preset: the page uses the base layout). */
const swaggerFiles = ["swagger-ui-bundle.js", "swagger-ui.css", "index.css", "favicon-32x32.png", "favicon-16x16.png", "LICENSE", "NOTICE"];

/**
 * Static assets bypass the Worker's middleware: these headers are the ones they get instead
 * (their caching is the platform's default: revalidated with an ETag).
 */
const headersFile = `${docsAssetsPath}*
  X-Content-Type-Options: nosniff
  Cross-Origin-Resource-Policy: same-origin
`;

async function sameFile(from: string, to: string): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([stat(from), stat(to)]);
    return a.size === b.size && a.mtimeMs <= b.mtimeMs;
  } catch {
    return false;
  }
}

export async function buildAssets(): Promise<{ dir: string; files: string[]; swaggerUiVersion: string }> {
  const packageJson = createRequire(import.meta.url).resolve("swagger-ui-dist/package.json");
  const source = path.dirname(packageJson);
  const { version } = JSON.parse(await readFile(packageJson, "utf8")) as { version: string };
  const target = path.join(assetsDir, ...docsAssetsPath.split("/").filter(Boolean));
  await mkdir(target, { recursive: true });
  for (const file of swaggerFiles) {
    const from = path.join(source, file);
    const to = path.join(target, file);
    if (await sameFile(from, to)) continue;
    // Written aside, then renamed: two builds at once (the tests' projects) never leave half a file.
    const partial = `${to}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`;
    await copyFile(from, partial);
    await rename(partial, to);
  }
  const headersPath = path.join(assetsDir, "_headers");
  if ((await readFile(headersPath, "utf8").catch(() => "")) !== headersFile) await writeFile(headersPath, headersFile);
  return { dir: assetsDir, files: swaggerFiles.map((f) => docsAssetsPath + f), swaggerUiVersion: version };
}

/** Removes what an earlier build wrote (e.g. a file no longer shipped). */
export async function cleanAssets(): Promise<void> {
  await rm(assetsDir, { recursive: true, force: true });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes("--clean")) await cleanAssets();
  const { dir, files, swaggerUiVersion } = await buildAssets();
  console.log(`static assets: ${files.length} file(s) of swagger-ui-dist ${swaggerUiVersion} in ${path.relative(root, dir)}`);
}
