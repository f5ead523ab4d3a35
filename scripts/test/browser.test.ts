import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../stack/migrate.ts";
import { freePort } from "../stack/net.ts";
import { startWorker, workerVars, type RunningWorker } from "../stack/worker.ts";
import { fixtures, stack } from "./node-harness.ts";

/**
 * A real browser against the real Worker (wrangler dev): a page on another origin calls the
 * status endpoint with a bearer token (so the CORS preflight must pass) and embeds the SVG badge.
 */
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const artifacts = path.join(projectRoot, "test-artifacts");

let worker: RunningWorker;
let browser: Browser;
let pageServer: http.Server;
let allowedOrigin: string;
let otherOrigin: string;

function page(api: string, orgId: string, token: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Partner site</title></head>
<body style="font-family: sans-serif; padding: 24px">
  <h1>Alpine Dairy on the platform</h1>
  <p>Level: <strong id="level">loading</strong></p>
  <p id="error"></p>
  <img id="badge" src="${api}/status-levels/badge/${orgId}.svg" alt="status level badge">
  <script>
    fetch(${JSON.stringify(`${api}/status-levels/organizations/${orgId}`)}, { headers: { authorization: "Bearer ${token}" } })
      .then((res) => res.json())
      .then((view) => { document.getElementById("level").textContent = view.current_level + " (" + view.visibility + ")"; })
      .catch((error) => { document.getElementById("level").textContent = "blocked"; document.getElementById("error").textContent = String(error); });
  </script>
</body></html>`;
}

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH`);
  }
  const pagePort = await freePort();
  allowedOrigin = `http://localhost:${pagePort}`;
  otherOrigin = `http://127.0.0.2:${pagePort}`;
  worker = await startWorker({
    vars: workerVars(stack, { CORS_ALLOWED_ORIGINS: allowedOrigin, CACHE_KEY_PREFIX: `browser-${Date.now()}`, LOG_LEVEL: "warn" }),
  });
  const orgId = await fixtures.organization({ name: "Alpine Dairy" });
  await fixtures.levelRow(orgId, "B");
  const member = await fixtures.member(orgId, "member");
  const html = page(worker.url, orgId, member.token);
  pageServer = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => pageServer.listen(pagePort, "0.0.0.0", resolve));
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
  await worker?.stop();
});

describe("a browser page on another origin", () => {
  it("calls the status endpoint with a bearer token (CORS preflight passes) and shows the SVG badge", async () => {
    const context = await browser.newContext();
    const tab = await context.newPage();
    // An Authorization header makes this a non-simple request: it only succeeds after a preflight.
    await tab.goto(allowedOrigin);
    await expect.poll(() => tab.textContent("#level"), { timeout: 15_000 }).toBe("B (full)");
    const badge = await tab.evaluate(async () => {
      const img = document.getElementById("badge") as HTMLImageElement;
      if (!img.complete) await new Promise((resolve) => img.addEventListener("load", resolve, { once: true }));
      return { width: img.naturalWidth, height: img.naturalHeight };
    });
    expect(badge.height).toBe(20);
    expect(badge.width).toBeGreaterThan(100);
    await mkdir(artifacts, { recursive: true });
    await tab.screenshot({ path: path.join(artifacts, "browser-status-and-badge.png") });
    await context.close();
  });

  it("is blocked from an origin that is not allowed", async () => {
    const context = await browser.newContext();
    const tab = await context.newPage();
    await tab.goto(otherOrigin);
    await expect.poll(() => tab.textContent("#level"), { timeout: 15_000 }).toBe("blocked");
    // The badge is meant to be embedded anywhere: it still shows.
    const width = await tab.evaluate(async () => {
      const img = document.getElementById("badge") as HTMLImageElement;
      if (!img.complete) await new Promise((resolve) => img.addEventListener("load", resolve, { once: true }));
      return img.naturalWidth;
    });
    expect(width).toBeGreaterThan(100);
    await context.close();
  });
});
