/**
 * The one retry policy (src/http.ts withRetry): a server's Retry-After is waited in full when it fits what is left of the
 * budget, and ends the retries at once when it does not; never cut short to a retry before the server's time.
 */
import { describe, expect, it } from 'vitest';
import { type RetryOptions, type RetryVerdict, withRetry } from '../src/http.js';
import { InstantClock } from './support/manual-clock.js';

const OPTIONS: RetryOptions = { maxAttempts: 6, maxTotalMs: 600_000, baseDelayMs: 1_000, maxDelayMs: 120_000 };

/** A failure of one attempt, with the Retry-After its answer carried (ms), if any. */
class Throttled extends Error {
  constructor(readonly retryAfterMs?: number) {
    super(retryAfterMs === undefined ? 'HTTP 503' : `HTTP 429, Retry-After ${retryAfterMs} ms`);
  }
}

const classify = (error: unknown): RetryVerdict =>
  error instanceof Throttled
    ? { retry: true, reason: error.message, ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }) }
    : { retry: false };

/**
 * Runs withRetry over `failures` (one per attempt, each taking `attemptMs` of the clock, then success) and records when
 * each attempt started, each wait announced, and how it ended.
 */
async function run(failures: Throttled[], attemptMs = 0) {
  const clock = new InstantClock(0);
  const started: number[] = [];
  const waits: number[] = [];
  const outcome = await withRetry(
    async (n) => {
      started.push(clock.now());
      await clock.sleep(attemptMs);
      const failure = failures[n - 1];
      if (failure) throw failure;
      return 'ok';
    },
    classify,
    { clock, random: () => 0.5, onRetry: ({ delayMs }) => waits.push(delayMs) },
    OPTIONS,
  ).catch((error: unknown) => error);
  return { outcome, started, waits };
}

describe("withRetry and a server's Retry-After", () => {
  it('waits a Retry-After above maxDelayMs in full when it fits the budget left', async () => {
    const { outcome, started, waits } = await run([new Throttled(300_000)]);
    expect(outcome).toBe('ok');
    expect(waits).toEqual([300_000]);
    expect(started).toEqual([0, 300_000]);
  });

  it('waits a Retry-After that ends exactly at the budget', async () => {
    const { outcome, waits } = await run([new Throttled(600_000)]);
    expect(outcome).toBe('ok');
    expect(waits).toEqual([600_000]);
  });

  it('gives up at once on a Retry-After longer than the whole budget, rethrowing the answer it got, with no retry announced', async () => {
    const hour = new Throttled(3_600_000);
    const { outcome, started, waits } = await run([hour]);
    expect(outcome).toBe(hour);
    expect(started).toEqual([0]);
    expect(waits).toEqual([]);
  });

  // The review's case: two slow attempts (200 s each) spent most of the budget, then the 429 answered at 400 s asks for
  // 600 s. Cut to maxDelayMs, the next attempt went out at 520 s, 480 s before the server's time, sending the whole
  // request again into the throttle.
  it("gives up at once on a Retry-After that outlasts what is left of the budget, never retrying before the server's time", async () => {
    const throttled = new Throttled(600_000);
    const { outcome, started, waits } = await run([new Throttled(), throttled], 200_000);
    expect(outcome).toBe(throttled);
    // The 503's own backoff (0.5 of 1 s), then nothing: the 429's 600 s would end past 600 s.
    expect(waits).toEqual([500]);
    expect(started).toEqual([0, 200_500]);
  });
});
