/**
 * What `z.locales` holds in this Worker: English only. zod's classic API exports every locale's
 * messages as `z.locales` (63 modules, 258 KiB of a 688 KiB minified bundle), and since
 * `@hono/zod-openapi` hands `z` to a function as a value, the bundler must keep all of them. The
 * Workers runtime parses every byte of the bundle at a cold start, so wrangler.toml's `[alias]`
 * puts this module in place of zod's `../locales/index.js` (only zod imports that path; the
 * bundle check verifies that no other locale is in the bundle). zod's messages stay English:
 * its classic API configures `en` from its own module, not from here.
 */
export { default as en } from "zod/v4/locales/en.js";
