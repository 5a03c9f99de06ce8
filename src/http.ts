/**
 * The one retry policy: exponential backoff with full jitter, Retry-After (seconds or HTTP-date) waited in full, or no
 * retry when it would outlast the budget; attempts and total time bounded, sleeps through the injected clock, never
 * retries an abort.
 * See: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3 (Retry-After) and AWS "Exponential Backoff And Jitter".
 */
import type { Clock } from './clock.js';
import { blankIdentifying, isAbortError } from './errors.js';

export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

export interface RetryOptions {
  /** Total attempts including the first. Default 6. */
  readonly maxAttempts: number;
  /** Give up once this much time has passed since the first attempt. Default 10 minutes. */
  readonly maxTotalMs: number;
  /** First backoff ceiling. Default 500 ms. */
  readonly baseDelayMs: number;
  /**
   * Largest single backoff wait of our own. A server's Retry-After is not capped by it: it is waited in full when it fits
   * what is left of maxTotalMs, and ends the retries when it does not. Default 120 s.
   */
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 6, maxTotalMs: 600_000, baseDelayMs: 500, maxDelayMs: 120_000 };

/**
 * The token request's own, smaller budget: a token is needed before any FHIR request, so a failing token endpoint must
 * end the run with a SMART error in about a minute, not be retried again by every FHIR attempt that waits for it
 * (observed: 24 token POSTs in 191 s behind a 503 with Retry-After 8).
 */
export const TOKEN_RETRY: RetryOptions = { maxAttempts: 4, maxTotalMs: 60_000, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Statuses whose Retry-After speaks for the whole server (RFC 9110 §15.6.4, RFC 6585 §4), not for one request. */
export const THROTTLE_STATUSES: ReadonlySet<number> = new Set([429, 503]);

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

/**
 * Parses Retry-After as delta-seconds or an HTTP-date; undefined when absent or unreadable ("1.5", which Date.parse
 * would read as a day in 2001), and for a date already past (a skewed clock: our own backoff is the better guess).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = httpDateMs(trimmed);
  return date === undefined || date < nowMs ? undefined : date - nowMs;
}

/** IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, day of month in one or two digits), and RFC 850 (`Sunday, 06-Nov-94 …`). */
const GMT_DATE = /^[A-Za-z]{3,9}, \d{1,2}[ -][A-Za-z]{3}[ -]\d{2,4} \d{2}:\d{2}:\d{2} GMT$/;
/** asctime (`Sun Nov  6 08:49:37 1994`): GMT too, though it does not say so. */
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]?\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * An HTTP-date (RFC 9110 §5.6.7) in epoch ms: the preferred form and the two obsolete ones a recipient must accept;
 * undefined for anything else (Date.parse alone takes "12" or "soon-ish" in odd ways, and asctime as local time).
 */
export function httpDateMs(text: string): number | undefined {
  const candidate = GMT_DATE.test(text) ? text : ASCTIME.test(text) ? `${text} GMT` : undefined;
  if (candidate === undefined) return undefined;
  const ms = Date.parse(candidate);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Full-jitter backoff for the given 1-based failed attempt. */
export function backoffDelay(attempt: number, options: RetryOptions, random: () => number): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * How long a server's Retry-After holds requests to it: in full when it fits what is left of maxTotalMs, else up to
 * maxDelayMs (src/fhir/transport.ts holds the other requests to an origin that long). withRetry itself retries only
 * after a hint that fits; for one that does not, it gives up at once (fitsRetryBudget).
 */
export function obeyedRetryAfter(retryAfterMs: number, elapsedMs: number, options: RetryOptions): number {
  return fitsRetryBudget(retryAfterMs, elapsedMs, options) ? retryAfterMs : Math.min(options.maxDelayMs, retryAfterMs);
}

/** Whether a wait of `delayMs`, starting `elapsedMs` into the retries, ends within maxTotalMs. */
function fitsRetryBudget(delayMs: number, elapsedMs: number, options: RetryOptions): boolean {
  return elapsedMs + delayMs <= options.maxTotalMs;
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
      // A server's Retry-After is obeyed in full, never cut short: retrying before the server's time meets the same
      // answer, spends an attempt and sends the whole request again into an announced throttle (a Purview block is up
      // to 100,000 rows). One that does not fit what is left of the budget (an hour, an epoch-style value) ends the
      // retries now, the last error rethrown exactly as when the budget is spent.
      const delayMs = verdict.retryAfterMs ?? Math.min(options.maxDelayMs, backoffDelay(n, options, random));
      if (!fitsRetryBudget(delayMs, context.clock.now() - started, options)) throw error;
      context.onRetry?.({ attempt: n, delayMs, reason: verdict.reason });
      await context.clock.sleep(delayMs, context.signal);
    }
  }
}

/** Longest upstream body excerpt quoted in an error message. */
export const MAX_QUOTED_BODY = 160;

/**
 * A non-JSON upstream body (an HTML error page, a proxy's plain text) as a short, one-line, quoted excerpt for an
 * error message. Upstream text can echo the request, so anything that may identify a person or carry a secret is
 * blanked (errors.ts blankIdentifying): query strings, URL credentials, ids after a person's resource type, JWTs and
 * bearer tokens, e-mail addresses and long digit runs (MRNs, phone numbers).
 */
export function quoteUpstreamText(text: string, max: number = MAX_QUOTED_BODY): string {
  const plain = scrubUpstreamText(text, max);
  return plain.length === 0 ? 'an empty body' : JSON.stringify(plain);
}

/**
 * The scrubbing of quoteUpstreamText without the quotes: for upstream words an error message already frames. Longer
 * than `max` characters, it is cut and ends with an ellipsis.
 */
export function scrubUpstreamText(text: string, max: number = Number.POSITIVE_INFINITY): string {
  const plain = scrubbed(text);
  return plain.length > max ? `${plain.slice(0, max - 1)}…` : plain;
}

function scrubbed(text: string): string {
  // Only the head of the body: enough for any error page's message, and it bounds the work of the patterns below.
  const visible = text
    .slice(0, 4096)
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;|&#160;/gi, ' ');
  // The patterns error text is scrubbed with too (errors.ts); then one line.
  return blankIdentifying(visible, '[number]').replace(/\s+/g, ' ').trim();
}
