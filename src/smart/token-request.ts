/**
 * One token request: POST the form to the token endpoint and read the answer (SMART backend services §
 * "Request an access token" / "Response"). No retries here; the token source wraps this in the shared policy.
 * token_type is compared case-insensitively (SMART fixes "bearer", Epic's examples differ in case); access tokens
 * are opaque and never decoded (Epic: do not rely on them being JWTs).
 */
import { proxyRefusalIn, proxyRefusedError } from '../net/index.js';
import { parseJsonObject, type TokenErrorContext, tokenErrorFromResponse, tokenNetworkError, tokenResponseInvalid } from './token-errors.js';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface TokenRequest {
  readonly tokenUrl: string;
  readonly assertion: string;
  readonly scope: string;
  readonly fetch: typeof fetch;
  readonly signal?: AbortSignal;
  /** Gives up on a request after this long (real time: it bounds network I/O, not token logic). */
  readonly timeoutMs: number;
  /** For messages only; all public identifiers. */
  readonly context: TokenErrorContext;
  /** The caller's clock, for Retry-After as an HTTP-date. */
  readonly nowMs: () => number;
}

export interface TokenResponse {
  readonly accessToken: string;
  readonly expiresInSec: number;
  /** False when the server left out expires_in and the SMART recommendation of 300 s was assumed. */
  readonly expiresInStated: boolean;
  /** Granted scopes as sent; undefined when absent (RFC 6749 §5.1: then as requested). */
  readonly scope: string | undefined;
}

/** Assumed lifetime when a server omits expires_in: SMART's recommended value. */
const ASSUMED_EXPIRES_IN_SEC = 300;

export async function postTokenRequest(request: TokenRequest): Promise<TokenResponse> {
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion: request.assertion,
    scope: request.scope,
  });
  const timeout = AbortSignal.timeout(request.timeoutMs);
  let response: Response;
  let bodyText: string;
  try {
    response = await request.fetch(request.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      redirect: 'error',
      signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout,
    });
    bodyText = await response.text();
  } catch (error) {
    if (request.signal?.aborted) throw error; // the caller cancelled: not a network failure
    // A proxy refusing the tunnel will refuse the next attempt too: not retried, named as such.
    const refusal = proxyRefusalIn(error);
    if (refusal) throw proxyRefusedError(refusal, `SMART token request to ${request.tokenUrl}`);
    throw tokenNetworkError(error, request.context);
  }
  if (response.status < 200 || response.status > 299) {
    throw tokenErrorFromResponse({ status: response.status, headers: response.headers, bodyText }, request.context, request.nowMs());
  }
  return readTokenResponse(bodyText, request.context);
}

/** RFC 6750 leaves the token's characters to the server, but a header value must be visible ASCII. */
const HEADER_SAFE_TOKEN = /^[\x21-\x7e]+$/;

function readTokenResponse(bodyText: string, context: TokenErrorContext): TokenResponse {
  const body = parseJsonObject(bodyText);
  if (body === undefined) throw tokenResponseInvalid(context, 'the body is not a JSON object');
  const accessToken = body['access_token'];
  if (typeof accessToken !== 'string' || accessToken.length === 0) throw tokenResponseInvalid(context, 'access_token is missing');
  // It goes into an Authorization header, whose errors quote the value: one that cannot be sent is refused here, unquoted.
  if (!HEADER_SAFE_TOKEN.test(accessToken)) throw tokenResponseInvalid(context, 'access_token holds a space or control character (not a bearer token)');
  const tokenType = body['token_type'];
  if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
    throw tokenResponseInvalid(context, `token_type is ${JSON.stringify(tokenType ?? null)}, not "bearer"`);
  }
  const expiresIn = readExpiresIn(body['expires_in']);
  if (expiresIn === null) throw tokenResponseInvalid(context, `expires_in is ${JSON.stringify(body['expires_in'])}, not a positive number of seconds`);
  const scope = typeof body['scope'] === 'string' ? body['scope'] : undefined;
  return { accessToken, expiresInSec: expiresIn ?? ASSUMED_EXPIRES_IN_SEC, expiresInStated: expiresIn !== undefined, scope };
}

/** Seconds, from a number or a digit string; undefined when absent, null when present but unusable. */
function readExpiresIn(value: unknown): number | undefined | null {
  if (value === undefined) return undefined;
  const seconds = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 ? seconds : null;
}
