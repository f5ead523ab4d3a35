import { z } from "zod";
import { defineRoute } from "../../_shared/route.ts";
import { Level } from "../../_shared/schemas.ts";

/** The level catalog: what each level means, how it is obtained, how long it lasts. */
export const levelCatalog = {
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
        { key: "active_level_b", description: "An active level B", threshold: true },
        { key: "reviews_last_12_months", description: "At least 15 published reviews in the last 12 months", threshold: 15 },
        { key: "response_rate_last_90_days", description: "At least 85 % of the last 90 days' reviews answered", threshold: 85 },
        { key: "avg_response_time_last_90_days", description: "Average response time below 48 hours over the last 90 days", threshold: 48 },
        { key: "published_case_studies", description: "At least one published case study", threshold: 1 },
      ],
    },
  ],
} as const;

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
      criteria: z.array(z.object({ key: z.string(), description: z.string(), threshold: z.union([z.number(), z.boolean()]) })),
    }),
  ),
});

export const getLevelCatalog = defineRoute({
  method: "get",
  path: "/levels",
  operationId: "getLevelCatalog",
  summary: "The level catalog (public)",
  tags: ["levels"],
  auth: "none",
  responses: { 200: { description: "Every level and how it is obtained", schema: Catalog } },
  errors: [],
  handler: (c) => {
    c.header("cache-control", "public, max-age=3600");
    return c.json(levelCatalog);
  },
});
