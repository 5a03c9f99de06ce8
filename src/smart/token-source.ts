/**
 * SMART backend-services access tokens toward the EHR: discover the token URL once, sign a fresh assertion for
 * every request (a new jti each time, retries included, since Epic refuses a jti it has seen), post it under the
 * shared retry policy with the token's own budget (TOKEN_RETRY: a token endpoint that keeps failing ends as a SMART
 * error within about a minute), and cache the token single-flight through `createCachedTokenSource`.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/backend-services.html
 */
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { type RetryOptions, type RetryVerdict, TOKEN_RETRY, withRetry } from '../http.js';
import { type IdSource, uuidSource } from '../ids.js';
import type { Logger } from '../log.js';
import { createCachedTokenSource, type IssuedToken, type TokenSource } from '../token-cache.js';
import { type AssertionClaims, assertionClaims, buildAssertion } from './assertion.js';
import { discoverTokenUrl, servedResourceTypes } from './discovery.js';
import { keyToSignWith } from './jwks-url.js';
import type { SigningKey } from './keys.js';
import { scopesNotGranted } from './scopes.js';
import { estimateOffsetMs, skewCouldExplain } from './skew.js';
import {
  invalidScopeWithMetadata,
  looksLikeEpic,
  SmartAuthError,
  scopeResourceType,
  scopesToRemove,
  type TokenErrorContext,
  tokenRetriesSpent,
} from './token-errors.js';
import { postTokenRequest } from './token-request.js';

export interface SmartTokenOptions {
  /** FHIR R4 base; the token URL is discovered from it when `tokenUrl` is absent. */
  readonly fhirBaseUrl: string;
  /** Token endpoint; skips discovery. Also the assertion's aud, so it must be exactly the URL the server expects. */
  readonly tokenUrl?: string;
  readonly clientId: string;
  /** Space-separated scopes; config defaults to 'system/AuditEvent.read system/Patient.read system/Practitioner.read'. */
  readonly scope: string;
  /**
   * The signing key, or a loader called for every token request (so a rotated key is picked up). A key with `next`
   * (`bridge keys rotate`) hands over to it once it is due and, with `jku`, served there (jwks-url.ts).
   */
  readonly key: SigningKey | (() => Promise<SigningKey>);
  /** JWK Set URL for the assertion header; must equal the registered URL. Default: omitted. */
  readonly jku?: string;
  /**
   * False: sign with the active key even when a rotated key is due, and record nothing (`bridge doctor` checks, it does
   * not change the keys directory; its JWK Set URL check reports a due key instead). Default true.
   */
  readonly activateDueKey?: boolean;
  readonly clock: Clock;
  readonly logger: Logger;
  /** jti source. Default: random UUIDs. */
  readonly newJti?: IdSource;
  /** Assertion exp − now. Default 240 s. */
  readonly lifetimeSec?: number;
  /** Assertion iat/nbf = now − skew. Default 30 s. */
  readonly skewSec?: number;
  /** Discovery and token requests. Default: the global fetch. The composition root passes fetchVia(dispatcher) (src/net): the proxy and CA. */
  readonly fetch?: typeof fetch;
  /** Refresh this long before expiry. Default 60 000 ms. */
  readonly refreshMarginMs?: number;
  /** Called after every token actually fetched (metrics). */
  readonly onRefresh?: () => void;
  /** Timeout of one token or discovery request. Default 30 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Retries of one token fetch. Default TOKEN_RETRY (4 attempts within 60 s). */
  readonly retry?: RetryOptions;
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
    // A failed fetch already spent its retries: the requests queued behind it share its answer, not a new series.
    failureCooldownMs: FAILURE_COOLDOWN_MS,
    ...(options.onRefresh ? { onRefresh: options.onRefresh } : {}),
  });
}

const DEFAULT_REFRESH_MARGIN_MS = 60_000;
const FAILURE_COOLDOWN_MS = 30_000;

/** One token under the shared retry policy; an invalid_client that clock skew explains earns one more try at the server's time. */
async function fetchWithSkewRecovery(options: SmartTokenOptions, session: Session, signal?: AbortSignal): Promise<IssuedToken> {
  const attempt: { sent?: AssertionClaims } = {};
  try {
    return await requestWithRetry(options, session, attempt, signal);
  } catch (error) {
    const offsetMs = skewCorrection(error, attempt.sent, options.clock.now());
    if (offsetMs === undefined) throw error;
    // Log the measured skew only: never the assertion, nor any claim beyond its timing.
    options.logger.warn(
      { skewMs: offsetMs, tokenUrl: session.tokenUrl },
      'SMART token endpoint rejected the assertion and its clock differs from ours; retrying once with its time',
    );
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

/** One token fetch within the token's own budget; a transient failure that outlasts it becomes one final SMART error. */
async function requestWithRetry(options: SmartTokenOptions, session: Session, attempt: { sent?: AssertionClaims }, signal?: AbortSignal): Promise<IssuedToken> {
  const started = options.clock.now();
  let attempts = 1;
  try {
    return await withRetry(
      () => requestOnce(options, session, attempt, signal),
      classifyFailure,
      {
        clock: options.clock,
        ...(signal ? { signal } : {}),
        onRetry: ({ attempt: n, delayMs, reason }) => {
          attempts = n + 1;
          options.logger.warn({ attempt: n, delayMs, reason }, 'SMART token request failed; retrying with a new assertion');
        },
      },
      options.retry ?? TOKEN_RETRY,
    );
  } catch (error) {
    if (error instanceof SmartAuthError && error.transient)
      throw tokenRetriesSpent(error, errorContext(options, session), attempts, options.clock.now() - started);
    if (error instanceof SmartAuthError && error.code === 'BRG_ERR_SMART_INVALID_SCOPE') throw await scopeErrorWithMetadata(error, options, session, signal);
    throw error;
  }
}

/**
 * invalid_scope whose answer does not say which scope: the server's /metadata (unauthenticated) may, by not listing
 * the scope's resource type (Epic's sandbox lists no AuditEvent). Best effort: any failure keeps the original error.
 */
async function scopeErrorWithMetadata(error: SmartAuthError, options: SmartTokenOptions, session: Session, signal?: AbortSignal): Promise<SmartAuthError> {
  if (scopesToRemove(options.scope, error.description === undefined ? {} : { description: error.description }).scopes.length > 0) return error;
  const timeout = AbortSignal.timeout(options.requestTimeoutMs ?? 30_000);
  const served = await servedResourceTypes(options.fhirBaseUrl, {
    clientId: options.clientId,
    fetch: options.fetch ?? fetch,
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  }).catch(() => undefined);
  if (!served) return error;
  const wanted = options.scope
    .split(/\s+/)
    .map(scopeResourceType)
    .filter((type): type is string => type !== undefined);
  const unserved = new Set(wanted.filter((type) => !served.types.has(type)));
  if (unserved.size === 0) return error;
  const context = errorContext(options, session);
  return invalidScopeWithMetadata(error, { ...context, epic: context.epic || served.epic }, unserved);
}

function errorContext(options: SmartTokenOptions, session: Session, kid = ''): TokenErrorContext {
  const tokenUrl = session.tokenUrl ?? options.tokenUrl ?? options.fhirBaseUrl;
  return { tokenUrl, clientId: options.clientId, kid, scope: options.scope, epic: looksLikeEpic(tokenUrl, options.fhirBaseUrl) };
}

function classifyFailure(error: unknown): RetryVerdict {
  if (error instanceof SmartAuthError && error.transient) {
    const reason = error.status === 0 ? 'network error' : `HTTP ${error.status}`;
    return error.retryAfterMs === undefined ? { retry: true, reason } : { retry: true, reason, retryAfterMs: error.retryAfterMs };
  }
  if (error instanceof BridgeError && error.code === 'BRG_ERR_SMART_DISCOVERY' && error.details['transient'] === true) {
    const retryAfterMs = error.details['retryAfterMs'];
    return typeof retryAfterMs === 'number' ? { retry: true, reason: 'discovery failed', retryAfterMs } : { retry: true, reason: 'discovery failed' };
  }
  return { retry: false };
}

async function requestOnce(options: SmartTokenOptions, session: Session, attempt: { sent?: AssertionClaims }, signal?: AbortSignal): Promise<IssuedToken> {
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const doFetch = options.fetch ?? fetch;
  session.tokenUrl ??= await discoverTokenUrl(options.fhirBaseUrl, {
    clientId: options.clientId,
    fetch: doFetch,
    now: () => options.clock.now(),
    signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
  });
  const tokenUrl = session.tokenUrl;
  const active = typeof options.key === 'function' ? await options.key() : options.key;
  const key =
    options.activateDueKey === false
      ? active
      : await keyToSignWith(active, { nowMs: options.clock.now(), jku: options.jku, fetch: doFetch, logger: options.logger, signal });
  const input = {
    key,
    clientId: options.clientId,
    tokenUrl,
    jti: (options.newJti ?? uuidSource)(),
    nowSec: (options.clock.now() + session.offsetMs) / 1000,
    ...(options.lifetimeSec === undefined ? {} : { lifetimeSec: options.lifetimeSec }),
    ...(options.skewSec === undefined ? {} : { skewSec: options.skewSec }),
    ...(options.jku === undefined ? {} : { jku: options.jku }),
  };
  attempt.sent = assertionClaims(input);
  const response = await postTokenRequest({
    tokenUrl,
    assertion: await buildAssertion(input),
    scope: options.scope,
    fetch: doFetch,
    timeoutMs,
    context: errorContext(options, session, key.kid),
    nowMs: () => options.clock.now(),
    ...(signal ? { signal } : {}),
  });
  const missing = scopesNotGranted(options.scope, response.scope);
  if (missing.length > 0) {
    // A restricted grant (`?…`) counts as missing: the server may leave events out of every search without a word.
    options.logger.warn(
      { notGranted: missing, granted: response.scope },
      'SMART token granted fewer scopes than requested (or restricted to some resources of a type): searches may return less than the EHR holds; have the app record grant them whole',
    );
  }
  if (!response.expiresInStated) options.logger.warn({ assumedExpiresInSec: response.expiresInSec }, 'SMART token response has no expires_in');
  options.logger.debug({ kid: key.kid, alg: key.alg, expiresInSec: response.expiresInSec }, 'SMART access token issued');
  return { accessToken: response.accessToken, expiresInSec: response.expiresInSec };
}
