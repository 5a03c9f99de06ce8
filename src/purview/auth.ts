/**
 * Entra ID tokens for the ingestion service through @azure/msal-node (client credentials, docs/purview-protocol.md §1.2):
 * scope `${resource}/.default`, a client secret or a certificate (msal signs a PS256 assertion with `x5t#S256`).
 * The authority metadata is given to msal up front, so the only request is the token POST (no instance discovery,
 * which also makes the local emulator work offline: docs/purview-protocol.md §1.4). Requests go
 * through our own undici dispatcher (msal-network.ts), so the forward proxy applies and an extra CA is trusted for
 * these calls only. One token serves every block until shortly before it expires (createCachedTokenSource); msal's
 * own cache is bypassed so a 401 really gets a new token.
 */
import { AuthError, ConfidentialClientApplication, type Configuration, ServerError } from '@azure/msal-node';
import type { Clock } from '../clock.js';
import { BridgeError, isAbortError } from '../errors.js';
import { DEFAULT_RETRY, parseRetryAfter, type RetryOptions, type RetryVerdict, withRetry } from '../http.js';
import type { Logger } from '../log.js';
import { type NetworkSettings, proxyRefusedError } from '../net/index.js';
import { createCachedTokenSource, type TokenSource } from '../token-cache.js';
import { DEFAULT_RESOURCE } from './clouds.js';
import { createHttpsAgent } from './https-pool.js';
import { createMsalNetwork, type MsalNetwork, MsalNetworkError } from './msal-network.js';
import { PurviewError } from './purview-error.js';

export type EntraCredential =
  | { kind: 'secret'; secret: string }
  /** `thumbprintSha256`: hex SHA-256 of the certificate's DER, as Entra shows it. `x5c`: optional public chain (SNI). */
  | { kind: 'certificate'; privateKeyPem: string; thumbprintSha256: string; x5c?: string };

export interface PurviewAuthOptions {
  readonly tenantId: string;
  /** The app (client) id of the registration the connector job belongs to. */
  readonly appId: string;
  readonly credential: EntraCredential;
  /** e.g. CLOUDS.commercial.authorityHost (`https://login.microsoftonline.com`); must be https. */
  readonly authorityHost: string;
  /** App ID URI of the ingestion service. Default DEFAULT_RESOURCE. */
  readonly resource?: string;
  /** Extra CA (PEM) to trust for these requests only, never globally (the sandbox). */
  readonly caPem?: string;
  /** Forward proxy, NO_PROXY and CA bundle (src/net). Default: direct, system roots. */
  readonly network?: NetworkSettings;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called after every token actually fetched (metrics). */
  readonly onRefresh?: () => void;
  /** Retry budget of one token fetch (network errors, 429, 5xx). Default ENTRA_TOKEN_RETRY: 4 attempts within 150 s. */
  readonly retry?: RetryOptions;
  /** Timeout of one token request. Default 30 s. */
  readonly timeoutMs?: number;
}

/**
 * Entra's throttle answers 429 with `Retry-After: 60` (docs/purview-protocol.md, src/sandbox/entra.ts EntraFault), and
 * withRetry waits a hint in full when it fits what is left of maxTotalMs and gives up otherwise: the budget holds one
 * full hint of up to 120 s plus the requests around it, so the usual throttle is waited out once instead of ending the push.
 */
const ENTRA_TOKEN_RETRY: RetryOptions = { ...DEFAULT_RETRY, maxAttempts: 4, maxTotalMs: 150_000 };

export function createPurviewTokenSource(options: PurviewAuthOptions): TokenSource {
  const network = createMsalNetwork(createHttpsAgent(options.caPem, options.network), options.timeoutMs ?? 30_000);
  const app = new ConfidentialClientApplication(msalConfiguration(options, network));
  const scopes = [`${options.resource ?? DEFAULT_RESOURCE}/.default`];
  const fetchOnce = async (): Promise<{ accessToken: string; expiresInSec: number }> => {
    // skipCache: our cache decides when to refresh; msal's would hand back the token Purview just refused.
    const result = await app.acquireTokenByClientCredential({ scopes, skipCache: true });
    if (!result?.accessToken) throw new PurviewError('BRG_ERR_PURVIEW_AUTH', `Entra ID returned no access token for app ${options.appId}.`, { status: 200 });
    const expiresInSec = network.lastExpiresInSec() ?? 300;
    options.logger.debug({ tenantId: options.tenantId, appId: options.appId, expiresInSec }, 'purview token acquired');
    return { accessToken: result.accessToken, expiresInSec };
  };
  return createCachedTokenSource(
    (signal) =>
      // A proxy refusal is not retried (proxy-errors.ts): msal hides our error, the network module remembers it.
      withRetry(
        fetchOnce,
        (error) =>
          network.lastRefusal() || network.lastForeign() !== undefined ? { retry: false } : classifyTokenFailure(error, network, options.clock.now()),
        {
          clock: options.clock,
          ...(signal ? { signal } : {}),
        },
        options.retry ?? ENTRA_TOKEN_RETRY,
      ).catch((error: unknown) => {
        throw toAuthError(error, options, network);
      }),
    { clock: options.clock, ...(options.onRefresh ? { onRefresh: options.onRefresh } : {}) },
  );
}

function msalConfiguration(options: PurviewAuthOptions, network: MsalNetwork): Configuration {
  const base = new URL(options.authorityHost);
  if (base.protocol !== 'https:') {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `purview.authorityHost must be an https URL, got ${options.authorityHost}.`);
  }
  const authority = `${base.origin}/${options.tenantId}`;
  const credential = options.credential;
  return {
    auth: {
      clientId: options.appId,
      authority,
      knownAuthorities: [base.host],
      // The v2 endpoints of any Entra tenant; given here so msal makes no discovery request (docs/purview-protocol.md §1.4).
      authorityMetadata: JSON.stringify({
        issuer: `${authority}/v2.0`,
        token_endpoint: `${authority}/oauth2/v2.0/token`,
        authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
        jwks_uri: `${authority}/discovery/v2.0/keys`,
      }),
      ...(credential.kind === 'secret'
        ? { clientSecret: credential.secret }
        : {
            clientCertificate: {
              thumbprintSha256: credential.thumbprintSha256.replace(/:/g, '').toLowerCase(),
              privateKey: credential.privateKeyPem,
              ...(credential.x5c ? { x5c: credential.x5c } : {}),
            },
          }),
    },
    // Our retry policy is the only one.
    system: { networkClient: network, disableInternalRetries: true },
  };
}

/** @param network - What our network module saw: msal reports its failures as a bare network_error. */
function classifyTokenFailure(error: unknown, network: MsalNetwork, nowMs: number): RetryVerdict {
  if (error instanceof ServerError && error.status !== undefined && (error.status === 429 || error.status >= 500)) {
    return { retry: true, reason: `Entra ID answered ${error.status}` };
  }
  if (!(error instanceof MsalNetworkError) && !(error instanceof AuthError && error.errorCode === 'network_error')) return { retry: false };
  // A 429 or 5xx answer arrives here too (msal-network.ts keeps it from msal's throttle): its Retry-After is honoured.
  const retryAfterMs = parseRetryAfter(network.lastBusy()?.retryAfter, nowMs);
  return { retry: true, reason: network.lastFailure() ?? 'network error', ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
}

/** msal errors → BRG_ERR_PURVIEW_AUTH with the AADSTS code; never the secret, assertion or token. */
function toAuthError(error: unknown, options: PurviewAuthOptions, network: MsalNetwork): unknown {
  if (error instanceof BridgeError || isAbortError(error)) return error;
  const who = `app ${options.appId} in tenant ${options.tenantId} at ${options.authorityHost}`;
  const refusal = network.lastRefusal();
  if (refusal) return proxyRefusedError(refusal, `Entra ID token request for ${who}`);
  const networkFailure = network.lastFailure();
  const foreign = network.lastForeign();
  if (foreign !== undefined) {
    return new PurviewError(
      'BRG_ERR_PURVIEW_AUTH',
      `The token request for ${who} was answered HTTP ${foreign} with a page that is not JSON: Entra ID always answers JSON, so something on the way (a proxy, a TLS-inspecting firewall) answered instead. Check that it lets the bridge reach ${options.authorityHost}.`,
      { cause: error, status: foreign },
    );
  }
  const busy = network.lastBusy();
  if (busy !== undefined && networkFailure !== undefined) {
    // Entra's own trouble (a throttle, an outage), not the credentials nor the host: the next run gets a token.
    return new PurviewError(
      'BRG_ERR_PURVIEW_AUTH',
      `Entra ID could not issue a token for ${who}: ${networkFailure}. This is on Entra's side (a throttle or an outage), not the credentials: run again later.`,
      { cause: error, status: busy.status },
    );
  }
  if (networkFailure !== undefined) {
    return new PurviewError(
      'BRG_ERR_PURVIEW_AUTH',
      `Could not get a token from Entra ID for ${who}: ${networkFailure}. Check purview.cloud / purview.authorityHost and that the host is reachable.`,
      { cause: error, status: 0 },
    );
  }
  if (error instanceof AuthError) {
    const aadsts = /AADSTS\d+[^.\r\n]*/.exec(error.errorMessage)?.[0];
    const what = [error.errorCode, aadsts].filter(Boolean).join(': ');
    return new PurviewError('BRG_ERR_PURVIEW_AUTH', `Entra ID refused a token for ${who}: ${what}.`, { cause: error, status: 400, reason: what });
  }
  const what = error instanceof Error ? error.message.slice(0, 200) : 'unknown failure';
  return new PurviewError('BRG_ERR_PURVIEW_AUTH', `Could not get a token from Entra ID for ${who}: ${what}.`, { cause: error, status: 0 });
}
