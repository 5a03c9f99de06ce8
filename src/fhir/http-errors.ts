/**
 * What a failed FHIR attempt threw, in the transport's own terms, before anything reads it:
 * - fhir-kit-client 2.0.3 throws `Error('HTTP 404: GET <url>')` with `response = { status, data }` and `config.headers`
 *   = the response's Headers, both for a non-2xx answer and for a 2xx whose body is not JSON (`data` is then the
 *   text). Its message holds the full URL, whose query can carry identifiers (MRNs, logins), so it becomes a
 *   FhirHttpError that keeps status, headers and body and drops the URL.
 * - A body over fhir.maxResponseBytes (issue #14.8): the dispatcher (fhir-dispatcher.ts) refuses a declared
 *   Content-Length with ResponseTooLargeError, and undici's `maxResponseSize` stops a streamed one with
 *   UND_ERR_RES_EXCEEDED_MAX_SIZE; fetch wraps either in a TypeError ('fetch failed' or 'terminated') as its cause.
 */

/** A non-2xx answer, or a 2xx whose body is not JSON; `data` is the parsed body, or its text when it is not JSON. */
export class FhirHttpError extends Error {
  override readonly name = 'FhirHttpError';
  constructor(
    readonly status: number,
    readonly headers: Headers | undefined,
    readonly data: unknown,
  ) {
    // The URL stays out of the message: its query can carry identifiers.
    super(`HTTP ${status}`);
  }
}

/** The body is larger than `limit`; `declared` is its Content-Length when the server sent one. */
export class ResponseTooLargeError extends Error {
  override readonly name = 'ResponseTooLargeError';
  constructor(
    readonly limit: number,
    readonly declared: number | undefined,
  ) {
    super(`the response body exceeds ${limit} bytes`);
  }
}

/** undici's code when a body outgrows the dispatcher's maxResponseSize. */
const EXCEEDED_MAX_SIZE = 'UND_ERR_RES_EXCEEDED_MAX_SIZE';

/** The error the transport reasons about: FhirHttpError, ResponseTooLargeError, or `error` itself. */
export function normalizeAttemptError(error: unknown, limit: number): unknown {
  const tooLarge = tooLargeIn(error, limit);
  if (tooLarge) return tooLarge;
  return fhirKitFailure(error) ?? error;
}

function fhirKitFailure(error: unknown): FhirHttpError | undefined {
  if (!(error instanceof Error) || error instanceof FhirHttpError) return undefined;
  const { response, config } = error as Error & { response?: { status?: unknown; data?: unknown }; config?: { headers?: unknown } };
  if (typeof response?.status !== 'number') return undefined;
  return new FhirHttpError(response.status, config?.headers instanceof Headers ? config.headers : undefined, response.data);
}

/** Walks the cause chain (fetch's TypeError → undici's error) for an over-size body. */
function tooLargeIn(error: unknown, limit: number): ResponseTooLargeError | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof ResponseTooLargeError) return current;
    if ((current as { code?: unknown }).code === EXCEEDED_MAX_SIZE) return new ResponseTooLargeError(limit, undefined);
  }
  return undefined;
}
