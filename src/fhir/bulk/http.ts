/**
 * The HTTP under the Bulk Data client. The search path (transport.ts) cannot carry it: fhir-kit-client reads every body
 * whole and hides the headers the protocol lives on (202 + Content-Location, Retry-After, X-Progress), and NDJSON files
 * are far larger than fhir.maxResponseBytes. So these requests go through undici's `request` on a dispatcher with the
 * connector's proxy and CA (src/net) and no size cap; JSON answers (status, manifests, OperationOutcomes) are capped
 * here instead. The bearer goes only to the FHIR server's origin, is fetched per request from the TokenSource (so a
 * long export refreshes it between polls), and after a 401 (an export file's 403 too) is replaced once.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createGunzip } from 'node:zlib';
import { type Dispatcher, errors, request } from 'undici';
import { abortError, type Clock } from '../../clock.js';
import { BridgeError, isAbortError } from '../../errors.js';
import { parseRetryAfter, RETRYABLE_STATUSES, type RetryOptions, type RetryVerdict, withRetry } from '../../http.js';
import type { Logger } from '../../log.js';
import { proxyRefusalIn, proxyRefusedError, proxyTunnelIn } from '../../net/index.js';
import type { TokenSource } from '../../token-cache.js';
import { FhirError } from '../fhir-error.js';
import { describeAnswer, IN_SERVER_LOG, outcomeCodes, textNotQuoted } from '../outcome.js';
import { foreignLinkError, safeOrigin } from '../transport-errors.js';

export interface BulkHttpOptions {
  readonly baseUrl: string;
  readonly tokenSource: TokenSource;
  /** The connector's proxy and CA, without a response size cap (src/net createDispatcher). */
  readonly dispatcher: Dispatcher;
  readonly clock: Clock;
  readonly logger: Logger;
  /**
   * Headers of any answer, any gap between two chunks of a body; a JSON answer (readBody) must bring 1 KiB in each
   * timeoutMs until it ends, and end within timeoutMs plus its size cap at 64 KiB/s.
   */
  readonly timeoutMs: number;
  readonly retry: RetryOptions;
  /** Largest JSON answer read (status, manifest page, OperationOutcome). */
  readonly maxJsonBytes: number;
  readonly random?: () => number;
}

export interface BulkRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly url: string;
  /** Names the request in errors and logs (never its query, which may carry a signature). */
  readonly what: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Send the bearer token; refused (BRG_ERR_FHIR_FOREIGN_LINK) off the FHIR server's origin. */
  readonly bearer: boolean;
  /**
   * A 403 to the bearer is replayed once with a fresh token too, as a 401 is (an export file: a server may refuse a
   * token it issued before the client's grant changed). Not for the kick-off or status, whose 403 is reported as it is.
   */
  readonly renewOnForbidden?: boolean;
  readonly body?: string;
  readonly signal?: AbortSignal | undefined;
}

export interface BulkReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
}

/** A non-2xx answer, with its parsed body (an OperationOutcome, or text) and headers; the URL stays out. */
export class BulkHttpError extends Error {
  override readonly name = 'BulkHttpError';
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    readonly data: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

export class BulkHttp {
  readonly origin: string;

  constructor(readonly options: BulkHttpOptions) {
    this.origin = new URL(options.baseUrl).origin;
  }

  /** One request (a second after a 401, or a 403 with renewOnForbidden, with a new token); the body is the caller's. */
  async send(req: BulkRequest): Promise<BulkReply> {
    if (req.bearer && safeOrigin(req.url) !== this.origin) throw foreignLinkError(req.url, this.origin);
    for (let attempt = 1; ; attempt++) {
      const token = req.bearer ? await this.options.tokenSource.getToken(req.signal) : undefined;
      const reply = await this.raw(req, token);
      const refused = reply.status === 401 || (reply.status === 403 && req.renewOnForbidden === true);
      if (!refused || !token || attempt > 1) return reply;
      // RFC 6750 §3.1: the token expired or was revoked between polls; one replay with a fresh one.
      await reply.body.dump();
      this.options.tokenSource.invalidate(token);
      this.options.logger.info({ step: req.what, status: reply.status }, 'FHIR server rejected the access token; retrying once with a new one');
    }
  }

  /** `send`, failing with BulkHttpError unless the status is one of `ok`. */
  async expect(req: BulkRequest, ok: readonly number[]): Promise<BulkReply> {
    const reply = await this.send(req);
    if (ok.includes(reply.status)) return reply;
    throw new BulkHttpError(reply.status, reply.headers, await this.readBody(reply));
  }

  /** A request under the shared retry policy (408/429/5xx with Retry-After, timeouts, network errors). */
  async withRetries<T>(what: string, attempt: (attemptNumber: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    let retries = 0;
    try {
      return await withRetry(
        attempt,
        (error) => this.classify(error),
        {
          clock: this.options.clock,
          ...(signal ? { signal } : {}),
          ...(this.options.random ? { random: this.options.random } : {}),
          onRetry: (info) => {
            retries += 1;
            this.options.logger.warn({ step: what, attempt: info.attempt, delayMs: info.delayMs, reason: info.reason }, 'FHIR bulk request failed; retrying');
          },
        },
        this.options.retry,
      );
    } catch (error) {
      throw this.toError(error, what, retries + 1, signal);
    }
  }

  /**
   * The body as JSON (or its text, when it is not JSON), capped at maxJsonBytes (inflated). An export file's refusal
   * comes gzip-compressed (its request accepts gzip, and IIS in front of Epic compresses JSON): inflated, or its
   * OperationOutcome would reach messages as binary; one that does not inflate reads as no body.
   */
  async readBody(reply: BulkReply): Promise<unknown> {
    const gzip = (headerOf(reply.headers, 'content-encoding') ?? '').trim().toLowerCase() === 'gzip';
    const inflated = gzip ? reply.body.pipe(createGunzip()) : undefined;
    if (inflated) reply.body.on('error', (error) => inflated.destroy(error));
    // undici's bodyTimeout bounds only the gap between two chunks: an answer that trickles (a space every few seconds,
    // from a gateway or a stuck server) would be read for days, the run holding its lease. So every timeoutMs of it must
    // bring MIN_BYTES_PER_TIMEOUT or end, counted as they come over the wire (a few gzip bytes inflate to kilobytes of
    // spaces), and the whole of it must end within timeoutMs plus its size cap at MIN_RATE: a large manifest still
    // arriving is read, a trickle is a body timeout, retried like one.
    const { timeoutMs, maxJsonBytes } = this.options;
    const cut = (why: string): void => {
      reply.body.destroy(new errors.BodyTimeoutError(why));
    };
    let windowBytes = 0;
    // Piped into the inflater, the wire's chunks are seen as they pass; otherwise they are the loop's own.
    if (inflated)
      reply.body.on('data', (chunk: Buffer) => {
        windowBytes += chunk.length;
      });
    const progressed = (): void => {
      if (windowBytes < MIN_BYTES_PER_TIMEOUT) {
        cut(`The answer brought fewer than ${MIN_BYTES_PER_TIMEOUT} bytes in ${timeoutMs} ms`);
        return;
      }
      windowBytes = 0;
      watch = setTimeout(progressed, timeoutMs);
    };
    let watch = setTimeout(progressed, timeoutMs);
    const totalMs = timeoutMs + Math.ceil((maxJsonBytes / MIN_RATE) * 1000);
    const whole = setTimeout(() => cut(`The answer did not end within ${totalMs} ms`), totalMs);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of (inflated ?? reply.body) as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (!inflated) windowBytes += chunk.length;
        if (size > this.options.maxJsonBytes) {
          throw new BridgeError(
            'BRG_ERR_FHIR_TOO_LARGE',
            `A FHIR bulk answer was larger than ${this.options.maxJsonBytes} bytes; it was not read further. Raise fhir.maxResponseBytes if the manifest is that large.`,
          );
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (!(error instanceof BridgeError) && !isZlibError(error)) throw error;
      reply.body.destroy();
      inflated?.destroy();
      if (error instanceof BridgeError) throw error;
      return undefined;
    } finally {
      clearTimeout(watch);
      clearTimeout(whole);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }

  classify(error: unknown): RetryVerdict {
    if (error instanceof BulkHttpError) {
      if (!RETRYABLE_STATUSES.has(error.status)) return { retry: false };
      const retryAfterMs = parseRetryAfter(headerOf(error.headers, 'retry-after'), this.options.clock.now());
      return retryAfterMs === undefined ? { retry: true, reason: `HTTP ${error.status}` } : { retry: true, retryAfterMs, reason: `HTTP ${error.status}` };
    }
    if (isNetworkError(error)) return { retry: true, reason: networkErrorText(error) };
    return { retry: false };
  }

  /** What ends a bulk request: FhirError for the server's answers, BridgeErrors as they are, aborts as aborts. */
  toError(error: unknown, what: string, attempts: number, signal?: AbortSignal): unknown {
    if (signal?.aborted) return abortError(signal);
    if (error instanceof BridgeError || isAbortError(error)) return error;
    const refusal = proxyRefusalIn(error);
    if (refusal) return proxyRefusedError(refusal, `${what} at ${this.origin}`);
    if (error instanceof BulkHttpError) {
      // Told by its status and codes: an OperationOutcome's text may name a patient, and no scrubbing recognises a name.
      const summary = describeAnswer(error.data);
      const fields = { status: error.status, resourceType: 'export', outcome: { summary, codes: outcomeCodes(error.data) } };
      const unquoted = textNotQuoted(error.data, IN_SERVER_LOG);
      if (RETRYABLE_STATUSES.has(error.status)) {
        return new FhirError(
          'BRG_ERR_FHIR_UNAVAILABLE',
          `${what} at ${this.origin} kept failing after ${attempts} attempts; the last was HTTP ${error.status} with ${summary}.${unquoted}`,
          { ...fields, details: { attempts } },
        );
      }
      return new FhirError('BRG_ERR_FHIR_HTTP', `${what} at ${this.origin} answered HTTP ${error.status} with ${summary}.${unquoted}`, fields);
    }
    if (isNetworkError(error)) {
      return new FhirError(
        'BRG_ERR_FHIR_UNAVAILABLE',
        `${what} at ${this.origin} kept failing after ${attempts} attempts; the last was ${networkErrorText(error)}.`,
        {
          status: 0,
          resourceType: 'export',
          cause: error,
          details: { attempts },
        },
      );
    }
    return error;
  }

  private async raw(req: BulkRequest, token: string | undefined): Promise<BulkReply> {
    const headers: Record<string, string> = { ...req.headers };
    if (token) headers['authorization'] = `Bearer ${token}`;
    try {
      const response = await request(req.url, {
        method: req.method,
        headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        dispatcher: this.options.dispatcher,
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
        ...(req.signal ? { signal: req.signal } : {}),
      });
      return { status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      if (req.signal?.aborted) throw abortError(req.signal);
      throw error;
    }
  }
}

/** What each fhir.timeoutMs of a JSON answer must bring (or end): a few lines of a manifest; a trickle brings less. */
const MIN_BYTES_PER_TIMEOUT = 1024;
/** The slowest a JSON answer may arrive on the whole (bytes per second): its size cap then bounds how long it is read. */
const MIN_RATE = 64 * 1024;

/** The answer says it is JSON (application/json, application/fhir+json): its text is the FHIR server's own. */
export function saysJson(headers: IncomingHttpHeaders): boolean {
  return /\bjson\b/i.test(headerOf(headers, 'content-type') ?? '');
}

function isZlibError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/** A header's value (the first, when repeated). */
export function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Connection failures and undici's timeouts; a proxy's refusal is not one (it would refuse again). */
export function isNetworkError(error: unknown): boolean {
  if (!(error instanceof Error) || proxyRefusalIn(error)) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('UND_ERR_') || /^E[A-Z]+$/.test(code)) && code !== 'UND_ERR_ABORTED';
}

function networkErrorText(error: unknown): string {
  const tunnel = proxyTunnelIn(error);
  if (tunnel) return tunnel.message;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code) ? `a network error (${code})` : 'a network error';
}
