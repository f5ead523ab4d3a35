import { describe, expect, it } from "vitest";
import { batchEnd, CallPacer, claimSize, EMAIL_CLAIM_MAX, EMAIL_LEASE_MS, emailsThatFit, worstCaseMs, type DeliveryPlan } from "./email-delivery.ts";
import { readBatchAnswer } from "./email-sender.ts";

/** The sizing of e-mail claims (pure functions; the daily job's tests run them against the recorder). */

const single: DeliveryPlan = { perCall: 1, concurrency: 6, ratePerSecond: 5, timeoutMs: 10_000, provider: true };
const batches: DeliveryPlan = { perCall: 100, concurrency: 6, ratePerSecond: 5, timeoutMs: 10_000, provider: true };

describe("e-mail delivery: claim sizing", () => {
  it("bounds a batch by its calls' timeouts, `concurrency` at a time, plus the rate limit's spacing", () => {
    // 100 calls: 17 rounds of 6 × 10 s, and 99 intervals between starts at 5/s = 19.8 s.
    expect(worstCaseMs(single, 100)).toBe(17 * 10_000 + 19_800);
    // 2,000 e-mails in calls of 100: 20 calls, 4 rounds, 3.8 s of spacing.
    expect(worstCaseMs(batches, 2000)).toBe(4 * 10_000 + 3_800);
    // One call is not charged a rate interval: at 0.1 calls/s it still fits in the lease.
    expect(worstCaseMs({ ...single, ratePerSecond: 0.1 }, 1)).toBe(10_000);
    expect(worstCaseMs({ ...single, ratePerSecond: 0 }, 12)).toBe(2 * 10_000);
  });

  it("claims whole calls that fit, never more than the SQL cap", () => {
    expect(emailsThatFit(batches, EMAIL_LEASE_MS)).toBe(EMAIL_CLAIM_MAX);
    expect(emailsThatFit(batches, 10_000)).toBe(100);
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

  it("holds callers already waiting for their slot when a pause arrives (another call's 429)", async () => {
    const pacer = new CallPacer(2);
    const started = Date.now();
    expect(await pacer.slot(started + 10_000)).toBe(true);
    const waiting = pacer.slot(started + 10_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    pacer.pause(1_000);
    expect(await waiting).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
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

describe("e-mail delivery: a batch's end", () => {
  it("is the run's end for sends, or earlier so that its last recording ends inside the claim's lease", () => {
    const claimedAt = 1_000_000;
    expect(batchEnd({ claimedAt, leaseSeconds: 600, recordMs: 5_000, sendsEnd: claimedAt + 60_000 })).toBe(claimedAt + 60_000);
    expect(batchEnd({ claimedAt, leaseSeconds: 600, recordMs: 5_000, sendsEnd: claimedAt + 900_000 })).toBe(claimedAt + 595_000);
  });
});

describe("e-mail delivery: the batch endpoint's answer", () => {
  const emails = [{ id: "a" }, { id: "b" }, { id: "c" }];

  it("takes one result per e-mail in order: {id} sent, {error} failed", () => {
    expect(readBatchAnswer(JSON.stringify({ results: [{ id: "m1" }, { error: "bounced" }, { id: "m3" }] }), emails)).toEqual([
      { id: "a", ok: true, provider_message_id: "m1" },
      { id: "b", ok: false, error: "provider: bounced" },
      { id: "c", ok: true, provider_message_id: "m3" },
    ]);
  });

  it("fails an e-mail whose result has an error beside its id, or neither", () => {
    const results = readBatchAnswer(JSON.stringify({ results: [{ id: "m1", error: "rejected" }, {}, { id: "" }] }), emails)!;
    expect(results.map((r) => r.ok)).toEqual([false, false, false]);
    expect(results[0]).toEqual({ id: "a", ok: false, error: "provider: rejected" });
  });

  it("is no answer when the count differs or it is not JSON", () => {
    expect(readBatchAnswer(JSON.stringify({ results: [{ id: "m1" }] }), emails)).toBeNull();
    expect(readBatchAnswer("<html>ok</html>", emails)).toBeNull();
    expect(readBatchAnswer(JSON.stringify({ results: "yes" }), emails)).toBeNull();
  });
});
