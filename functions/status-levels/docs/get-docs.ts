import type { Hono } from "hono";
import type { AppEnv } from "../../_shared/app-env.ts";

/**
 * GET /docs: the API reference page, Swagger UI rendering /status-levels/openapi.json (as
 * FastAPI's /docs did for the service we replaced). Not an API operation, so not in the document.
 *
 * Swagger UI's script and styles are static assets of this Worker (wrangler.toml `[assets]`, built
 * from the pinned `swagger-ui-dist` by scripts/assets/build.ts) under /status-levels/docs/: no CDN,
 * so the page works offline. The page runs no inline script (the initializer is /docs/init.js)
 * and carries its own Content-Security-Policy: scripts, styles, fonts and requests from this
 * origin only; images also as `data:` URLs (Swagger UI's icons are in its stylesheet as such).
 */

const assets = "/status-levels/docs";

const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  // The document, and "Try it out" requests to this API.
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Status levels API reference</title>
  <link rel="stylesheet" href="${assets}/swagger-ui.css">
  <link rel="stylesheet" href="${assets}/index.css">
  <link rel="icon" type="image/png" href="${assets}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="${assets}/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"><noscript>The API reference needs JavaScript; the OpenAPI document is at <a href="/status-levels/openapi.json">/status-levels/openapi.json</a>.</noscript></div>
  <script src="${assets}/swagger-ui-bundle.js"></script>
  <script src="${assets}/init.js"></script>
</body>
</html>
`;

const initializer = `"use strict";
// Starts Swagger UI on the page at /status-levels/docs (served as a file: the page allows no inline script).
window.ui = SwaggerUIBundle({
  url: "/status-levels/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  displayOperationId: true,
  displayRequestDuration: true,
  // No call to the public validator service: the page makes no request off this origin.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
`;

/** Registers the page and its initializer on the API (outside the typed chain: not operations). */
export function serveDocs(api: Hono<AppEnv>): void {
  api.get("/docs", (c) => {
    c.header("content-security-policy", contentSecurityPolicy);
    c.header("cache-control", "public, max-age=300");
    return c.html(page);
  });
  api.get("/docs/", (c) => c.redirect("/status-levels/docs", 301));
  api.get("/docs/init.js", (c) => {
    c.header("content-type", "text/javascript; charset=utf-8");
    c.header("cache-control", "public, max-age=300");
    return c.body(initializer);
  });
}
