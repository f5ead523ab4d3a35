import { z } from "zod";
import { viewExpiresAt } from "../../_shared/cache.ts";
import { ApiError, badRequest } from "../../_shared/errors.ts";
import { loadOrganizationStatus } from "../../_shared/organization-status.ts";
import { defineRoute } from "../../_shared/route.ts";
import { CurrentLevel, PublicLevel, Uuid } from "../../_shared/schemas.ts";

const labels: Record<string, { text: string; color: string; description: string }> = {
  C: { text: "C · Top level", color: "#8a6d00", description: "level C, the platform's top level" },
  B: { text: "B · Verified", color: "#0b5cad", description: "level B, quality verified by the platform" },
  A: { text: "A · Member", color: "#1a7f37", description: "level A, a paying member" },
  "0": { text: "No level yet", color: "#57606a", description: "no status level yet" },
  unknown: { text: "Not available", color: "#57606a", description: "not available" },
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
    `<desc id="badge-desc">${escapeXml(`This organization holds ${description} on the platform.`)}</desc>`,
    `<rect width="${leftWidth}" height="20" rx="3" fill="#24292f"/>`,
    `<rect x="${leftWidth}" width="${rightWidth}" height="20" rx="3" fill="${color}"/>`,
    `<rect x="${leftWidth}" width="4" height="20" fill="${color}"/>`,
    `<g fill="#ffffff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle" aria-hidden="true">`,
    `<text x="${leftWidth / 2}" y="14">${left}</text>`,
    `<text x="${leftWidth + rightWidth / 2}" y="14">${escapeXml(text)}</text>`,
    `</g></svg>`,
  ].join("");
}

async function etagOf(body: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
  const hex = [...new Uint8Array(digest).slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `"${hex}"`;
}

function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(",").some((tag) => {
    const t = tag.trim().replace(/^W\//, "");
    return t === "*" || t === etag;
  });
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

export const getBadge = defineRoute({
  method: "get",
  path: "/badge/{file}",
  honoPath: "/badge/:file{[^/]+\\.(?:svg|json)}",
  operationId: "getBadge",
  summary: "An organization's public badge, to embed anywhere (`{organization_id}.svg` or `.json`)",
  description:
    "The current level of a public organization as an accessible SVG (or JSON), with ETag and Cache-Control; " +
    "answers 304 to a matching If-None-Match. An unknown or non-public organization gets a neutral " +
    "\"not available\" SVG (or a 404 for .json): the two are indistinguishable.",
  tags: ["badge"],
  auth: "none",
  anyQuery: true,
  params: z.strictObject({ file: z.string().regex(/^[0-9a-fA-F-]{36}\.(svg|json)$/, { error: "must be <organization id>.svg or .json" }) }),
  responses: {
    200: { description: "The badge", contentType: "image/svg+xml", schema: BadgeJson },
    304: { description: "Not modified (If-None-Match matched the ETag)" },
  },
  errors: [400, 404, 503],
  handler: async (c, { params }) => {
    const [id, format] = params.file.split(".") as [string, "svg" | "json"];
    if (!Uuid.safeParse(id).success) throw badRequest("invalid_request", "the badge path must be <organization id>.svg or .json");
    c.set("caller", null);
    let level = "unknown";
    let activeLevels: unknown[] = [];
    let endsAt: number | null = null;
    try {
      const view = await loadOrganizationStatus(c, id.toLowerCase());
      level = String(view.current_level);
      activeLevels = view.active_levels as unknown[];
      endsAt = viewExpiresAt(view);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "organization_not_found")) throw error;
      if (format === "json") throw error;
    }
    const body =
      format === "svg"
        ? renderBadge(level)
        : JSON.stringify({ organization_id: id.toLowerCase(), current_level: level, label: labels[level]!.text, active_levels: activeLevels, svg: `${id.toLowerCase()}.svg` });
    const etag = await etagOf(body);
    c.header("etag", etag);
    c.header("cache-control", badgeCacheControl(endsAt));
    c.header("access-control-allow-origin", "*");
    c.header("cross-origin-resource-policy", "cross-origin");
    c.header("vary", "Accept-Encoding");
    if (matches(c.req.header("if-none-match"), etag)) return c.body(null, 304);
    return c.body(body, 200, { "content-type": format === "svg" ? "image/svg+xml; charset=utf-8" : "application/json; charset=utf-8" });
  },
});
