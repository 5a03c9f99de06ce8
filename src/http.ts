/**
 * The one retry policy: exponential backoff with full jitter, Retry-After (seconds or HTTP-date) honoured and clamped,
 * attempts and total time bounded, sleeps through the injected clock, never retries an abort.
 * See: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3 (Retry-After) and AWS "Exponential Backoff And Jitter".
 */
import { isAbortError } from './errors.js';
import type { Clock } from './clock.js';

export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

export interface RetryOptions {
  /** Total attempts including the first. Default 6. */
  readonly maxAttempts: number;
  /** Give up once this much time has passed since the first attempt. Default 10 minutes. */
  readonly maxTotalMs: number;
  /** First backoff ceiling. Default 500 ms. */
  readonly baseDelayMs: number;
  /** Largest single wait, Retry-After included. Default 120 s. */
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 6, maxTotalMs: 600_000, baseDelayMs: 500, maxDelayMs: 120_000 };

/** What the caller's classifier says about one failure. */
export type RetryVerdict = { retry: false } | { retry: true; retryAfterMs?: number; reason: string };

export interface RetryContext {
  readonly clock: Clock;
  readonly signal?: AbortSignal;
  /** Uniform [0,1). Injected so tests can pin the jitter. */
  readonly random?: () => number;
  /** Called before each wait, for metrics and logs. */
  readonly onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

/** Parses Retry-After as delta-seconds or an HTTP-date; undefined when absent or unparseable. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/** Full-jitter backoff for the given 1-based failed attempt. */
export function backoffDelay(attempt: number, options: RetryOptions, random: () => number): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * Runs `attempt` until it succeeds, the classifier says stop, or the budget is spent; the last error is rethrown
 * as is, so callers keep their typed errors.
 */
export async function withRetry<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  classify: (error: unknown) => RetryVerdict,
  context: RetryContext,
  options: RetryOptions = DEFAULT_RETRY,
): Promise<T> {
  const random = context.random ?? Math.random;
  const started = context.clock.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (isAbortError(error) || context.signal?.aborted) throw error;
      const verdict = classify(error);
      if (!verdict.retry || n >= options.maxAttempts) throw error;
      const hinted = verdict.retryAfterMs;
      const delayMs = Math.min(options.maxDelayMs, hinted ?? backoffDelay(n, options, random));
      if (context.clock.now() - started + delayMs > options.maxTotalMs) throw error;
      context.onRetry?.({ attempt: n, delayMs, reason: verdict.reason });
      await context.clock.sleep(delayMs, context.signal);
    }
  }
}
