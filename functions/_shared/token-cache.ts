/**
 * Tokens already verified in this isolate, until they expire: a cache hit on the status endpoint
 * then costs no signature check. Keyed by the whole token string, so only the exact bytes that
 * were verified are trusted; bounded, oldest entries dropped first.
 */
const maxEntries = 2000;
const verified = new Map<string, { value: unknown; expiresAt: number }>();

export function cachedVerification<T>(token: string): T | undefined {
  const entry = verified.get(token);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    verified.delete(token);
    return undefined;
  }
  return entry.value as T;
}

export function rememberVerification(token: string, value: unknown, expiresAtSeconds: number): void {
  if (verified.size >= maxEntries) verified.delete(verified.keys().next().value as string);
  verified.set(token, { value, expiresAt: expiresAtSeconds * 1000 });
}
