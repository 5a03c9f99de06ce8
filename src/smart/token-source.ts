/**
 * SMART backend-services access tokens toward the EHR: discover the token URL once, sign a fresh assertion for
 * every request (a new jti each time, retries included, since Epic refuses a jti it has seen), post it with the
 * shared retry policy, and cache the token single-flight through `createCachedTokenSource`.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/backend-services.html
 */
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { withRetry, type RetryVerdict } from '../http.js';
import { uuidSource, type IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import { createCachedTokenSource, type IssuedToken, type TokenSource } from '../token-cache.js';
import { assertionClaims, buildAssertion, type AssertionClaims } from './assertion.js';
import { discoverTokenUrl } from './discovery.js';
import type { SigningKey } from './keys.js';
import { scopesNotGranted } from './scopes.js';
import { estimateOffsetMs, skewCouldExplain } from './skew.js';
import { SmartAuthError } from './token-errors.js';
import { postTokenRequest } from './token-request.js';

export interface SmartTokenOptions {
  /** FHIR R4 base; the token URL is discovered from it when `tokenUrl` is absent. */
  readonly fhirBaseUrl: string;
  /** Token endpoint; skips discovery. Also the assertion's aud, so it must be exactly the URL the server expects. */
  readonly tokenUrl?: string;
  readonly clientId: string;
  /** Space-separated scopes; config defaults to 'system/AuditEvent.read system/Patient.read system/Practitioner.read'. */
  readonly scope: string;
  /** The signing key, or a loader called for every token request (so a rotated key is picked up). */
  readonly key: SigningKey | (() => Promise<SigningKey>);
  /** JWK Set URL for the assertion header; must equal the registered URL. Default: omitted. */
  readonly jku?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** jti source. Default: random UUIDs. */
  readonly newJti?: IdSource;
  /** Assertion exp − now. Default 240 s. */
  readonly lifetimeSec?: number;
  /** Assertion iat/nbf = now − skew. Default 30 s. */
  readonly skewSec?: number;
  /** Default: the global fetch. */
  readonly fetch?: typeof fetch;
  /** Refresh this long before expiry. Default 60 000 ms. */
  readonly refreshMarginMs?: number;
  /** Called after every token actually fetched (metrics). */
  readonly onRefresh?: () => void;
  /** Timeout of one token or discovery request. Default 30 000 ms. */
  readonly requestTimeoutMs?: number;
}

interface Session {
  tokenUrl: string | undefined;
  /** Server time minus local time, learnt from a skew-explained rejection; applied to every later assertion. */
  offsetMs: number;
}

export function createSmartTokenSource(options: SmartTokenOptions): TokenSource {
  if (options.clientId.length === 0) throw new BridgeError('BRG_ERR_CONFIG_INVALID', 'smart.clientId is empty.');
  const session: Session = { tokenUrl: options.tokenUrl, offsetMs: 0 };
  const fetchToken = (signal?: AbortSignal): Promise<IssuedToken> => fetchWithSkewRecovery(options, session, signal);
  return createCachedTokenSource(fetchToken, {
    clock: options.clock,
    refreshMarginMs: options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS,
    ...(options.onRefresh ? { onRefresh: options.onRefresh } : {}),
  });
}

const DEFAULT_REFRESH_MARGIN_MS = 60_000;

/** One token under the shared retry policy; an invalid_client that clock skew explains earns one more try at the server's time. */
async function fetchWithSkewRecovery(options: SmartTokenOptions, session: Session, signal?: AbortSignal): Promise<IssuedToken> {
  const attempt: { sent?: AssertionClaims } = {};
  try {
    return await requestWithRetry(options, session, attempt, signal);
  } catch (error) {
    const offsetMs = skewCorrection(error, attempt.sent, options.clock.now());
    if (offsetMs === undefined) throw error;
    // Log the measured skew only: never the assertion, nor any claim beyond its timing.
    options.logger.warn({ skewMs: offsetMs, tokenUrl: session.tokenUrl }, 'SMART token endpoint rejected the assertion and its clock differs from ours; retrying once with its time');
    session.offsetMs = offsetMs;
    return await requestWithRetry(options, session, attempt, signal);
  }
}

/** The new clock offset when skew explains an invalid_client rejection, else undefined. */
function skewCorrection(error: unknown, sent: AssertionClaims | undefined, clientNowMs: number): number | undefined {
  if (!(error instanceof SmartAuthError) || error.code !== 'BRG_ERR_SMART_INVALID_CLIENT') return undefined;
  if (error.serverDateMs === undefined || sent === undefined || !skewCouldExplain(sent, error.serverDateMs)) return undefined;
  return estimateOffsetMs(error.serverDateMs, clientNowMs);
}

function requestWithRetry(options: SmartTokenOptions, session: Session, attempt: { sent?: AssertionClaims }, signal?: AbortSignal): Promise<IssuedToken> {
  return withRetry(
    () => requestOnce(options, session, attempt, signal),
    classifyFailure,
    {
      clock: options.clock,
      ...(signal ? { signal } : {}),
      onRetry: ({ attempt: n, delayMs, reason }) => options.logger.warn({ attempt: n, delayMs, reason }, 'SMART token request failed; retrying with a new assertion'),
    },
  );
}

function classifyFailure(error: unknown): RetryVerdict {
  if (error instanceof SmartAuthError && error.transient) {
    const reason = error.status === 0 ? 'network error' : `HTTP ${error.status}`;
    return error.retryAfterMs === undefined ? { retry: true, reason } : { retry: true, reason, retryAfterMs: error.retryAfterMs };
  }
  if (error instanceof BridgeError && error.code === 'BRG_ERR_SMART_DISCOVERY' && error.details['transient'] === true) {
    return { retry: true, reason: 'discovery failed' };
  }
  return { retry: false };
}

async function requestOnce(options: SmartTokenOptions, session: Session, attempt: { sent?: AssertionClaims }, signal?: AbortSignal): Promise<IssuedToken> {
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const doFetch = options.fetch ?? fetch;
  session.tokenUrl ??= await discoverTokenUrl(options.fhirBaseUrl, {
    clientId: options.clientId, fetch: doFetch, signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
  });
  const tokenUrl = session.tokenUrl;
  const key = typeof options.key === 'function' ? await options.key() : options.key;
  const input = {
    key, clientId: options.clientId, tokenUrl, jti: (options.newJti ?? uuidSource)(),
    nowSec: (options.clock.now() + session.offsetMs) / 1000,
    ...(options.lifetimeSec === undefined ? {} : { lifetimeSec: options.lifetimeSec }),
    ...(options.skewSec === undefined ? {} : { skewSec: options.skewSec }),
    ...(options.jku === undefined ? {} : { jku: options.jku }),
  };
  attempt.sent = assertionClaims(input);
  const response = await postTokenRequest({
    tokenUrl, assertion: await buildAssertion(input), scope: options.scope, fetch: doFetch, timeoutMs,
    context: { tokenUrl, clientId: options.clientId, kid: key.kid, scope: options.scope }, nowMs: () => options.clock.now(),
    ...(signal ? { signal } : {}),
  });
  const missing = scopesNotGranted(options.scope, response.scope);
  if (missing.length > 0) options.logger.warn({ notGranted: missing, granted: response.scope }, 'SMART token granted fewer scopes than requested');
  if (!response.expiresInStated) options.logger.warn({ assumedExpiresInSec: response.expiresInSec }, 'SMART token response has no expires_in');
  options.logger.debug({ kid: key.kid, alg: key.alg, expiresInSec: response.expiresInSec }, 'SMART access token issued');
  return { accessToken: response.accessToken, expiresInSec: response.expiresInSec };
}
