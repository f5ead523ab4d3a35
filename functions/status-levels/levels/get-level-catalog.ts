import { createRoute, z } from "@hono/zod-openapi";
import { createApi, json, noQueryParameters, problems } from "../../_shared/api.ts";
import { Level } from "../../_shared/schemas.ts";

const Catalog = z.object({
  precedence: z.array(z.enum(["C", "B", "A", "0"])),
  levels: z.array(
    z.object({
      level: Level,
      name: z.string(),
      meaning: z.string(),
      obtained: z.string(),
      validity: z.string(),
      requires: z.array(Level),
      criteria: z.array(z.object({ key: z.string().describe("the criterion's name in `level_c_progress` and `level_c_checklist`"), description: z.string(), needed: z.union([z.number(), z.boolean()]) })),
    }),
  ),
});

/** The level catalog: what each level means, how it is obtained, how long it lasts. */
export const levelCatalog: z.infer<typeof Catalog> = {
  precedence: ["C", "B", "A", "0"],
  levels: [
    {
      level: "A",
      name: "Member",
      meaning: "A paying member of the platform.",
      obtained: "Comes with an active paid subscription.",
      validity: "Until the paid period ends; 14 more days of grace when a payment fails.",
      requires: [],
      criteria: [],
    },
    {
      level: "B",
      name: "Verified",
      meaning: "Quality verified by the platform.",
      obtained: "Granted by platform admins after verification, usually by approving an upgrade request.",
      validity: "18 months from the grant; renewable by re-verification (requests open 60 days before the end).",
      requires: [],
      criteria: [],
    },
    {
      level: "C",
      name: "Top level",
      meaning: "The platform's top level, earned on measured criteria.",
      obtained: "Granted by platform admins when every criterion below holds.",
      validity: "Permanent until revoked.",
      requires: ["B"],
      criteria: [
        { key: "has_active_b", description: "An active level B", needed: true },
        { key: "review_count", description: "At least 15 published reviews in the last 12 months", needed: 15 },
        { key: "response_rate", description: "At least 85 % of the last 90 days' reviews answered", needed: 85 },
        { key: "avg_response_hours", description: "Average response time below 48 hours over the last 90 days", needed: 48 },
        { key: "public_cases", description: "At least one published case study", needed: 1 },
      ],
    },
  ],
};

const route = createRoute({
  method: "get",
  path: "/levels",
  operationId: "getLevelCatalog",
  summary: "The level catalog (public)",
  tags: ["levels"],
  
  middleware: [noQueryParameters] as const,
  responses: { 200: json(Catalog, "Every level and how it is obtained"), ...problems(400) },
});

export const getLevelCatalog = createApi().openapi(route, (c) => {
  c.header("cache-control", "public, max-age=3600");
  return c.json(levelCatalog, 200);
});
