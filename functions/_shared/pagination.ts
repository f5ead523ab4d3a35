import { z } from "@hono/zod-openapi";
import type { Context } from "hono";

/** `limit` and `offset` query parameters, with the endpoint's default page size. */
export const paginationQuery = (defaultLimit: number) =>
  z.strictObject({
    limit: z.coerce.number<string | number>({ error: "must be a number" }).int().min(1).max(200).default(defaultLimit)
      .openapi({ param: { description: `page size (default ${defaultLimit}, at most 200)` } }),
    offset: z.coerce.number<string | number>({ error: "must be a number" }).int().min(0).max(1_000_000).default(0)
      .openapi({ param: { description: "how many to skip" } }),
  });

export const pageHeaders = {
  "x-total-count": "how many there are in all",
  link: 'RFC 8288 links to the `first`, `prev`, `next` and `last` pages, e.g. `</status-levels/...?limit=50&offset=50>; rel="next"`',
};

/**
 * A list answers a JSON array of one page (as the service we replaced did); the total goes in
 * `X-Total-Count` and the neighbouring pages in `Link`, with the request's other parameters kept.
 * Returns the page's items.
 */
export function pageItems<T>(c: Context, page: { total: number; items: T[] }, { limit, offset }: { limit: number; offset: number }): T[] {
  setPageHeaders(c, { total: page.total, limit, offset });
  c.header("cache-control", "private, no-cache");
  return page.items;
}

function setPageHeaders(c: Context, { total, limit, offset }: { total: number; limit: number; offset: number }): void {
  c.header("x-total-count", String(total));
  const url = new URL(c.req.url);
  const at = (o: number) => {
    url.searchParams.set("limit", String(limit));
    url.searchParams.set("offset", String(o));
    return `<${url.pathname}${url.search}>`;
  };
  const last = total === 0 ? 0 : Math.floor((total - 1) / limit) * limit;
  const links = [`${at(0)}; rel="first"`];
  if (offset > 0) links.push(`${at(Math.max(0, Math.min(offset - limit, last)))}; rel="prev"`);
  if (offset + limit < total) links.push(`${at(offset + limit)}; rel="next"`);
  links.push(`${at(last)}; rel="last"`);
  c.header("link", links.join(", "));
}
