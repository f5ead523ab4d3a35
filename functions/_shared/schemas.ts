import { z } from "@hono/zod-openapi";

/**
 * Models several resources share. A resource's own request and response schemas live beside its
 * endpoints (`status-levels/<resource>/schemas.ts`). Request schemas are strict (unknown fields
 * are a 400); response schemas are checked against what is sent (see response-check.ts).
 */

/**
 * Any id Postgres takes as a uuid (8-4-4-4-12 hex digits, whatever its version), lowercased as it
 * is parsed, so one organization makes one cache key whatever case a client sends.
 */
export const Uuid = z.guid({ error: "must be a UUID" }).toLowerCase();
export const Level = z.enum(["A", "B", "C"], { error: "must be A, B or C" });
export const CurrentLevel = z.enum(["0", "A", "B", "C"]);
/**
 * Dates the product means: years 2000 to 2199 as written, with a UTC offset within ±14:00 (the
 * widest in use). Postgres would refuse some of what ISO 8601 allows (year 0000, offsets past
 * ±15:59) with an error the caller could not act on.
 */
export const Timestamp = z.iso
  .datetime({ offset: true, abort: true, error: "must be an ISO 8601 date-time with a time zone, e.g. 2027-05-01T00:00:00Z" })
  .refine((s) => {
    const year = Number(s.slice(0, 4));
    return year >= 2000 && year <= 2199;
  }, { error: "must be a date between the years 2000 and 2199" })
  .refine((s) => {
    const offset = /([+-])(\d{2}):?(\d{2})$/.exec(s);
    return !offset || Number(offset[2]) * 60 + Number(offset[3]) <= 14 * 60;
  }, { error: "must have a UTC offset between -14:00 and +14:00" });

// C0 control characters other than tab, newline and carriage return (NUL among them, which
// Postgres text cannot hold), and UTF-16 halves without their pair.
const controlCharacter = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const isPlainText = (s: string) => !controlCharacter.test(s);
const plainTextError = { error: "must not contain control characters (only tab and line breaks) or unpaired surrogates" };

/** Text a person or a system wrote: bounded, no control characters except tab and line breaks. */
export const plainText = (max: number) =>
  z.string().max(max, { error: `must be at most ${max} characters` }).refine(isPlainText, plainTextError);
// Checked before trimming, which would drop a leading vertical tab or form feed silently.
export const requiredText = (max: number) =>
  z.string().refine(isPlainText, plainTextError).trim().min(1, { error: "must not be empty" }).max(max, { error: `must be at most ${max} characters` });

/** A level as anyone may see it (the public projection). */
export const PublicLevel = z.object({
  level: Level,
  valid_from: Timestamp,
  valid_until: Timestamp.nullable(),
});
