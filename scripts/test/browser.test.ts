import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { build } from "esbuild";
import { chromium, type Browser, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../stack/migrate.ts";
import { freePort } from "../stack/net.ts";
import { startWorker, workerVars, type RunningWorker } from "../stack/worker.ts";
import { fixtures, stack } from "./node-harness.ts";

/**
 * A real browser against the real Worker (wrangler dev): a partner page on another origin, built
 * from scripts/test/partner-page/main.ts with the typed client (functions/client.ts), does what the
 * platform's StatusBadge and UpgradeRequestForm did (a bearer token, so every call needs the CORS
 * preflight) and embeds the SVG badge; and the API reference page at /status-levels/docs renders
 * offline under its Content-Security-Policy.
 */
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const artifacts = path.join(projectRoot, "test-artifacts");
/** Published reviews seeded in the last 12 months: the page must show this count. */
const seededReviews = 7;

let worker: RunningWorker;
let browser: Browser;
let pageServer: http.Server;
let allowedOrigin: string;
let otherOrigin: string;
let partnerScriptKiB: number;

function partnerPage(api: string, orgId: string, token: string): string {
  const attr = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Partner site</title></head>
<body style="font-family: sans-serif; padding: 24px" data-api="${attr(api)}" data-org="${attr(orgId)}" data-token="${attr(token)}">
  <h1>Alpine Dairy on the platform</h1>
  <p>Level: <strong id="level">loading</strong> <img id="badge" src="${attr(`${api}/status-levels/badge/${orgId}.svg`)}" alt="status level badge"></p>
  <p>Published reviews in the last 12 months: <strong id="review-count">loading</strong></p>
  <p>Pending upgrade request: <strong id="pending">loading</strong></p>
  <p id="error"></p>
  <form id="upgrade-form">
    <label>Ask for level <select id="target-level"><option value="B">B</option><option value="C">C</option></select></label>
    <button type="submit">Request upgrade</button>
  </form>
  <p>Request: level <strong id="request-target-level">-</strong>, <strong id="request-status">not sent</strong></p>
  <p id="request-error"></p>
  <script type="module" src="/partner.js"></script>
</body></html>`;
}

function launchArgs(): string[] {
  return ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
}

async function imageSize(tab: import("playwright-core").Page): Promise<{ width: number; height: number }> {
  return tab.evaluate(async () => {
    const img = document.getElementById("badge") as HTMLImageElement;
    if (!img.complete) await new Promise((resolve) => img.addEventListener("load", resolve, { once: true }));
    return { width: img.naturalWidth, height: img.naturalHeight };
  });
}

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH`);
  }
  const pagePort = await freePort();
  allowedOrigin = `http://localhost:${pagePort}`;
  otherOrigin = `http://127.0.0.2:${pagePort}`;
  const [started, bundle] = await Promise.all([
    startWorker({
      vars: workerVars(stack, {
        CORS_ALLOWED_ORIGINS: allowedOrigin,
        CACHE_KEY_PREFIX: `browser-${Date.now()}`,
        LOG_LEVEL: "warn",
        CHECK_RESPONSES: "true",
      }),
    }),
    build({
      entryPoints: [path.join(projectRoot, "scripts", "test", "partner-page", "main.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      write: false,
      logLevel: "silent",
    }),
  ]);
  worker = started;
  const script = bundle.outputFiles[0]!.contents;
  partnerScriptKiB = script.length / 1024;

  // An organization with level A and a known number of published reviews; its owner uses the page.
  const orgId = await fixtures.organization({ name: "Alpine Dairy" });
  const subscription = await fixtures.subscription(orgId);
  await fixtures.levelRow(orgId, "A", { subscriptionId: subscription.id });
  const day = 86_400_000;
  await fixtures.reviews(orgId, Array.from({ length: seededReviews }, (_, i) => ({ publishedAt: new Date(Date.now() - (i + 1) * 10 * day) })));
  const owner = await fixtures.member(orgId, "owner");
  const html = partnerPage(worker.url, orgId, owner.token);
  pageServer = http.createServer((req, res) => {
    if (req.url === "/partner.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      res.end(script);
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => pageServer.listen(pagePort, "0.0.0.0", resolve));
  browser = await chromium.launch({ executablePath: chromiumPath, args: launchArgs() });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
  await worker?.stop();
});

describe("a partner page on another origin, using the typed client", () => {
  it("shows the status (CORS preflight passes), the level C progress and the SVG badge, then posts an upgrade request and shows it", async () => {
    const context = await browser.newContext();
    const tab = await context.newPage();
    // An Authorization header makes every call non-simple: each succeeds only after a preflight.
    await tab.goto(allowedOrigin);
    await expect.poll(() => tab.textContent("#level"), { timeout: 15_000 }).toBe("A (full)");
    expect(await tab.textContent("#review-count")).toBe(String(seededReviews));
    expect(await tab.textContent("#pending")).toBe("none");
    const badge = await imageSize(tab);
    expect(badge.height).toBe(20);
    expect(badge.width).toBeGreaterThan(100);

    // The old UpgradeRequestForm: POST /upgrade-requests {organization_id, target_level: "B"} as the owner.
    await tab.selectOption("#target-level", "B");
    await tab.click("button[type=submit]");
    await expect.poll(() => tab.textContent("#request-status"), { timeout: 15_000 }).toBe("pending");
    expect(await tab.textContent("#request-target-level")).toBe("B");
    expect(await tab.textContent("#request-error")).toBe("");
    await expect.poll(() => tab.textContent("#pending"), { timeout: 15_000 }).toBe("B requested");

    await mkdir(artifacts, { recursive: true });
    await tab.screenshot({ path: path.join(artifacts, "browser-partner-page.png") });
    // The page's script is the typed client with hono/client and nothing of the Worker.
    expect(partnerScriptKiB).toBeLessThan(30);
    await context.close();
  });

  it("is blocked from an origin that is not allowed", async () => {
    const context = await browser.newContext();
    const tab = await context.newPage();
    await tab.goto(otherOrigin);
    await expect.poll(() => tab.textContent("#level"), { timeout: 15_000 }).toBe("blocked");
    // The badge is meant to be embedded anywhere: it still shows.
    expect((await imageSize(tab)).width).toBeGreaterThan(100);
    await context.close();
  });
});

describe("the API reference page at /status-levels/docs", () => {
  /** A context where every host but the Worker's is unreachable; returns what was attempted. */
  async function offlineContext(): Promise<{ context: BrowserContext; offHost: string[] }> {
    const context = await browser.newContext();
    const workerOrigin = new URL(worker.url).origin;
    const offHost: string[] = [];
    await context.route(
      (url) => url.origin !== workerOrigin && url.protocol !== "data:",
      (route) => {
        offHost.push(route.request().url());
        return route.abort("internetdisconnected");
      },
    );
    return { context, offHost };
  }

  it("renders every operation of the OpenAPI document with files from the Worker only, and no CSP violation", async () => {
    const openapi = (await (await fetch(`${worker.url}/status-levels/openapi.json`)).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
    const operationIds = Object.values(openapi.paths).flatMap((ops) => Object.values(ops).map((op) => op.operationId)).sort();
    expect(operationIds.length).toBeGreaterThanOrEqual(21);

    const { context, offHost } = await offlineContext();
    const tab = await context.newPage();
    const consoleErrors: string[] = [];
    tab.on("console", (message) => {
      if (message.type() === "error" || /Content Security Policy/i.test(message.text())) consoleErrors.push(message.text());
    });
    tab.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));
    await tab.addInitScript(() => {
      const w = window as unknown as { cspViolations: string[] };
      w.cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) => w.cspViolations.push(`${e.effectiveDirective} ${e.blockedURI}`));
    });

    const response = await tab.goto(`${worker.url}/status-levels/docs`);
    expect(response!.status()).toBe(200);
    const csp = response!.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");

    await tab.waitForSelector(".opblock", { timeout: 20_000 });
    await expect.poll(() => tab.locator(".opblock").count()).toBe(operationIds.length);
    const listed = (await tab.locator(".opblock-summary-operation-id").allTextContents()).map((s) => s.trim()).sort();
    expect(listed).toEqual(operationIds);

    // Open one operation and send it with "Try it out": the request goes to this API, same origin.
    const catalog = tab.locator(".opblock", { has: tab.locator(".opblock-summary-operation-id", { hasText: /^getLevelCatalog$/ }) });
    await catalog.locator(".opblock-summary-control").click();
    await catalog.getByRole("button", { name: "Try it out" }).click();
    await catalog.getByRole("button", { name: "Execute" }).click();
    await expect.poll(() => catalog.locator(".live-responses-table tr.response .response-col_status").first().textContent(), { timeout: 15_000 }).toBe("200");

    await mkdir(artifacts, { recursive: true });
    await tab.screenshot({ path: path.join(artifacts, "browser-api-docs.png"), fullPage: true });
    expect(await tab.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(offHost).toEqual([]);

    // The policy is in force (and the checks above would see a violation): an inline script is refused.
    const ran = await tab.evaluate(async () => {
      const script = document.createElement("script");
      script.textContent = "window.inlineRan = true";
      document.body.append(script);
      await new Promise((resolve) => setTimeout(resolve, 100));
      return (window as unknown as { inlineRan?: boolean }).inlineRan === true;
    });
    expect(ran).toBe(false);
    expect(await tab.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([
      expect.stringMatching(/^script-src-elem inline$/),
    ]);
    await context.close();
  });
});
