import { z } from "@hono/zod-openapi";
import { isPlainText, plainText, requiredText, Timestamp, Uuid } from "../../_shared/schemas.ts";

/** The level an upgrade request asks for (the name the platform's pages have always used). */
export const TargetLevel = z.enum(["B", "C"], { error: "must be B or C" });
export const RequestStatus = z.enum(["pending", "approved", "rejected", "cancelled"]);

export const RequestParams = z.strictObject({ id: Uuid });

export const EvidenceUrl = z
  .url({ protocol: /^https$/, hostname: z.regexes.domain, error: "must be an https:// URL" })
  .max(2048, { error: "must be at most 2048 characters" })
  .refine((s) => isPlainText(s) && !/\s/.test(s), { error: "must not contain spaces or control characters" })
  // Credentials (`https://user:pass@host/`) would be shown to everyone who reviews the request.
  .refine((s) => !/^https:\/\/[^/?#]*@/i.test(s), { error: "must not contain a user name or password" });

export const CreateUpgradeRequestBody = z.strictObject({
  organization_id: Uuid,
  target_level: TargetLevel,
  message: plainText(2000).optional(),
  evidence_urls: z.array(EvidenceUrl).max(10, { error: "at most 10 evidence links" }).default([]),
});

export const ApproveBody = z.strictObject({ notes: plainText(2000).optional() });
export const RejectBody = z.strictObject({ note: requiredText(2000) });

export const UpgradeRequest = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    target_level: TargetLevel,
    status: RequestStatus,
    message: z.string().nullable(),
    evidence_urls: z.array(z.string()),
    requested_by: Uuid.nullable().describe("null once the requester's account was deleted"),
    created_at: Timestamp,
    decided_by: Uuid.nullable(),
    decided_at: Timestamp.nullable(),
    decision_note: z.string().nullable(),
    granted_status_level_id: Uuid.nullable(),
  })
  .openapi("UpgradeRequest");

/** The pending request an organization's status shows. */
export const PendingUpgradeRequest = z.object({ id: Uuid, target_level: TargetLevel, created_at: Timestamp, requested_by: Uuid.nullable() });
