/**
 * The asynchronous half of SMART Bulk Data v2 `$export`: the kick-off (exactly `Accept: application/fhir+json` and
 * `Prefer: respond-async`, 202 + Content-Location) and polling the status URL until the manifest comes (200). While
 * the server works it answers 202 with Retry-After and X-Progress; a 429 pauses polling for its Retry-After; a 5xx
 * whose OperationOutcome carries a transient issue code is retried, any other error ends the export.
 * See: https://hl7.org/fhir/uv/bulkdata/export.html (Bulk Data Kick-off Request, Bulk Data Status Request).
 */
import { abortError } from '../../clock.js';
import { BridgeError } from '../../errors.js';
import { FhirError } from '../fhir-error.js';
import { describeAnswer, IN_SERVER_LOG, namedIn, outcomeCodes, textNotQuoted } from '../outcome.js';
import { safeOrigin } from '../transport-errors.js';
import type { ExportRequest } from './checkpoint.js';
import { type BulkHttp, BulkHttpError, type BulkReply, headerOf, isNetworkError, saysJson } from './http.js';
import { pollDelay } from './poll-delay.js';

/** Issue types of the `transient` family (FHIR IssueType): the poll failed, not the export. */
const TRANSIENT_CODES = new Set(['transient', 'lock-error', 'no-store', 'exception', 'timeout', 'incomplete', 'throttled']);

/** The kick-off URL of a request: `{base}/$export`, `/Patient/$export` or `/Group/{id}/$export`, with `_type` and `_since`. */
export function kickOffUrl(baseUrl: string, request: Omit<ExportRequest, 'base'>): string {
  const path =
    request.level === 'system' ? '/$export' : request.level === 'patient' ? '/Patient/$export' : `/Group/${encodeURIComponent(request.groupId ?? '')}/$export`;
  const url = new URL(baseUrl.replace(/\/+$/, '') + path);
  url.searchParams.set('_type', request.types.join(','));
  if (request.since !== undefined) url.searchParams.set('_since', request.since);
  return url.toString();
}

/** Starts an export; resolves with the absolute status URL. A refusal (4xx) names the types asked for. */
export async function kickOff(http: BulkHttp, request: ExportRequest, signal?: AbortSignal): Promise<string> {
  const url = kickOffUrl(http.options.baseUrl, request);
  const what = `FHIR $export kick-off (${request.level} level, ${request.since ? `since ${request.since}` : 'everything'})`;
  // The last refusal's body: its text chooses the advice (the types it names), and is never quoted.
  let answer: unknown;
  try {
    const reply = await http.withRetries(
      what,
      async () => {
        try {
          return await http.expect(
            {
              method: 'GET',
              url,
              what,
              bearer: true,
              signal,
              headers: { accept: 'application/fhir+json', prefer: 'respond-async' },
            },
            [202],
          );
        } catch (error) {
          if (error instanceof BulkHttpError) answer = error.data;
          throw outcomeUnknown(error) ? unknownKickOff(error, what, http.origin) : error;
        }
      },
      signal,
    );
    await reply.body.dump();
    const location = headerOf(reply.headers, 'content-location');
    if (!location) throw exportError(`${what} at ${http.origin} answered 202 without a Content-Location (the status URL)`, 202);
    const statusUrl = new URL(location, url).toString();
    requireFhirOrigin(http, statusUrl, 'its status URL');
    return statusUrl;
  } catch (error) {
    if (error instanceof FhirError && error.code === 'BRG_ERR_FHIR_HTTP') throw refusal(error, answer, request, `${what} at ${http.origin}`);
    throw error;
  }
}

/**
 * A kick-off is not idempotent: each one the server accepts starts a whole export, which nobody then polls or deletes.
 * It is asked again only when the server cannot have accepted it: a 429, 503 or 408 (it says so), or a connection
 * that never opened (refused, no route, no name). A 500, a gateway's 502 or 504, a timeout or a reset (which may come
 * after the request went out: nothing here tells a TLS handshake's from a lost answer) may hide an accepted export: the
 * run stops there instead of starting more, and the next run kicks off again.
 */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'UND_ERR_CONNECT_TIMEOUT']);

function outcomeUnknown(error: unknown): boolean {
  if (error instanceof BulkHttpError) return error.status === 500 || error.status === 502 || error.status === 504;
  return isNetworkError(error) && !NOT_SENT.has(String((error as { code?: unknown }).code));
}

function unknownKickOff(error: unknown, what: string, origin: string): FhirError {
  const answer = error instanceof BulkHttpError ? `HTTP ${error.status}` : `a network error (${String((error as { code?: unknown }).code)})`;
  return new FhirError(
    'BRG_ERR_FHIR_UNAVAILABLE',
    `${what} at ${origin} got no clear answer (${answer}): the server may have started the export all the same, so it is not asked again in this run (each kick-off the server accepts starts a whole export). The next run kicks off again; an export left behind is the server's to expire.`,
    { status: error instanceof BulkHttpError ? error.status : 0, resourceType: 'export', cause: error, details: { kickOff: 'unknown' } },
  );
}

/**
 * A kick-off refused for good. When the server's text names requested types ("Resource type X is not available"), the
 * advice is about those types; otherwise it is about what the status points at (the client, the scopes, the level or
 * Group, the parameters), not a list of every type to remove. The answer is told by its status and codes, never its
 * text (it may name a patient).
 */
function refusal(error: FhirError, body: unknown, request: ExportRequest, what: string): FhirError {
  const named = namedIn(body, request.types);
  const refused = `${what} was refused (HTTP ${error.status} with ${describeAnswer(body)})`;
  const unquoted = textNotQuoted(body, IN_SERVER_LOG);
  const fields = { status: error.status, ...(error.outcome ? { outcome: error.outcome } : {}) };
  if (named.length > 0) {
    const scopes = named.map((type) => `system/${type}.read`).join(' ');
    const them = named.length === 1 ? 'it' : 'them';
    return new FhirError(
      'BRG_ERR_FHIR_EXPORT',
      `${refused} for ${named.length === 1 ? 'type' : 'types'} ${named.join(', ')}. Remove ${them} from source.types if the server does not export ${them}, or have the scopes ${scopes} granted to the client.${unquoted}`,
      { ...fields, resourceType: named.join(','), details: { types: named.join(',') } },
    );
  }
  return new FhirError('BRG_ERR_FHIR_EXPORT', `${refused}. ${refusalAdvice(error.status, request)}${unquoted}`, { ...fields, resourceType: 'export' });
}

function refusalAdvice(status: number, request: ExportRequest): string {
  const scopes = request.types.map((type) => `system/${type}.read`).join(' ');
  if (status === 401)
    return 'The FHIR server did not accept the access token its token endpoint issued: check that smart.tokenUrl belongs to this fhir.baseUrl, and that the client is enabled for Bulk Data export at the EHR.';
  if (status === 403) {
    // A Group's export needs the Group too: without the server's words, the advice says so.
    const group = request.level === 'group' ? ' (and system/Group.read, for a Group export)' : '';
    return `The client may not export: have the scopes ${scopes}${group} granted to it, and Bulk Data export enabled for it at the EHR.`;
  }
  if (status === 404 || status === 405) {
    return request.level === 'group'
      ? `Check source.groupId (${request.groupId ?? 'none'}): the server does not know that Group, or offers no Group export.`
      : `Check source.level (${request.level}) and fhir.baseUrl: the server offers no export there.`;
  }
  return `Check the request's parameters against what the server's log says of it (source.types: ${request.types.join(', ')}${request.since ? `; _since ${request.since}` : ''}).`;
}

export interface PollOptions {
  readonly pollMinMs: number;
  /** When polling gives up (clock ms): kick-off time + source.pollMaxMinutes. */
  readonly deadlineMs: number;
  readonly signal?: AbortSignal | undefined;
  /** X-Progress, cleaned, whenever it changes. */
  readonly onProgress?: (progress: string) => void;
}

export type PollResult =
  /** The first manifest page, parsed. */
  | { readonly kind: 'manifest'; readonly page: unknown }
  /** 404/410: the server no longer knows the export (expired, deleted): a new one is needed. */
  | { readonly kind: 'gone'; readonly status: number };

/**
 * The status URL and manifest pages are read with the bearer, which goes only to the FHIR server's origin. One
 * elsewhere (a TLS-terminating proxy's http:// Content-Location, another host or port) could never be read: the
 * export is refused as failed (BRG_ERR_FHIR_EXPORT, abandoned) rather than kept in the checkpoint to fail every run.
 */
export function requireFhirOrigin(http: BulkHttp, url: string, what: string): void {
  const origin = safeOrigin(url);
  if (origin === http.origin) return;
  throw exportError(
    `The FHIR server's export named ${what} on ${origin}, not on ${http.origin}; the bridge sends its token only to the FHIR server, so it cannot follow it. Check that fhir.baseUrl is the server's public base URL (a proxy in front may rewrite it), or ask the EHR team`,
    202,
  );
}

/**
 * Polls until the manifest, the server forgets the export, or the deadline. The deadline is enforced only on an answer
 * that the export is still in progress, so every call polls at least once (a resumed run's export may be ready).
 */
export async function pollStatus(http: BulkHttp, statusUrl: string, options: PollOptions): Promise<PollResult> {
  requireFhirOrigin(http, statusUrl, 'its status URL');
  const { clock, logger, retry } = http.options;
  const what = 'FHIR $export status';
  let backoff = 0;
  let failures = 0;
  let lastProgress: string | undefined;
  const wait = async (retryAfter: string | undefined, reason: string): Promise<void> => {
    const delay = pollDelay(retryAfter, clock.now(), options.pollMinMs, backoff);
    backoff = delay.basis === 'backoff' ? backoff + 1 : 0;
    if (delay.basis !== 'retry-after' && reason !== 'in progress')
      logger.info({ delayMs: delay.ms, basis: delay.basis, reason }, 'FHIR $export status: polling again later');
    // Before the deadline, the last poll comes right at it; after it (a resumed run), the wait is the server's.
    const left = options.deadlineMs - clock.now() + 1;
    await clock.sleep(left > 0 ? Math.min(delay.ms, left) : delay.ms, options.signal);
  };
  // Status polls that keep failing (no answer, throttled, a transient 5xx of any number): before the deadline the run
  // stops and the next one polls the same export again; past it the export is given up (abandoned), or a status URL
  // that only ever fails would hold the connector for good. Called only where the status URL itself kept failing: a
  // token, key or proxy failure says nothing of the export, which may be ready.
  const giveUp = (error: unknown): unknown => (clock.now() > options.deadlineMs && error instanceof BridgeError ? notReady(options, error.message) : error);
  for (;;) {
    if (options.signal?.aborted) throw abortError(options.signal);
    let reply: BulkReply;
    let body: unknown;
    try {
      reply = await http.send({ method: 'GET', url: statusUrl, what, bearer: true, signal: options.signal, headers: { accept: 'application/json' } });
      // A body that stalls or never ends (readBody's time bound) is a poll that got no answer, as a refused connection is.
      body = await http.readBody(reply);
    } catch (error) {
      if (!isNetworkError(error)) throw http.toError(error, what, failures, options.signal);
      if (++failures >= retry.maxAttempts) throw giveUp(http.toError(error, what, failures, options.signal));
      await wait(undefined, 'network error');
      continue;
    }
    const status = reply.status;
    if (status === 200 && !gatewayPage(reply, body)) return { kind: 'manifest', page: body };
    if (status === 200) {
      // No JSON at all (an HTML page, an empty body) is no manifest from the FHIR server: a captive portal's or a
      // gateway's page. Polled again like a gateway's 5xx, within the same bounds: an export of hours is not given up
      // (and deleted) for one page.
      if (++failures >= retry.maxAttempts) throw giveUp(notJsonAnswer(http, what, body));
      logger.warn({ status, attempt: failures }, 'FHIR $export status: answered 200 with no JSON (not a manifest); polling again');
      await wait(headerOf(reply.headers, 'retry-after'), 'no manifest');
    } else if (status === 202) {
      failures = 0;
      const progress = cleanProgress(headerOf(reply.headers, 'x-progress'));
      if (progress !== undefined && progress !== lastProgress) {
        lastProgress = progress;
        options.onProgress?.(progress);
        logger.info({ progress }, 'FHIR $export in progress');
      }
      // Only the server's own "not ready" ends the export at the deadline: a run resumed after a long downtime polls
      // first, and takes the manifest if the export finished meanwhile.
      if (clock.now() > options.deadlineMs) throw notReady(options);
      await wait(headerOf(reply.headers, 'retry-after'), 'in progress');
    } else if (status === 429) {
      // Throttled: not a failure of the export, and the pause is the server's to choose (within the clamp). Past the
      // deadline it counts as a failed poll, so throttling cannot keep a run waiting forever.
      if (clock.now() > options.deadlineMs && ++failures >= retry.maxAttempts)
        throw giveUp(http.toError(new BulkHttpError(status, reply.headers, body), what, failures, options.signal));
      logger.warn({ retryAfter: headerOf(reply.headers, 'retry-after') ?? null }, 'FHIR $export status: throttled (429); pausing polling');
      await wait(headerOf(reply.headers, 'retry-after'), 'throttled');
    } else if (status === 404 || status === 410) {
      return { kind: 'gone', status };
    } else if (status === 401 || status === 403) {
      // The client's token or grant, not the export: kept, so the run after the fix polls the same export again.
      throw http.toError(new BulkHttpError(status, reply.headers, body), what, failures + 1, options.signal);
    } else if ((status >= 500 && isTransient(body)) || gatewayFailure(status, body)) {
      if (++failures >= retry.maxAttempts) throw giveUp(http.toError(new BulkHttpError(status, reply.headers, body), what, failures, options.signal));
      logger.warn({ status, attempt: failures }, 'FHIR $export status: transient error; polling again');
      await wait(headerOf(reply.headers, 'retry-after'), 'transient error');
    } else {
      // Told by its status and codes: the text may name a patient. It is read where the export is known by its URL.
      const where = `the FHIR server's log of the export ${withoutQuery(statusUrl)} has it`;
      throw exportError(
        `The FHIR server reports the export failed: ${what} at ${http.origin} answered HTTP ${status} with ${describeAnswer(body)}.${textNotQuoted(body, where)} The next run starts a new export`,
        status,
        body,
      );
    }
  }
}

/** `DELETE` the status URL: the server may drop the job and its files. Best effort: a failure is logged, not thrown. */
export async function deleteExport(http: BulkHttp, statusUrl: string, signal?: AbortSignal): Promise<boolean> {
  const what = 'FHIR $export delete';
  try {
    const reply = await http.send({ method: 'DELETE', url: statusUrl, what, bearer: true, signal, headers: { accept: 'application/fhir+json' } });
    await reply.body.dump();
    if (reply.status >= 200 && reply.status < 300) return true;
    http.options.logger.warn({ status: reply.status }, 'FHIR $export delete was not accepted; the server expires the export itself');
  } catch (error) {
    if (signal?.aborted) throw abortError(signal);
    const reason = error instanceof BridgeError ? error.code : error instanceof Error ? ((error as { code?: string }).code ?? error.name) : 'error';
    http.options.logger.warn({ reason }, 'FHIR $export delete failed; the server expires the export itself');
  }
  return false;
}

/** A URL without its query and fragment (a status URL's may carry a signature), to name it in a message. */
function withoutQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

export function exportError(message: string, status: number, body?: unknown): FhirError {
  const outcome = body === undefined ? undefined : { summary: describeAnswer(body), codes: outcomeCodes(body) };
  return new FhirError('BRG_ERR_FHIR_EXPORT', `${message}.`, { status, resourceType: 'export', ...(outcome ? { outcome } : {}) });
}

/** @param lastFailure - why the last polls failed, when they did (the server never said "in progress" past the deadline). */
function notReady(options: PollOptions, lastFailure?: string): FhirError {
  const failed = lastFailure ? ` (its status polls kept failing: ${lastFailure.replace(/\.$/, '')})` : '';
  return exportError(
    `The FHIR server's export was not ready by ${new Date(options.deadlineMs).toISOString()} (source.pollMaxMinutes after its kick-off)${failed}; it was abandoned and the next run starts a new export. Raise source.pollMaxMinutes if the server's exports take that long`,
    202,
  );
}

/**
 * A 5xx without an OperationOutcome is not the server saying the export failed (Bulk Data answers that with one): a
 * gateway in front of it (an HTML page from a load balancer), or the web server's own error page (IIS's 500 before the
 * FHIR layer answered). Polled again like a transient error, within the same bounds: an export of hours is not thrown
 * away for one page.
 */
function gatewayFailure(status: number, body: unknown): boolean {
  return status >= 500 && status <= 599 && (body as { resourceType?: unknown } | null)?.resourceType !== 'OperationOutcome';
}

/**
 * A 200 that is no answer of the FHIR server: no body, or a body that is not JSON and does not say it is (a captive
 * portal's or a gateway's page). JSON the server sent broken stays the server's (a broken manifest, given up as such).
 */
export function gatewayPage(reply: BulkReply, body: unknown): boolean {
  return body === undefined || (typeof body === 'string' && !saysJson(reply.headers));
}

/**
 * A status or manifest page answered 200 with no JSON: not BRG_ERR_FHIR_EXPORT (which gives the export up), as the
 * export itself may be ready and whole behind whatever answered.
 */
export function notJsonAnswer(http: BulkHttp, what: string, body: unknown): FhirError {
  const summary = describeAnswer(body);
  return new FhirError(
    'BRG_ERR_FHIR_HTTP',
    `${what} at ${http.origin} answered HTTP 200 with ${summary}, not the export's manifest: the page of something in front of the FHIR server (a captive portal, a proxy, a gateway). If this repeats, check the network path from this host to the FHIR server.`,
    { status: 200, resourceType: 'export', outcome: { summary, codes: [] } },
  );
}

function isTransient(body: unknown): boolean {
  const issues = (body as { resourceType?: unknown; issue?: unknown } | null)?.issue;
  if (!Array.isArray(issues)) return false;
  return issues.some((issue) => typeof (issue as { code?: unknown }).code === 'string' && TRANSIENT_CODES.has((issue as { code: string }).code));
}

/**
 * X-Progress is free text from the server, which may say what it is exporting ("exporting the chart of <a name>"): only
 * its figures are shown and logged, a percentage or "N of M", never its words (a name survives any scrubbing);
 * undefined when it has none.
 */
export function cleanProgress(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const percent = /(?<![\d.])(\d{1,3}(?:\.\d{1,2})?)\s*%/.exec(value);
  if (percent) return `${percent[1]}%`;
  const count = /(?<!\d)(\d{1,12})\s*(?:of|\/)\s*(\d{1,12})(?!\d)/i.exec(value);
  return count ? `${count[1]} of ${count[2]}` : undefined;
}
