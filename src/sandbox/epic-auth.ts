/**
 * An Epic-like, strict SMART backend-services token server for the offline sandbox and tests. It enforces what
 * Epic documents (fhir.epic.com/Documentation?docId=oauth2: "OAuth 2.0 Errors", "Creating a JWT") and answers
 * the way Epic does (lowercase token_type "bearer", 3600 s tokens, granted scopes without the `system/` prefix),
 * except that every rejection says which rule failed. Time comes from the injected clock, including the `Date`
 * header, so a client's skew handling can be tested deterministically.
 */
import { type JsonWebKey, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { JtiLedger, verifyClientAssertion } from './epic-auth-assertion.js';
import { createJwksResolver, type JwksResolver, type RegisteredClient, TokenEndpointError } from './epic-auth-jwks.js';
import { readTextBody } from './http-body.js';

export interface EpicAuthServerOptions {
  /** The server's clock: token expiry, assertion time rules and the Date header. Default: the system clock. */
  readonly clock?: Clock;
  /** expires_in of issued tokens. Default 3600 s, like Epic. */
  readonly tokenLifetimeSec?: number;
  /** Path before /oauth2/token. Default '/interconnect-fhir-oauth' (Epic's sandbox layout). */
  readonly pathPrefix?: string;
  /** Answer `error_description: null`, as Epic itself does; default false: every rejection names the rule that failed. */
  readonly terseErrors?: boolean;
}

export interface EpicAuthServer {
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  /** `${origin}${pathPrefix}/oauth2/token`; assertions must use exactly this as aud. */
  readonly tokenUrl: string;
  /** Registers (or replaces) a client with either a JWK Set or a JWK Set URL, and optionally the scopes it may request. */
  registerClient(client: { clientId: string; jwks?: { keys: JsonWebKey[] }; jwksUrl?: string; scopes?: string[] }): void;
  /** The client and granted scope of an access token; undefined when unknown or expired by the server clock. */
  verifyAccessToken(token: string): { clientId: string; scope: string } | undefined;
  /** Every issued token stops verifying (simulates expiry mid-paging). */
  expireAllTokens(): void;
  setTokenLifetime(seconds: number): void;
  readonly stats: { issued: number; rejected: number; lastError?: string };
  close(): Promise<void>;
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_BODY_BYTES = 64 * 1024;

/** Everything the server knows; the request handler and the returned API share it. */
interface AuthState {
  readonly clock: Clock;
  readonly tokenPath: string;
  tokenUrl: string;
  lifetimeSec: number;
  readonly clients: Map<string, RegisteredClient>;
  readonly tokens: Map<string, { clientId: string; scope: string; expiresAtMs: number }>;
  readonly stats: EpicAuthServer['stats'];
  readonly keys: JwksResolver;
  readonly jtis: JtiLedger;
  readonly terseErrors: boolean;
}

export async function startEpicAuthServer(options: EpicAuthServerOptions = {}): Promise<EpicAuthServer> {
  const clock = options.clock ?? systemClock;
  const state: AuthState = {
    clock,
    tokenPath: `${options.pathPrefix ?? '/interconnect-fhir-oauth'}/oauth2/token`,
    tokenUrl: '',
    lifetimeSec: checkedLifetime(options.tokenLifetimeSec ?? 3600),
    clients: new Map(),
    tokens: new Map(),
    stats: { issued: 0, rejected: 0 },
    keys: createJwksResolver({ clock }),
    jtis: new JtiLedger(),
    terseErrors: options.terseErrors ?? false,
  };
  const server = createServer((request, response) => handleRequest(state, request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.tokenUrl = `${origin}${state.tokenPath}`;
  return serverApi(state, origin, server);
}

function serverApi(state: AuthState, origin: string, server: Server): EpicAuthServer {
  return {
    origin,
    tokenUrl: state.tokenUrl,
    registerClient(client) {
      state.clients.set(client.clientId, checkedClient(client));
    },
    verifyAccessToken(token) {
      const found = state.tokens.get(token);
      if (!found || state.clock.now() >= found.expiresAtMs) return undefined;
      return { clientId: found.clientId, scope: found.scope };
    },
    expireAllTokens() {
      state.tokens.clear();
    },
    setTokenLifetime(seconds) {
      state.lifetimeSec = checkedLifetime(seconds);
    },
    stats: state.stats,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function handleRequest(state: AuthState, request: IncomingMessage, response: ServerResponse): void {
  response.setHeader('date', new Date(state.clock.now()).toUTCString());
  const path = (request.url ?? '/').split('?')[0];
  if (path !== state.tokenPath) {
    sendJson(response, 404, { error: 'not_found', error_description: `no route ${path}` });
    return;
  }
  issueToken(state, request).then(
    (body) => sendJson(response, 200, body),
    (error: unknown) => {
      const failure = error instanceof TokenEndpointError ? error : new TokenEndpointError('server_error', 'unexpected failure', 500);
      state.stats.rejected += 1;
      state.stats.lastError = `${failure.error}: ${failure.description}`;
      sendJson(response, failure.status, { error: failure.error, error_description: state.terseErrors ? null : failure.description });
    },
  );
}

async function issueToken(state: AuthState, request: IncomingMessage): Promise<Record<string, unknown>> {
  const form = await readTokenForm(request);
  const nowSec = Math.floor(state.clock.now() / 1000);
  const client = await verifyClientAssertion(form.assertion, { ...state, nowSec });
  if (form.clientId !== undefined && form.clientId !== client.clientId) {
    throw new TokenEndpointError('invalid_client', 'client_id does not match the assertion iss');
  }
  const scope = grantedScope(form.scope, client);
  // Opaque, like Epic recommends treating its tokens: nothing to decode.
  const accessToken = randomBytes(32).toString('base64url');
  state.tokens.set(accessToken, { clientId: client.clientId, scope, expiresAtMs: state.clock.now() + state.lifetimeSec * 1000 });
  state.stats.issued += 1;
  return { access_token: accessToken, token_type: 'bearer', expires_in: state.lifetimeSec, scope };
}

interface TokenForm {
  readonly assertion: string;
  readonly scope: string | undefined;
  readonly clientId: string | undefined;
}

/** The request-level rules (Epic "OAuth 2.0 Errors": POST, form body, no '?' after /token). */
async function readTokenForm(request: IncomingMessage): Promise<TokenForm> {
  const invalid = (description: string): TokenEndpointError => new TokenEndpointError('invalid_request', description);
  if (request.method !== 'POST') throw invalid(`the token endpoint accepts POST only, got ${request.method ?? '?'}`);
  if ((request.url ?? '').includes('?')) throw invalid('the token URL must not carry a query string; send parameters in the body');
  const mediaType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/x-www-form-urlencoded') throw invalid(`content-type must be application/x-www-form-urlencoded, got "${mediaType ?? ''}"`);
  const form = new URLSearchParams(await readTextBody(request, MAX_BODY_BYTES, () => invalid('the request body is too large')));
  for (const name of new Set(form.keys())) {
    if (form.getAll(name).length > 1) throw invalid(`parameter ${name} is repeated (RFC 6749 §3.2)`);
  }
  const grantType = form.get('grant_type');
  if (grantType === null) throw invalid('grant_type is missing');
  if (grantType !== 'client_credentials')
    throw new TokenEndpointError('unsupported_grant_type', `grant_type "${grantType}" is not supported; use client_credentials`);
  if (form.get('client_assertion_type') !== JWT_BEARER) throw invalid(`client_assertion_type must be ${JWT_BEARER}`);
  const assertion = form.get('client_assertion');
  if (!assertion) throw invalid('client_assertion is missing');
  return { assertion, scope: form.get('scope') ?? undefined, clientId: form.get('client_id') ?? undefined };
}

/** v1 and v2 spellings of the same permission compare equal ("v1 .read ⇒ v2 .rs"); the context prefix is optional. */
function normalScope(scope: string): string {
  return scope
    .replace(/^system\//, '')
    .replace(/\.read$/, '.rs')
    .replace(/\.write$/, '.cud')
    .replace(/\.\*$/, '.cruds');
}

/** Registered scopes bound what may be requested; the answer echoes them Epic-style, without `system/`. */
function grantedScope(requested: string | undefined, client: RegisteredClient): string {
  const wanted = (requested ?? '').split(/\s+/).filter(Boolean);
  if (client.scopes !== undefined) {
    const allowed = new Set(client.scopes.map(normalScope));
    const refused = wanted.filter((s) => !allowed.has(normalScope(s)));
    if (refused.length > 0) throw new TokenEndpointError('invalid_scope', `scope ${refused.join(' ')} is not registered for this client`);
  }
  return (wanted.length > 0 ? wanted : (client.scopes ?? [])).map((s) => s.replace(/^system\//, '')).join(' ');
}

function checkedClient(client: Parameters<EpicAuthServer['registerClient']>[0]): RegisteredClient {
  if (client.clientId.length === 0) throw new BridgeError('BRG_ERR_INPUT_INVALID', 'registerClient: clientId is empty.');
  if ((client.jwks === undefined) === (client.jwksUrl === undefined)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `registerClient(${client.clientId}): give exactly one of jwks or jwksUrl.`);
  }
  return { ...client, ...(client.jwks ? { jwks: { keys: [...client.jwks.keys] } } : {}), ...(client.scopes ? { scopes: [...client.scopes] } : {}) };
}

function checkedLifetime(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 1)
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Token lifetime must be a whole number of seconds ≥ 1, got ${seconds}.`);
  return seconds;
}

function sendJson(response: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  // RFC 6749 §5.1: token responses must not be cached.
  response.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'cache-control': 'no-store', pragma: 'no-cache' });
  response.end(text);
}
