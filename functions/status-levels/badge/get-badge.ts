import { createRoute, z } from "@hono/zod-openapi";
import { etag, RETAINED_304_HEADERS } from "hono/etag";
import { createApi, problems } from "../../_shared/api.ts";
import { viewExpiresAt } from "../../_shared/cache.ts";
import { ApiError } from "../../_shared/errors.ts";
import { loadOrganizationStatus } from "../../_shared/organization-status.ts";
import { CurrentLevel, PublicLevel, Uuid } from "../../_shared/schemas.ts";

/** What the badge says, and its accessible description (a whole sentence). */
const labels: Record<string, { text: string; color: string; description: string }> = {
  C: { text: "C · Top level", color: "#8a6d00", description: "This organization holds level C, the platform's top level." },
  B: { text: "B · Verified", color: "#0b5cad", description: "This organization holds level B: its quality is verified by the platform." },
  A: { text: "A · Member", color: "#1a7f37", description: "This organization holds level A: it is a paying member of the platform." },
  "0": { text: "No level yet", color: "#57606a", description: "This organization holds no status level on the platform yet." },
  unknown: { text: "Not available", color: "#57606a", description: "No status level can be shown for this organization." },
};

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A flat badge with enough contrast (white on dark, >= 4.5:1) and a text alternative. */
export function renderBadge(level: string): string {
  const { text, color, description } = labels[level] ?? labels.unknown!;
  const left = "status level";
  const charWidth = 6.6;
  const leftWidth = Math.round(left.length * charWidth + 12);
  const rightWidth = Math.round(text.length * charWidth + 12);
  const width = leftWidth + rightWidth;
  const title = escapeXml(`Status level: ${text}`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="20" viewBox="0 0 ${width} 20" role="img" aria-labelledby="badge-title badge-desc">`,
    `<title id="badge-title">${title}</title>`,
    `<desc id="badge-desc">${escapeXml(description)}</desc>`,
    `<rect width="${leftWidth}" height="20" rx="3" fill="#24292f"/>`,
    `<rect x="${leftWidth}" width="${rightWidth}" height="20" rx="3" fill="${color}"/>`,
    `<rect x="${leftWidth}" width="4" height="20" fill="${color}"/>`,
    `<g fill="#ffffff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle" aria-hidden="true">`,
    `<text x="${leftWidth / 2}" y="14">${left}</text>`,
    `<text x="${leftWidth + rightWidth / 2}" y="14">${escapeXml(text)}</text>`,
    `</g></svg>`,
  ].join("");
}

/**
 * Browsers and CDNs may keep the badge for 60 s and serve it stale for 300 s more while they
 * revalidate, but never past the earliest `valid_until` shown on it.
 */
export function badgeCacheControl(endsAt: number | null, now = Date.now()): string {
  const left = endsAt === null ? Infinity : Math.max(0, Math.floor((endsAt - now) / 1000));
  const maxAge = Math.min(60, left);
  const stale = Math.min(300, left - maxAge);
  return `public, max-age=${maxAge}${stale > 0 ? `, stale-while-revalidate=${stale}` : ""}`;
}

const BadgeJson = z.object({
  organization_id: Uuid,
  current_level: CurrentLevel,
  label: z.string(),
  active_levels: z.array(PublicLevel),
  svg: z.string().describe("where the SVG badge of the same organization is"),
});

const route = createRoute({
  method: "get",
  path: "/badge/{file}",
  operationId: "getBadge",
  summary: "An organization's public badge, to embed anywhere (`{organization_id}.svg` or `.json`)",
  description:
    "The current level of a public organization as an accessible SVG (or JSON), with ETag and Cache-Control; " +
    "answers 304 to a matching If-None-Match. An unknown or non-public organization gets a neutral " +
    "\"not available\" SVG (or a 404 for .json): the two are indistinguishable. Query parameters (cache busters) are ignored.",
  tags: ["badge"],
  // hono/etag hashes the body and answers 304 to a matching If-None-Match; the 304 keeps the
  // headers an embedding page needs.
  middleware: [etag({ retainedHeaders: [...RETAINED_304_HEADERS, "access-control-allow-origin", "access-control-expose-headers", "cross-origin-resource-policy", "x-request-id"] })] as const,
  request: {
    params: z.strictObject({ file: z.string().regex(/^[0-9a-fA-F-]{36}\.(svg|json)$/, { error: "must be <organization id>.svg or .json" }) }),
  },
  responses: {
    200: {
      description: "The badge",
      content: { "image/svg+xml": { schema: z.string() }, "application/json": { schema: BadgeJson } },
    },
    304: { description: "Not modified (If-None-Match matched the ETag)" },
    ...problems(400, 404, 503),
  },
});

export const getBadge = createApi().openapi(route, async (c) => {
  const [rawId, format] = c.req.valid("param").file.split(".") as [string, "svg" | "json"];
  const parsedId = Uuid.safeParse(rawId);
  if (!parsedId.success) throw new ApiError(400, "invalid_request", "the badge path must be <organization id>.svg or .json");
  const id = parsedId.data;
  c.set("caller", null);
  let level = "unknown";
  let activeLevels: z.infer<typeof PublicLevel>[] = [];
  let endsAt: number | null = null;
  try {
    const view = await loadOrganizationStatus(c, id);
    level = view.current_level;
    activeLevels = view.active_levels.map(({ level, valid_from, valid_until }) => ({ level, valid_from, valid_until }));
    endsAt = viewExpiresAt(view);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "organization_not_found")) throw error;
    if (format === "json") throw error;
  }
  c.header("cache-control", badgeCacheControl(endsAt));
  c.header("cross-origin-resource-policy", "cross-origin");
  c.header("vary", "Accept-Encoding");
  if (format === "svg") return c.body(renderBadge(level), 200, { "content-type": "image/svg+xml; charset=utf-8" });
  return c.json({ organization_id: id, current_level: level as z.infer<typeof CurrentLevel>, label: labels[level]!.text, active_levels: activeLevels, svg: `${id}.svg` }, 200);
});
