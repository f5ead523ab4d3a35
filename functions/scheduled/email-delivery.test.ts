import { describe, expect, it } from "vitest";
import { CallPacer, claimSize, EMAIL_CLAIM_MAX, EMAIL_LEASE_MS, emailsThatFit, worstCaseMs, type DeliveryPlan } from "./email-delivery.ts";

/** The sizing of e-mail claims (pure functions; the daily job's tests run them against the recorder). */

const single: DeliveryPlan = { perCall: 1, concurrency: 6, ratePerSecond: 5, timeoutMs: 10_000, provider: true };
const batches: DeliveryPlan = { perCall: 100, concurrency: 6, ratePerSecond: 5, timeoutMs: 10_000, provider: true };

describe("e-mail delivery: claim sizing", () => {
  it("bounds a batch by its calls' timeouts, `concurrency` at a time, plus the rate limit's spacing", () => {
    // 100 calls: 17 rounds of 6 × 10 s, and 100 starts at 5/s = 20 s.
    expect(worstCaseMs(single, 100)).toBe(17 * 10_000 + 20_000);
    // 2,000 e-mails in calls of 100: 20 calls, 4 rounds, 4 s of spacing.
    expect(worstCaseMs(batches, 2000)).toBe(4 * 10_000 + 4_000);
    expect(worstCaseMs({ ...single, ratePerSecond: 0 }, 12)).toBe(2 * 10_000);
  });

  it("claims whole calls that fit, never more than the SQL cap", () => {
    expect(emailsThatFit(batches, EMAIL_LEASE_MS)).toBe(EMAIL_CLAIM_MAX);
    expect(emailsThatFit(batches, 10_000 + 200)).toBe(100);
    expect(emailsThatFit(batches, 9_999)).toBe(0);
    const n = emailsThatFit(single, 60_000);
    expect(worstCaseMs(single, n)).toBeLessThanOrEqual(60_000);
    expect(worstCaseMs(single, n + 1)).toBeGreaterThan(60_000);
  });

  it("sizes a claim to the time left (at least one round), the lease and the subrequests left", () => {
    const roomy = { windowMs: 600_000, recordMs: 5_000, subrequestsLeft: 10_000 };
    const full = claimSize(single, roomy);
    expect(worstCaseMs(single, full) + roomy.recordMs).toBeLessThanOrEqual(EMAIL_LEASE_MS);
    // Almost no time left: one round of calls (their timeouts are cut to what is left).
    expect(claimSize(single, { ...roomy, windowMs: 1_000 })).toBe(6);
    expect(claimSize(batches, { ...roomy, windowMs: 1_000 })).toBe(600);
    // Subrequests: a call per e-mail (or per batch call), the claim, the recordings, what follows.
    const few = claimSize(single, { ...roomy, subrequestsLeft: 40 });
    expect(few).toBeGreaterThan(0);
    expect(few).toBeLessThan(40);
    expect(claimSize(single, { ...roomy, subrequestsLeft: 4 })).toBe(0);
    expect(claimSize(batches, { ...roomy, subrequestsLeft: 10 })).toBe(500);
  });
});

describe("e-mail delivery: the call pacer", () => {
  it("starts at most `perSecond` calls a second, and none after the latest start allowed", async () => {
    const pacer = new CallPacer(20);
    const started = Date.now();
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      expect(await pacer.slot(started + 10_000)).toBe(true);
      starts.push(Date.now());
    }
    // Spaced by 50 ms (a few ms of timer slack).
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(45);
    expect(await pacer.slot(Date.now())).toBe(false);
  });

  it("waits out a pause (a 429's Retry-After), also without a rate limit", async () => {
    const pacer = new CallPacer(0);
    expect(await pacer.slot(Date.now() + 1_000)).toBe(true);
    pacer.pause(200);
    expect(await pacer.slot(Date.now() + 100)).toBe(false);
    const before = Date.now();
    expect(await pacer.slot(Date.now() + 1_000)).toBe(true);
    expect(Date.now() - before).toBeGreaterThanOrEqual(150);
  });
});
