/**
 * What the transport makes of a failed FHIR request: whether the shared retry policy may try it again, and the typed
 * error that ends it. Messages name the request by resource type and action, never by URL (a query can carry
 * identifiers), tell the server's answer by its status, severity and codes, never by its words (an OperationOutcome's
 * text may name a patient, and no scrubbing recognises a name), and fit on one line.
 */
import type { Clock } from '../clock.js';
import { BridgeError, isAbortError } from '../errors.js';
import { parseRetryAfter, RETRYABLE_STATUSES, type RetryVerdict } from '../http.js';
import { proxyTunnelIn } from '../net/index.js';
import { FhirError } from './fhir-error.js';
import { ResponseTooLargeError } from './http-errors.js';
import { describeAnswer, type HttpFailure, httpFailureOf, IN_SERVER_LOG, outcomeCodes, textNotQuoted } from './outcome.js';

/** Names a request in errors, logs and metrics: never its query (identifiers are PHI). */
export interface RequestLabel {
  readonly resourceType: string;
  readonly action: 'search' | 'next page' | 'read' | 'metadata';
  /**
   * The values the request sent (a search's parameters: MRNs, logins): blanked wherever the answer echoes them, so
   * that not even a code of the answer can carry one.
   */
  readonly sent?: readonly string[];
}

/** "FHIR Patient search at https://…", or "FHIR /metadata at https://…" for the probe. */
export function describeRequest(label: RequestLabel, origin: string): string {
  return label.action === 'metadata' ? `FHIR /metadata at ${origin}` : `FHIR ${label.resourceType} ${label.action} at ${origin}`;
}

/** What safeOrigin says of a URL with a user name or password in it: never equal to an origin, and never echoing them. */
export const CREDENTIALS_URL = 'a URL with credentials in it';

/** A token never leaves for another origin (a `next` link may name any host). */
export function foreignLinkError(url: string, origin: string): BridgeError {
  const foreign = safeOrigin(url);
  // Such a link fails in fetch anyway, with a TypeError that quotes it whole: refused here, named without them.
  const message =
    foreign === CREDENTIALS_URL
      ? `The FHIR server sent a paging link with a user name or password in it; it was not followed and no token was sent there (the bridge sends its token only to ${origin}, with no credentials in the URL). Report the broken link to the EHR team, and check fhir.baseUrl matches the server's public base URL.`
      : `The FHIR server sent a paging link to ${foreign}, not to ${origin}; it was not followed and no token was sent there. Check fhir.baseUrl matches the server's public base URL.`;
  return new BridgeError('BRG_ERR_FHIR_FOREIGN_LINK', message, { details: { expectedOrigin: origin, linkOrigin: foreign } });
}

/**
 * The origin every token check compares (pages, the transport's requestSigner, Bulk Data), safe to name in a message.
 * `URL.origin` leaves out user:password, so `https://u:p@ehr/…` would pass as the FHIR server's own origin; fetch then
 * refuses it with a TypeError quoting the URL whole. Such a URL is a marker that equals no origin.
 */
export function safeOrigin(url: string, base?: string): string {
  try {
    const parsed = new URL(url, base);
    return parsed.username !== '' || parsed.password !== '' ? CREDENTIALS_URL : parsed.origin;
  } catch {
    return 'an unparseable URL';
  }
}

export function timeoutError(ms: number): Error {
  const error = new Error(`No FHIR response within ${ms} ms`);
  error.name = 'TimeoutError';
  return error;
}

/** Socket failures in the cause chain: the connection died, whatever the layer that noticed it. */
const SOCKET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

function isNetworkError(error: unknown): boolean {
  // undici reports connection failures as TypeError('fetch failed', { cause }), and a connection dropped while the body
  // streams as TypeError('terminated'); other TypeErrors are bugs, not retried.
  if (!(error instanceof TypeError)) return false;
  if (error.message === 'fetch failed' || error.message === 'terminated') return true;
  for (let current: unknown = error.cause, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (SOCKET_CODES.has(String((current as { code?: unknown }).code))) return true;
  }
  return false;
}

/** "a network error (ECONNREFUSED)": the first error code in the cause chain, which names no URL or secret. */
function networkErrorText(error: unknown): string {
  const tunnel = proxyTunnelIn(error);
  if (tunnel) return tunnel.message;
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)) return `a network error (${code})`;
  }
  return 'a network error';
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'TimeoutError';
}

/**
 * 408/429/500/502/503/504, our per-attempt timeout and connection failures. Never a BridgeError (a failed token
 * request among them: it had its own retries), an abort, or an over-size body (it would be as large next time).
 */
function isRetryable(error: unknown): boolean {
  if (error instanceof BridgeError || isAbortError(error) || error instanceof ResponseTooLargeError) return false;
  if (isTimeout(error) || isNetworkError(error)) return true;
  const failure = httpFailureOf(error);
  return failure !== undefined && RETRYABLE_STATUSES.has(failure.status);
}

export function classify(error: unknown, clock: Clock): RetryVerdict {
  if (!isRetryable(error)) return { retry: false };
  if (isTimeout(error)) return { retry: true, reason: 'timeout' };
  const failure = httpFailureOf(error);
  if (!failure) return { retry: true, reason: 'network error' };
  const retryAfterMs = parseRetryAfter(failure.headers?.get('retry-after'), clock.now());
  return retryAfterMs === undefined ? { retry: true, reason: `HTTP ${failure.status}` } : { retry: true, retryAfterMs, reason: `HTTP ${failure.status}` };
}

/** The answer with the request's own values blanked, before any of it (its codes) is quoted. */
function withoutEchoes(data: unknown, sent: readonly string[] = []): unknown {
  // Longest first: a whole token (`system|value`) goes before the value inside it.
  const echoes = sent.filter((value) => value.length >= 3).sort((a, b) => b.length - a.length);
  return echoes.length === 0 ? data : blankEchoes(data, echoes);
}

/** The answer with every occurrence of a sent value replaced, in its strings (JSON stays JSON). */
function blankEchoes(data: unknown, echoes: readonly string[]): unknown {
  const blank = (text: string): string => echoes.reduce((out, value) => out.split(value).join('[sent]'), text);
  return typeof data === 'string'
    ? blank(data)
    : JSON.parse(JSON.stringify(data ?? null), (_key, value: unknown) => (typeof value === 'string' ? blank(value) : value));
}

/** Maps what an attempt threw (normalised by http-errors.ts) to our codes; nothing upstream that names the URL is kept. */
export function toFhirError(error: unknown, label: RequestLabel, origin: string, retries: number, maxResponseBytes: number): unknown {
  if (error instanceof BridgeError || isAbortError(error)) return error;
  const what = describeRequest(label, origin);
  if (error instanceof ResponseTooLargeError) return tooLargeError(error, label, what, maxResponseBytes);
  const failure = httpFailureOf(error);
  const data = withoutEchoes(failure?.data, label.sent);
  const outcome = { summary: describeAnswer(data), codes: outcomeCodes(data) };
  const unquoted = textNotQuoted(data, IN_SERVER_LOG);
  if (isRetryable(error)) {
    const last = failure ? `HTTP ${failure.status} with ${outcome.summary}` : isTimeout(error) ? 'a timeout' : networkErrorText(error);
    const wait = retryAfterOf(failure);
    const after = wait === undefined ? '' : `; its answer asked to wait (Retry-After: ${wait}), so run again after that`;
    return new FhirError('BRG_ERR_FHIR_UNAVAILABLE', `${what} kept failing after ${retries + 1} attempts; the last was ${last}${after}.${unquoted}`, {
      status: failure?.status ?? 0,
      resourceType: label.resourceType,
      ...(failure ? { outcome } : { cause: error }),
      details: { attempts: retries + 1 },
    });
  }
  if (!failure) return answeredNoObject(error, label, what) ?? error;
  if (failure.status >= 200 && failure.status < 300) return unreadableAnswer(failure, label, what);
  const fields = { status: failure.status, resourceType: label.resourceType, outcome };
  if ((failure.status === 404 || failure.status === 405) && (label.action === 'search' || label.action === 'metadata')) {
    // A search answers an empty Bundle when nothing matches; 404/405 means the endpoint itself is missing. (A read's
    // 404 is one missing resource; a next page's is a broken link, reported as it is.)
    const next =
      label.action === 'metadata'
        ? 'Check fhir.baseUrl points at the FHIR R4 base.'
        : `Check fhir.baseUrl, and ask the EHR team to enable ${label.resourceType} search.`;
    return new FhirError(
      'BRG_ERR_FHIR_NOT_SUPPORTED',
      `${what} answered HTTP ${failure.status} with ${outcome.summary}: the server does not offer a request the bridge relies on, so the run stopped without rejecting anything. ${next}${unquoted}`,
      fields,
    );
  }
  const hint = failure.status === 401 ? ' The access token was rejected twice: check the SMART client and its scopes.' : '';
  return new FhirError('BRG_ERR_FHIR_HTTP', `${what} answered HTTP ${failure.status} with ${outcome.summary}.${hint}${unquoted}`, fields);
}

/**
 * A 2xx whose body is not JSON: the body is the data itself (a Bundle cut off mid-resource, a name with a raw control
 * character), so none of it is quoted, only its size.
 */
function unreadableAnswer(failure: HttpFailure, label: RequestLabel, what: string): BridgeError {
  const size = typeof failure.data === 'string' ? ` (${sizeText(Buffer.byteLength(failure.data))})` : '';
  return new FhirError(
    'BRG_ERR_FHIR_HTTP',
    `${what} answered HTTP ${failure.status} with a body that is not valid JSON${size}, so nothing of it was used. Run again; if it repeats, ask the EHR team why this request answers a broken body.`,
    { status: failure.status, resourceType: label.resourceType, outcome: { summary: 'a body that is not valid JSON', codes: [] } },
  );
}

function tooLargeError(error: ResponseTooLargeError, label: RequestLabel, what: string, limit: number): BridgeError {
  const seen = error.declared === undefined ? 'a body larger than' : `a body of ${sizeText(error.declared)} (Content-Length), over`;
  // A server that ignores _count answers a whole slice in one page: then only a smaller slice makes it smaller.
  const smaller =
    label.resourceType === 'AuditEvent' ? 'fhir.pageSize (or, for a server that ignores _count, fhir.maxResultsPerSlice)' : 'fhir.referenceBatchSize';
  return new BridgeError(
    'BRG_ERR_FHIR_TOO_LARGE',
    `${what} answered ${seen} the ${sizeText(limit)} limit; it was not read further. Lower ${smaller} so each answer is smaller, or raise fhir.maxResponseBytes (now ${limit}) if this host has the memory.`,
    { details: { resourceType: label.resourceType, limit, declared: error.declared } },
  );
}

function sizeText(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;
  return bytes >= 1024 ? `${Number((bytes / 1024).toFixed(1))} KiB` : `${bytes} bytes`;
}

/**
 * fhir-kit-client hangs the response on the parsed body with Object.defineProperty, which throws a bare TypeError when
 * a 200's JSON is no object (`null`, a number, a string): that is an answer that is no FHIR resource, said as such.
 */
function answeredNoObject(error: unknown, label: RequestLabel, what: string): BridgeError | undefined {
  if (!(error instanceof TypeError) || !error.message.includes('Object.defineProperty called on non-object')) return undefined;
  return new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `${what} answered JSON that is no FHIR resource (not an object). Check fhir.baseUrl, and any gateway in front of the server.`,
    {
      details: { resourceType: label.resourceType, status: 200 },
    },
  );
}

/**
 * The last answer's Retry-After as the server wrote it, when it is one (seconds or an HTTP date): a wait longer than
 * the retry time left ends the retries at once (src/http.ts), and the operator needs to know how long to wait.
 */
function retryAfterOf(failure: HttpFailure | undefined): string | undefined {
  const value = failure?.headers?.get('retry-after')?.trim();
  return value !== undefined && /^[\w ,:+-]{1,40}$/.test(value) ? value : undefined;
}
