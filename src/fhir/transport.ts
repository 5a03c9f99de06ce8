/**
 * Every FHIR request goes through here: one p-queue (concurrency and requests-per-second cap), the bearer token
 * from the TokenSource set by fhir-kit-client's requestSigner (awaited before every request, `nextPage` included),
 * a per-attempt timeout, one replay after a 401 with a fresh token, and the shared retry policy of http.ts for
 * 408/429/5xx, timeouts and network errors, honouring Retry-After.
 * See: research peers-and-test-servers.md §A2 and packages.md "fhir-kit-client 2.0.3", "p-queue 9.3.5".
 */
import { Client, RESPONSE_KEY, type FhirResource as FkcResource, type FhirResponse } from 'fhir-kit-client';
import PQueue from 'p-queue';
import { abortError, type Clock } from '../clock.js';
import { BridgeError, isAbortError } from '../errors.js';
import { RETRYABLE_STATUSES, parseRetryAfter, withRetry, type RetryOptions, type RetryVerdict } from '../http.js';
import type { Logger } from '../log.js';
import type { TokenSource } from '../token-cache.js';
import { httpFailureOf, outcomeCodes, outcomeText } from './outcome.js';

export interface TransportOptions {
  readonly baseUrl: string;
  readonly tokenSource: TokenSource;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly concurrency: number;
  readonly requestsPerSecond: number;
  readonly timeoutMs: number;
  readonly retry: RetryOptions;
  readonly random?: () => number;
  readonly signal?: AbortSignal;
  readonly onRequest?: (info: { resourceType: string; status: number; retries: number }) => void;
}

/** Names a request in errors, logs and metrics: never its query (identifiers are PHI). */
export interface RequestLabel {
  readonly resourceType: string;
  readonly action: 'search' | 'next page' | 'read' | 'metadata';
}

/** One HTTP attempt through fhir-kit-client; `signal` carries the caller's abort and the attempt's timeout. */
export type FhirCall = (fkc: Client, options: { signal: AbortSignal }) => Promise<FkcResource>;

export interface Transport {
  readonly origin: string;
  send(label: RequestLabel, call: FhirCall, signal?: AbortSignal): Promise<unknown>;
  readonly stats: { requests: number; retries: number };
}

/** Thrown by the requestSigner so a token never leaves for another origin (research §A2: nextPage follows any host). */
export function foreignLinkError(url: string, origin: string): BridgeError {
  const foreign = safeOrigin(url);
  return new BridgeError(
    'BRG_ERR_FHIR_FOREIGN_LINK',
    `The FHIR server sent a paging link to ${foreign}, not to ${origin}; it was not followed and no token was sent there. Check fhir.baseUrl matches the server's public base URL.`,
    { details: { expectedOrigin: origin, linkOrigin: foreign } },
  );
}

export function safeOrigin(url: string, base?: string): string {
  try {
    return new URL(url, base).origin;
  } catch {
    return 'an unparseable URL';
  }
}

/** What every request of one client shares. */
interface TransportContext {
  readonly options: TransportOptions;
  readonly origin: string;
  readonly queue: PQueue;
  readonly fkc: Client;
  /** The token each attempt carried, keyed by the attempt's signal, so a 401 invalidates exactly that token. */
  readonly tokenOfAttempt: WeakMap<AbortSignal, string>;
  readonly stats: { requests: number; retries: number };
}

export function createTransport(options: TransportOptions): Transport {
  const origin = new URL(options.baseUrl).origin;
  const rps = options.requestsPerSecond;
  // p-queue counts whole task starts per interval: 20/s → 20 per 1000 ms; 0.5/s → 1 per 2000 ms.
  const intervalCap = Math.max(1, Math.floor(rps));
  const queue = new PQueue({ concurrency: options.concurrency, intervalCap, interval: Math.round((1000 * intervalCap) / rps) });
  const tokenOfAttempt = new WeakMap<AbortSignal, string>();
  const fkc = new Client({
    baseUrl: options.baseUrl,
    // Awaited by fhir-kit-client before every request, nextPage included (research packages.md, verified).
    requestSigner: async (url: string, init: RequestInit) => {
      if (safeOrigin(url) !== origin) throw foreignLinkError(url, origin);
      const signal = init.signal ?? undefined;
      const token = await options.tokenSource.getToken(signal);
      if (signal) tokenOfAttempt.set(signal, token);
      if (init.headers instanceof Headers) init.headers.set('authorization', `Bearer ${token}`);
    },
  });
  const context: TransportContext = { options, origin, queue, fkc, tokenOfAttempt, stats: { requests: 0, retries: 0 } };
  return { origin, stats: context.stats, send: (label, call, signal) => send(context, label, call, signal) };
}

/** One logical request: queued attempts under the retry policy, reported once to onRequest. */
async function send(context: TransportContext, label: RequestLabel, call: FhirCall, callerSignal?: AbortSignal): Promise<unknown> {
  const { options } = context;
  const signal = anySignal(options.signal, callerSignal);
  let retries = 0;
  try {
    const result = await withRetry(attemptWithReplay(context, label, call, signal), (error) => classify(error, options.clock), {
      clock: options.clock,
      ...(signal ? { signal } : {}),
      ...(options.random ? { random: options.random } : {}),
      onRetry: (info) => {
        retries += 1;
        context.stats.retries += 1;
        options.logger.warn({ resourceType: label.resourceType, action: label.action, attempt: info.attempt, delayMs: info.delayMs, reason: info.reason }, 'FHIR request failed; retrying');
      },
    }, options.retry);
    // fhir-kit-client hangs the fetch Response on the result under a hidden key (research packages.md).
    options.onRequest?.({ resourceType: label.resourceType, status: (result as FhirResponse)[RESPONSE_KEY]?.status ?? 200, retries });
    return result;
  } catch (error) {
    options.onRequest?.({ resourceType: label.resourceType, status: httpFailureOf(error)?.status ?? 0, retries });
    if (signal?.aborted) throw abortError(signal);
    throw toFhirError(error, label, context.origin, retries);
  }
}

/**
 * The function withRetry calls: one queued HTTP attempt with its own timeout, and after a 401 one replay with a fresh
 * token (RFC 6750 §3.1 invalid_token: expired or revoked mid-run). The replay is queued anew, never from inside a
 * running task, which would deadlock at concurrency 1.
 */
function attemptWithReplay(context: TransportContext, label: RequestLabel, call: FhirCall, signal: AbortSignal | undefined): () => Promise<unknown> {
  const { options, queue, stats } = context;
  const queued = signal ? { signal } : {};
  let replayedAfter401 = false;
  let rejectedToken: string | undefined;
  const once = async (): Promise<unknown> => {
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    stats.requests += 1;
    try {
      return await call(context.fkc, { signal: attemptSignal });
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      if (timeout.aborted) throw timeoutError(options.timeoutMs);
      if (httpFailureOf(error)?.status === 401) rejectedToken = context.tokenOfAttempt.get(attemptSignal);
      throw error;
    }
  };
  return async () => {
    try {
      return await queue.add(once, queued);
    } catch (error) {
      if (httpFailureOf(error)?.status !== 401 || replayedAfter401) throw error;
      replayedAfter401 = true;
      options.tokenSource.invalidate(rejectedToken);
      options.logger.info({ resourceType: label.resourceType, action: label.action }, 'FHIR server rejected the access token; retrying once with a new one');
      return await queue.add(once, queued);
    }
  };
}

function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}

function timeoutError(ms: number): Error {
  const error = new Error(`No FHIR response within ${ms} ms`);
  error.name = 'TimeoutError';
  return error;
}

function isNetworkError(error: unknown): boolean {
  // undici reports connection failures as TypeError('fetch failed', { cause }); other TypeErrors are bugs, not retried.
  return error instanceof TypeError && error.message === 'fetch failed';
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'TimeoutError';
}

/** 408/429/500/502/503/504, our per-attempt timeout and connection failures; never a BridgeError or an abort. */
function isRetryable(error: unknown): boolean {
  if (error instanceof BridgeError || isAbortError(error)) return false;
  if (isTimeout(error) || isNetworkError(error)) return true;
  const failure = httpFailureOf(error);
  return failure !== undefined && RETRYABLE_STATUSES.has(failure.status);
}

function classify(error: unknown, clock: Clock): RetryVerdict {
  if (!isRetryable(error)) return { retry: false };
  if (isTimeout(error)) return { retry: true, reason: 'timeout' };
  const failure = httpFailureOf(error);
  if (!failure) return { retry: true, reason: 'network error' };
  const retryAfterMs = parseRetryAfter(failure.headers?.get('retry-after'), clock.now());
  return retryAfterMs === undefined ? { retry: true, reason: `HTTP ${failure.status}` } : { retry: true, retryAfterMs, reason: `HTTP ${failure.status}` };
}

/** Maps what fhir-kit-client or fetch threw to our codes; the upstream message (it holds the URL and query) is dropped. */
function toFhirError(error: unknown, label: RequestLabel, origin: string, retries: number): unknown {
  if (error instanceof BridgeError || isAbortError(error)) return error;
  const what = `FHIR ${label.resourceType} ${label.action} at ${origin}`;
  const failure = httpFailureOf(error);
  if (isRetryable(error)) {
    const last = failure ? `HTTP ${failure.status}` : isTimeout(error) ? 'a timeout' : 'a network error';
    return new BridgeError('BRG_ERR_FHIR_UNAVAILABLE', `${what} kept failing after ${retries + 1} attempts; the last was ${last}.`, {
      ...(failure ? {} : { cause: error }),
      details: { status: failure?.status ?? 0, resourceType: label.resourceType, attempts: retries + 1 },
    });
  }
  if (!failure) return error;
  const text = outcomeText(failure.data) ?? (typeof failure.data === 'string' ? 'the body was not JSON' : 'no OperationOutcome text');
  const hint = failure.status === 401 ? ' The access token was rejected twice: check the SMART client and its scopes.' : '';
  return new BridgeError('BRG_ERR_FHIR_HTTP', `${what} answered HTTP ${failure.status}: ${text.replace(/\.$/, '')}.${hint}`, {
    details: { status: failure.status, resourceType: label.resourceType, outcome: text, outcomeCode: outcomeCodes(failure.data)[0] },
  });
}
