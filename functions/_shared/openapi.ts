import { z } from "zod";
import type { AnyRoute } from "./route.ts";
import { Problem } from "./schemas.ts";

type JsonSchema = Record<string, unknown>;

/** JSON Schema 2020-12 (what OpenAPI 3.1 uses) of a zod schema, as the client sends or receives it. */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

function parameters(schema: z.ZodType | undefined, location: "path" | "query"): JsonSchema[] {
  if (!schema) return [];
  const object = jsonSchema(schema, "input") as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === "path" || (object.required ?? []).includes(name),
    schema: property,
    ...(typeof property.description === "string" ? { description: property.description } : {}),
  }));
}

const errorDescriptions: Record<number, string> = {
  400: "Bad input (problem JSON lists each issue)",
  401: "No, expired or invalid token / signature",
  403: "Not allowed",
  404: "Unknown, or not visible to the caller",
  409: "Conflict with the current state",
  413: "Body too large",
  415: "Body is not JSON",
  422: "A business rule refused it",
  429: "Rate limited (see Retry-After)",
  503: "A dependency is down (see Retry-After)",
};

/** The OpenAPI 3.1 document, generated from the same route definitions and zod schemas that validate requests. */
export function buildOpenApiDocument(routes: readonly AnyRoute[], version: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const responses: Record<string, unknown> = {};
    for (const [status, doc] of Object.entries(route.responses)) {
      responses[status] = {
        description: doc.description,
        ...(doc.headers ? { headers: Object.fromEntries(Object.entries(doc.headers).map(([h, d]) => [h, { description: d, schema: { type: "string" } }])) } : {}),
        ...(doc.schema ? { content: { [doc.contentType ?? "application/json"]: { schema: jsonSchema(doc.schema, "output") } } } : {}),
      };
    }
    for (const status of route.errors) {
      responses[String(status)] = {
        description: errorDescriptions[status] ?? "Error",
        content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
      };
    }
    const security =
      route.auth === "required" || route.auth === "user-or-service" ? [{ bearerAuth: [] }]
      : route.auth === "optional" ? [{ bearerAuth: [] }, {}]
      : route.auth === "signature" ? [{ webhookSignature: [], webhookTimestamp: [] }]
      : [];
    (paths[route.path] ??= {})[route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: route.tags,
      security,
      parameters: [...parameters(route.params, "path"), ...parameters(route.query, "query")],
      ...(route.body ?? route.rawBody
        ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema((route.body ?? route.rawBody)!, "input") } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Status levels",
      version,
      description:
        "Organizations earn levels A (subscription), B (verified, 18 months) and C (top level). Errors are RFC 9457 " +
        "problem documents with a stable `code`.",
    },
    servers: [{ url: "/status-levels" }],
    tags: [
      { name: "organizations" }, { name: "levels" }, { name: "upgrade requests" }, { name: "admin" },
      { name: "badge" }, { name: "subscriptions" }, { name: "notifications" }, { name: "service" },
    ],
    paths,
    components: {
      schemas: { Problem: jsonSchema(Problem, "output") },
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A Supabase Auth access token" },
        webhookSignature: { type: "apiKey", in: "header", name: "x-status-levels-signature", description: "hex HMAC-SHA256(secret, timestamp + \".\" + raw body)" },
        webhookTimestamp: { type: "apiKey", in: "header", name: "x-status-levels-timestamp", description: "Unix seconds; older than 5 minutes is refused" },
      },
    },
  };
}
