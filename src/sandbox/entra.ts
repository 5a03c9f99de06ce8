/**
 * An Entra ID (Azure AD) token endpoint for the offline sandbox: client credentials with a client secret or a
 * certificate assertion, on the v2 endpoint msal-node uses (`/{tenant}/oauth2/v2.0/token`, scope `<resource>/.default`)
 * and the v1 endpoint Microsoft's script uses (`/{tenant}/oauth2/token`, `resource=`), docs/purview-protocol.md §1.2, §1.4.
 * HTTPS only, because msal refuses http authorities. Routing is on the pathname: msal appends `?client-request-id=`.
 * Errors use Entra's shape and AADSTS codes so the client's messages can be tested. Access tokens are RS256 JWTs with
 * Entra's claims (aud, tid, appid/azp) and are also remembered, so the ingestion emulator can look them up. Transient
 * answers (a 503, a 429 with Retry-After, as Entra throttles client credentials) can be queued for the next token
 * requests, so a client's retries meet a real server.
 */
import { createHash, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { type Clock, systemClock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { readTextBody } from './http-body.js';
import { INGESTION_RESOURCE } from './purview-ingest.js';
import { createSandboxCertificate, type SandboxCertificate } from './tls.js';

export interface EntraAppRegistration {
  readonly tenantId: string;
  /**
   * The tenant's domains (`contoso.onmicrosoft.com`): Entra takes one in the authority in place of the tenant id, and
   * its tokens still name the tenant id (`tid`).
   */
  readonly domains?: readonly string[];
  readonly appId: string;
  readonly secret?: string;
  /** Public certificate (PEM) uploaded to the registration; assertions must name its thumbprint and verify with it. */
  readonly certificatePem?: string;
}

export interface EntraEmulatorOptions {
  /** Token expiry and assertion time checks. Default: the system clock. */
  readonly clock?: Clock;
  /** expires_in of issued tokens. Default 3599 s, like Entra. */
  readonly tokenLifetimeSec?: number;
  /** Certificate to serve; default a fresh createSandboxCertificate(). */
  readonly tls?: SandboxCertificate;
  /**
   * The App ID URIs (and ids) that exist here: a token for anything else is refused as Entra does (invalid_resource,
   * AADSTS500011), so a mistyped purview.resource fails at the token, as against the real service. Default: the
   * ingestion resource Microsoft's script names, and Microsoft Graph.
   */
  readonly resources?: readonly string[];
}

/** Resources a tenant always has, beside the ingestion resource. */
const GRAPH_RESOURCE = 'https://graph.microsoft.com';

export interface EntraEmulator {
  /** `https://127.0.0.1:<port>`: the authority is `${authorityHost}/${tenantId}`. */
  readonly authorityHost: string;
  /** The certificate to trust for this emulator. */
  readonly caPem: string;
  registerApp(app: EntraAppRegistration): void;
  /** Tenant, app and audience of an access token; undefined when unknown or expired by the emulator's clock. */
  verifyAccessToken(token: string): { tenantId: string; appId: string; audience: string } | undefined;
  /** Queues answers, each used by the next token request, first in first out; called with none, clears the queue. */
  injectFaults(...faults: EntraFault[]): void;
  /** `requests` counts every HTTP request, so a test can prove msal made no other call. */
  readonly stats: { issued: number; rejected: number; requests: number; lastError?: string };
  close(): Promise<void>;
}

/**
 * A transient answer to one token request, in Entra's JSON error shape. Defaults by status: 429 is Entra's throttle of
 * client credentials (`temporarily_unavailable`, AADSTS90055; Entra sends `Retry-After: 60`), any other status a
 * transient fault (`temporarily_unavailable`, AADSTS90033).
 */
export interface EntraFault {
  /** Sent as given; Entra's transient ones are 429 and 5xx. */
  readonly status: number;
  /** The Retry-After header, as sent (delta-seconds or an HTTP-date); none by default. */
  readonly retryAfter?: string;
  readonly error?: string;
  readonly aadsts?: number;
  readonly description?: string;
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const DEFAULT_SUFFIX = '/.default';

class EntraError extends Error {
  constructor(
    readonly error: string,
    readonly aadsts: number,
    readonly description: string,
    readonly status = 400,
  ) {
    super(`AADSTS${aadsts}: ${description}`);
  }
}

interface RegisteredApp extends EntraAppRegistration {
  readonly thumbprints?: { sha256: string; sha1: string };
  readonly publicKey?: X509Certificate['publicKey'];
}

interface EntraState {
  readonly clock: Clock;
  origin: string;
  readonly lifetimeSec: number;
  readonly apps: Map<string, RegisteredApp>;
  readonly tokens: Map<string, { tenantId: string; appId: string; audience: string; expiresAtMs: number }>;
  readonly stats: EntraEmulator['stats'];
  readonly signingKey: CryptoKey;
  faults: EntraFault[];
  readonly resources: ReadonlySet<string>;
}

export async function startEntraEmulator(options: EntraEmulatorOptions = {}): Promise<EntraEmulator> {
  const tls = options.tls ?? (await createSandboxCertificate());
  const lifetimeSec = options.tokenLifetimeSec ?? 3599;
  if (!Number.isInteger(lifetimeSec) || lifetimeSec < 1)
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `tokenLifetimeSec must be an integer ≥ 1, got ${lifetimeSec}.`);
  const { privateKey } = await generateKeyPair('RS256');
  const state: EntraState = {
    clock: options.clock ?? systemClock,
    origin: '',
    lifetimeSec,
    apps: new Map(),
    tokens: new Map(),
    stats: { issued: 0, rejected: 0, requests: 0 },
    signingKey: privateKey,
    faults: [],
    resources: new Set((options.resources ?? [INGESTION_RESOURCE, GRAPH_RESOURCE]).map(resourceKey)),
  };
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (request, response) => handle(state, request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    authorityHost: state.origin,
    caPem: tls.certPem,
    registerApp: (app) => state.apps.set(appKey(app.tenantId, app.appId), checkedApp(app)),
    verifyAccessToken(token) {
      const found = state.tokens.get(token);
      if (!found || state.clock.now() >= found.expiresAtMs) return undefined;
      return { tenantId: found.tenantId, appId: found.appId, audience: found.audience };
    },
    injectFaults(...faults) {
      if (faults.length === 0) state.faults = [];
      else state.faults.push(...faults);
    },
    stats: state.stats,
    close: () => closeServer(server),
  };
}

function handle(state: EntraState, request: IncomingMessage, response: ServerResponse): void {
  state.stats.requests += 1;
  const path = new URL(request.url ?? '/', state.origin).pathname;
  const route = /^\/([^/]+)\/(oauth2\/v2\.0\/token|oauth2\/token|v2\.0\/\.well-known\/openid-configuration)$/.exec(path);
  if (!route) {
    sendJson(response, 404, { error: 'not_found', error_description: `no route ${path}` });
    return;
  }
  const [, tenantId = '', endpoint] = route;
  if (endpoint?.startsWith('v2.0')) {
    sendJson(response, 200, openIdConfiguration(`${state.origin}/${tenantId}`));
    return;
  }
  const fault = state.faults.shift();
  if (fault) {
    // The body is read first, so the client sees the status rather than a reset.
    request.resume();
    request.on('end', () => sendError(state, response, faultError(fault), fault.retryAfter));
    return;
  }
  issueToken(state, request, tenantId, endpoint === 'oauth2/token' ? 'v1' : 'v2').then(
    (body) => sendJson(response, 200, body),
    (error: unknown) => sendError(state, response, error instanceof EntraError ? error : new EntraError('server_error', 90000, 'unexpected failure', 500)),
  );
}

function faultError(fault: EntraFault): EntraError {
  const throttled = fault.status === 429;
  return new EntraError(
    fault.error ?? 'temporarily_unavailable',
    fault.aadsts ?? (throttled ? 90055 : 90033),
    fault.description ?? (throttled ? 'There are too many incoming requests.' : 'A transient error has occurred. Please try again.'),
    fault.status,
  );
}

function sendError(state: EntraState, response: ServerResponse, failure: EntraError, retryAfter?: string): void {
  state.stats.rejected += 1;
  state.stats.lastError = `${failure.error}: ${failure.message}`;
  const body = {
    error: failure.error,
    error_description: failure.message,
    error_codes: [failure.aadsts],
    timestamp: new Date(state.clock.now()).toISOString(),
    trace_id: randomUUID(),
    correlation_id: randomUUID(),
  };
  sendJson(response, failure.status, body, retryAfter === undefined ? {} : { 'retry-after': retryAfter });
}

async function issueToken(state: EntraState, request: IncomingMessage, tenantId: string, version: 'v1' | 'v2'): Promise<Record<string, unknown>> {
  if (request.method !== 'POST') throw new EntraError('invalid_request', 900561, 'The endpoint only accepts POST requests.');
  const form = new URLSearchParams(await readTextBody(request, 64 * 1024, () => new EntraError('invalid_request', 90014, 'The request body is too large.')));
  if (form.get('grant_type') !== 'client_credentials') {
    throw new EntraError('unsupported_grant_type', 70003, `The app requested an unsupported grant type '${form.get('grant_type') ?? ''}'.`);
  }
  const asked = tenantId.toLowerCase();
  const tenant = [...state.apps.values()].find(
    (app) => app.tenantId.toLowerCase() === asked || app.domains?.some((domain) => domain.toLowerCase() === asked),
  )?.tenantId;
  if (tenant === undefined) throw new EntraError('invalid_request', 90002, `Tenant '${tenantId}' not found.`);
  const clientId = form.get('client_id') ?? '';
  const app = state.apps.get(appKey(tenant, clientId));
  if (!app) throw new EntraError('unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenantId}'.`);
  const tokenUrl = `${state.origin}/${tenantId}/oauth2/${version === 'v2' ? 'v2.0/' : ''}token`;
  await authenticateClient(state, app, form, tokenUrl);
  const audience = requestedAudience(form, version);
  if (!state.resources.has(resourceKey(audience))) {
    throw new EntraError(
      'invalid_resource',
      500011,
      `The resource principal named ${audience} was not found in the tenant named ${tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    );
  }
  const nowSec = Math.floor(state.clock.now() / 1000);
  const accessToken = await new SignJWT({ tid: tenant, appid: app.appId, azp: app.appId, oid: randomUUID(), ver: version === 'v2' ? '2.0' : '1.0' })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
    .setIssuer(version === 'v2' ? `${state.origin}/${tenant}/v2.0` : `https://sts.windows.net/${tenant}/`)
    .setAudience(audience)
    .setSubject(app.appId)
    .setIssuedAt(nowSec)
    .setNotBefore(nowSec)
    .setExpirationTime(nowSec + state.lifetimeSec)
    .sign(state.signingKey);
  state.tokens.set(accessToken, { tenantId: tenant, appId: app.appId, audience, expiresAtMs: state.clock.now() + state.lifetimeSec * 1000 });
  state.stats.issued += 1;
  const body: Record<string, unknown> = { token_type: 'Bearer', expires_in: state.lifetimeSec, ext_expires_in: state.lifetimeSec, access_token: accessToken };
  // The v1 endpoint answers with strings and a few more fields (the Power Automate template parses them,
  // docs/purview-protocol.md §1.2).
  if (version === 'v1') {
    return {
      ...body,
      expires_in: String(state.lifetimeSec),
      ext_expires_in: String(state.lifetimeSec),
      expires_on: String(nowSec + state.lifetimeSec),
      not_before: String(nowSec),
      resource: audience,
    };
  }
  return body;
}

/** Entra matches a resource without case and without a trailing slash. */
function resourceKey(resource: string): string {
  return resource.toLowerCase().replace(/\/+$/, '');
}

function requestedAudience(form: URLSearchParams, version: 'v1' | 'v2'): string {
  if (version === 'v1') {
    const resource = form.get('resource');
    if (!resource) throw new EntraError('invalid_request', 900144, "The request body must contain the following parameter: 'resource'.");
    return resource;
  }
  const scope = (form.get('scope') ?? '').trim();
  // Client credentials take exactly one `<resource>/.default` scope.
  if (!scope.endsWith(DEFAULT_SUFFIX) || /\s/.test(scope)) {
    throw new EntraError(
      'invalid_scope',
      1002012,
      `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.`,
    );
  }
  return scope.slice(0, -DEFAULT_SUFFIX.length);
}

async function authenticateClient(state: EntraState, app: RegisteredApp, form: URLSearchParams, tokenUrl: string): Promise<void> {
  const secret = form.get('client_secret');
  const assertion = form.get('client_assertion');
  if (secret !== null) {
    if (app.secret === undefined || !sameSecret(secret, app.secret)) {
      throw new EntraError(
        'invalid_client',
        7000215,
        'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
        401,
      );
    }
    return;
  }
  if (assertion === null) {
    throw new EntraError('invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", 401);
  }
  if (form.get('client_assertion_type') !== JWT_BEARER) throw new EntraError('invalid_request', 50027, `client_assertion_type must be ${JWT_BEARER}.`);
  await verifyAssertion(state, app, assertion, tokenUrl);
}

/** What Entra checks of a certificate assertion: a registered thumbprint, the signature, aud/iss/sub, lifetime, jti. */
async function verifyAssertion(state: EntraState, app: RegisteredApp, assertion: string, tokenUrl: string): Promise<void> {
  const invalid = (aadsts: number, description: string): EntraError => new EntraError('invalid_client', aadsts, description, 401);
  if (!app.thumbprints || !app.publicKey)
    throw invalid(700027, 'Client assertion contains an invalid signature. No certificate is registered for the application.');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(assertion);
  } catch {
    throw invalid(50012, 'Client assertion is not a valid JWT.');
  }
  const x5tS256 = header['x5t#S256'];
  const named = typeof x5tS256 === 'string' ? x5tS256 === app.thumbprints.sha256 : header.x5t === app.thumbprints.sha1;
  if (!named) throw invalid(700027, 'Client assertion contains an invalid signature. [Reason - The key was not found.]');
  try {
    const { payload } = await jwtVerify(assertion, app.publicKey, {
      algorithms: ['PS256', 'RS256'],
      audience: tokenUrl,
      issuer: app.appId,
      subject: app.appId,
      currentDate: new Date(state.clock.now()),
      clockTolerance: 300,
    });
    if (typeof payload.jti !== 'string' || payload.jti.length === 0) throw invalid(50012, 'Client assertion has no jti.');
  } catch (error) {
    if (error instanceof EntraError) throw error;
    const code = (error as { code?: string }).code;
    if (code === 'ERR_JWT_EXPIRED') throw invalid(700024, 'Client assertion is not within its valid time range.');
    throw invalid(700027, `Client assertion failed signature validation (${code ?? 'invalid'}).`);
  }
}

function checkedApp(app: EntraAppRegistration): RegisteredApp {
  if (!app.tenantId || !app.appId) throw new BridgeError('BRG_ERR_INPUT_INVALID', 'registerApp: tenantId and appId are required.');
  if (app.secret === undefined && app.certificatePem === undefined) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `registerApp(${app.appId}): give a secret or a certificatePem.`);
  }
  if (app.certificatePem === undefined) return { ...app };
  const certificate = new X509Certificate(app.certificatePem);
  const sha256 = createHash('sha256').update(certificate.raw).digest('base64url');
  const sha1 = createHash('sha1').update(certificate.raw).digest('base64url');
  return { ...app, thumbprints: { sha256, sha1 }, publicKey: certificate.publicKey };
}

function openIdConfiguration(authority: string): Record<string, unknown> {
  return {
    issuer: `${authority}/v2.0`,
    token_endpoint: `${authority}/oauth2/v2.0/token`,
    authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
    jwks_uri: `${authority}/discovery/v2.0/keys`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt'],
  };
}

function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string): Buffer => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function appKey(tenantId: string, appId: string): string {
  return `${tenantId.toLowerCase()}|${appId.toLowerCase()}`;
}

function sendJson(response: ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', pragma: 'no-cache', ...headers });
  response.end(JSON.stringify(body));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
