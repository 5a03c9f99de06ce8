/**
 * Every FHIR request goes through here: one p-queue (concurrency and requests-per-second cap), an origin-wide hold
 * while the server's Retry-After runs, the bearer token from the TokenSource (fetched before the attempt's timeout
 * starts: the token request has its own retries and time bound), a per-attempt timeout, one replay after a 401 with a
 * fresh token, and the shared retry policy of http.ts for 408/429/5xx, timeouts and network errors, honouring
 * Retry-After.
 * The HTTP itself is fhir-kit-client's (https://github.com/Vermonster/fhir-kit-client): it builds the search, read and
 * /metadata URLs, sends them with the global fetch and parses the JSON. It cannot cap a body (it reads every one
 * whole with `response.text()`) nor pick a proxy, so it is given an undici dispatcher in its request options
 * (fhir-dispatcher.ts): the connector's proxy and CA, and fhir.maxResponseBytes enforced while the body streams.
 * Its requestSigner refuses any URL off the base's origin, so a token never leaves it (docs/epic-smart.md §6.5).
 * See: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3, docs/epic-smart.md §6.4, §6.6,
 * https://github.com/sindresorhus/p-queue.
 */
import { Client, type FhirResponse, type FhirResource as FkcResource, REQUEST_KEY, RESPONSE_KEY, type RequestOptions } from 'fhir-kit-client';
import PQueue from 'p-queue';
import { abortError, type Clock } from '../clock.js';
import { BridgeError, isAbortError } from '../errors.js';
import { obeyedRetryAfter, parseRetryAfter, type RetryOptions, THROTTLE_STATUSES, withRetry } from '../http.js';
import type { Logger } from '../log.js';
import { type NetworkSettings, proxyRefusalIn, proxyRefusedError } from '../net/index.js';
import type { TokenSource } from '../token-cache.js';
import { ACCEPT_ENCODING, createFhirDispatcher } from './fhir-dispatcher.js';
import { normalizeAttemptError } from './http-errors.js';
import { type HttpFailure, httpFailureOf } from './outcome.js';
import type { ServerClock } from './server-clock.js';
import { classify, describeRequest, foreignLinkError, type RequestLabel, safeOrigin, timeoutError, toFhirError } from './transport-errors.js';

export { describeRequest, foreignLinkError, type RequestLabel, safeOrigin } from './transport-errors.js';

export interface TransportOptions {
  readonly baseUrl: string;
  readonly tokenSource: TokenSource;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly concurrency: number;
  readonly requestsPerSecond: number;
  readonly timeoutMs: number;
  readonly retry: RetryOptions;
  /** Largest response body read, in bytes; a larger one fails with BRG_ERR_FHIR_TOO_LARGE. */
  readonly maxResponseBytes: number;
  /** Proxy and CA of the connector. Default: direct, system roots. */
  readonly network?: NetworkSettings;
  readonly random?: () => number;
  readonly signal?: AbortSignal;
  readonly onRequest?: (info: { resourceType: string; status: number; retries: number }) => void;
  /** Takes every answer's Date header (server-clock.ts). */
  readonly serverClock?: ServerClock;
}

/** One HTTP attempt through fhir-kit-client; `options` carry the signal (caller abort + attempt timeout) and the token. */
export type FhirCall = (fkc: Client, options: RequestOptions) => Promise<FkcResource> | undefined;

/** A 2xx answer: its status, parsed body and the URL fhir-kit-client requested. */
export interface FhirReply {
  readonly status: number;
  readonly data: unknown;
  readonly url: string;
}

export interface Transport {
  readonly origin: string;
  send(label: RequestLabel, call: FhirCall, signal?: AbortSignal): Promise<FhirReply>;
  readonly stats: { requests: number; retries: number };
}

/** What every request of one client shares. */
interface TransportContext {
  readonly options: TransportOptions;
  readonly origin: string;
  readonly queue: PQueue;
  readonly fkc: Client;
  /** Until when (clock ms) no request may start: the latest Retry-After of a 429/503, for the whole origin. */
  readonly hold: { until: number };
  readonly stats: { requests: number; retries: number };
}

export function createTransport(options: TransportOptions): Transport {
  const origin = new URL(options.baseUrl).origin;
  const rps = options.requestsPerSecond;
  // p-queue counts whole task starts per interval: 20/s → 20 per 1000 ms; 0.5/s → 1 per 2000 ms.
  const intervalCap = Math.max(1, Math.floor(rps));
  const queue = new PQueue({ concurrency: options.concurrency, intervalCap, interval: Math.round((1000 * intervalCap) / rps) });
  const fkc = new Client({
    baseUrl: options.baseUrl,
    // Spread by fhir-kit-client into every Request's init; Node's fetch then sends through this dispatcher.
    // No redirect followed: fetch would send a search's query (MRNs, logins) on to wherever a 3xx points, and take that
    // host's answer for the EHR's (it drops only the token). A 3xx is an answer of its own (below).
    requestOptions: { dispatcher: createFhirDispatcher(options.network, options.maxResponseBytes, options.serverClock), redirect: 'manual' },
    // Only what the dispatcher's decoder reads (fetch would ask for deflate too).
    customHeaders: { 'Accept-Encoding': ACCEPT_ENCODING },
    // Awaited before every request, nextPage included: the last check before a token goes out.
    requestSigner: (url: string) => {
      if (safeOrigin(url) !== origin) throw foreignLinkError(url, origin);
    },
  });
  const context: TransportContext = { options, origin, queue, fkc, hold: { until: Number.NEGATIVE_INFINITY }, stats: { requests: 0, retries: 0 } };
  return { origin, stats: context.stats, send: (label, call, signal) => send(context, label, call, signal) };
}

/** One logical request: queued attempts under the retry policy, reported once to onRequest. */
async function send(context: TransportContext, label: RequestLabel, call: FhirCall, callerSignal?: AbortSignal): Promise<FhirReply> {
  const { options } = context;
  const signal = anySignal(options.signal, callerSignal);
  let retries = 0;
  // As withRetry counts its budget: the hold a throttled attempt sets matches the wait withRetry then chooses.
  const startedMs = options.clock.now();
  try {
    const reply = await withRetry(
      attemptWithReplay(context, label, call, signal, startedMs),
      (error) => classify(error, options.clock),
      {
        clock: options.clock,
        ...(signal ? { signal } : {}),
        ...(options.random ? { random: options.random } : {}),
        onRetry: (info) => {
          retries += 1;
          context.stats.retries += 1;
          options.logger.warn(
            { resourceType: label.resourceType, action: label.action, attempt: info.attempt, delayMs: info.delayMs, reason: info.reason },
            'FHIR request failed; retrying',
          );
        },
      },
      options.retry,
    );
    options.onRequest?.({ resourceType: label.resourceType, status: reply.status, retries });
    return reply;
  } catch (error) {
    options.onRequest?.({ resourceType: label.resourceType, status: httpFailureOf(error)?.status ?? 0, retries });
    if (signal?.aborted) throw abortError(signal);
    throw toFhirError(error, label, context.origin, retries, options.maxResponseBytes);
  }
}

/** A FHIR request answered with a redirect: not followed, and said where it pointed (an origin, never a query). */
function redirected(label: RequestLabel, origin: string, failure: HttpFailure): BridgeError {
  const location = failure.headers?.get('location');
  const to = location ? safeOrigin(location, origin) : 'no Location';
  return new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `${describeRequest(label, origin)} was redirected (HTTP ${failure.status}) to ${to}; the bridge follows no redirect of a FHIR request, which would carry its query (identifiers) elsewhere. If the EHR's FHIR endpoint moved, set fhir.baseUrl to its new address.`,
    { details: { status: failure.status, resourceType: label.resourceType } },
  );
}

/**
 * The function withRetry calls: one queued HTTP attempt with its own timeout, and after a 401 one replay with a fresh
 * token (RFC 6750 §3.1 invalid_token: expired or revoked mid-run). The replay is queued anew, never from inside a
 * running task, which would deadlock at concurrency 1.
 */
function attemptWithReplay(context: TransportContext, label: RequestLabel, call: FhirCall, signal: AbortSignal | undefined, startedMs: number) {
  const { options, queue, stats } = context;
  const queued = signal ? { signal } : {};
  let replayedAfter401 = false;
  let rejectedToken: string | undefined;
  const once = async (): Promise<FhirReply> => {
    const token = await tokenWhenFree(context, signal);
    // The timeout starts only now: waiting for the hold or the token is not the server being slow.
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    stats.requests += 1;
    try {
      const result = await call(context.fkc, { signal: attemptSignal, headers: { authorization: `Bearer ${token}` } });
      if (result === undefined) throw new Error('fhir-kit-client found no link to follow');
      return replyOf(result);
    } catch (thrown) {
      if (signal?.aborted) throw abortError(signal);
      if (timeout.aborted) throw timeoutError(options.timeoutMs);
      const refusal = proxyRefusalIn(thrown);
      if (refusal) throw proxyRefusedError(refusal, describeRequest(label, context.origin));
      const error = normalizeAttemptError(thrown, options.maxResponseBytes);
      const failure = httpFailureOf(error);
      if (failure && failure.status >= 300 && failure.status < 400) throw redirected(label, context.origin, failure);
      if (failure?.status === 401) rejectedToken = token;
      if (failure) holdOrigin(context, failure, label, startedMs);
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

/**
 * A 429 or 503 with Retry-After speaks for the server, not for one request (issue #15.2: requests kept starting
 * inside the hold): nothing else starts on this origin until it ends. Requests already in flight finish. As long as
 * the retry of the request it answered waits (obeyedRetryAfter), so a wild value cannot stall the run any longer.
 */
function holdOrigin(context: TransportContext, failure: HttpFailure, label: RequestLabel, startedMs: number): void {
  if (!THROTTLE_STATUSES.has(failure.status)) return;
  const { clock, retry, logger } = context.options;
  const now = clock.now();
  const retryAfterMs = parseRetryAfter(failure.headers?.get('retry-after'), now);
  if (retryAfterMs === undefined) return;
  // The request it answered waits that long before its retry, or gives up when the hint outlasts its budget (withRetry);
  // every other request to the server is held as long, up to maxDelayMs.
  const until = now + obeyedRetryAfter(retryAfterMs, now - startedMs, retry);
  if (until <= context.hold.until) return;
  context.hold.until = until;
  logger.warn({ status: failure.status, holdMs: until - now, resourceType: label.resourceType }, 'FHIR server asked to wait; holding every request to it');
}

/** Waits out any hold, then gets the token; again if a hold began while the token was fetched. */
async function tokenWhenFree(context: TransportContext, signal: AbortSignal | undefined): Promise<string> {
  const { clock } = context.options;
  for (;;) {
    for (let wait = context.hold.until - clock.now(); wait > 0; wait = context.hold.until - clock.now()) await clock.sleep(wait, signal);
    const token = await tokenFor(context, signal);
    if (context.hold.until <= clock.now()) return token;
  }
}

/**
 * The token source runs its own retries within its own budget, so a failure here is final: it is never wrapped in
 * this request's timeout or retried by the FHIR policy (issue #15.2: each FHIR attempt restarted the token series).
 */
async function tokenFor(context: TransportContext, signal: AbortSignal | undefined): Promise<string> {
  try {
    return await context.options.tokenSource.getToken(signal);
  } catch (error) {
    if (error instanceof BridgeError || isAbortError(error) || signal?.aborted) throw error;
    const reason = error instanceof Error ? error.message.replace(/\s+/g, ' ').slice(0, 200) : 'unknown error';
    throw new BridgeError('BRG_ERR_SMART_TOKEN', `No access token for ${context.origin}: ${reason}.`, { cause: error });
  }
}

/** fhir-kit-client hangs the fetch Request and Response on the parsed body under hidden keys. */
function replyOf(result: FkcResource): FhirReply {
  const response = (result as FhirResponse)[RESPONSE_KEY];
  return { status: response?.status ?? 200, data: result, url: (result as FhirResponse)[REQUEST_KEY]?.url ?? '' };
}

function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}
