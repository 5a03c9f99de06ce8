/**
 * Token endpoint failures become one typed error, `SmartAuthError`, carrying the RFC 6749 §5.2 error code and
 * description the server sent (never the assertion or a token), with a one-line message that says what to check.
 * Epic-specific advice (production vs non-production ids, app records, background users) is given only when the
 * URLs look like an Epic server; a long client id (someone pasted a JWT) is shortened. `invalid_grant` is treated
 * like `invalid_client`: reference servers use it for assertion failures.
 */
import { BridgeError, type ErrorCode } from '../errors.js';
import { parseRetryAfter, quoteUpstreamText, RETRYABLE_STATUSES, scrubUpstreamText } from '../http.js';
import { UNTRUSTED_CERTIFICATE_CODES } from '../net/tls-errors.js';

/** What the messages may name: all public identifiers. */
export interface TokenErrorContext {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly kid: string;
  readonly scope: string;
  /** The server looks like Epic (looksLikeEpic): Epic's own vocabulary and advice apply. */
  readonly epic: boolean;
}

const CODE_BY_OAUTH_ERROR: Readonly<Record<string, ErrorCode>> = {
  invalid_client: 'BRG_ERR_SMART_INVALID_CLIENT',
  invalid_grant: 'BRG_ERR_SMART_INVALID_CLIENT',
  unauthorized_client: 'BRG_ERR_SMART_UNAUTHORIZED_CLIENT',
  invalid_scope: 'BRG_ERR_SMART_INVALID_SCOPE',
  invalid_request: 'BRG_ERR_SMART_INVALID_REQUEST',
};

export interface SmartAuthFields {
  status: number;
  oauthError?: string;
  description?: string;
  transient: boolean;
  retryAfterMs?: number;
  serverDateMs?: number;
  cause?: unknown;
}

export class SmartAuthError extends BridgeError {
  override readonly name: string = 'SmartAuthError';
  /** HTTP status of the token response; 0 when no response arrived. */
  readonly status: number;
  /** The RFC 6749 `error` code, when the server sent one. */
  readonly oauthError: string | undefined;
  /** The server's error_description, cleaned (safeDescription). */
  readonly description: string | undefined;
  /** Network failures, 408, 429 and 5xx: worth another attempt with a fresh assertion. */
  readonly transient: boolean;
  readonly retryAfterMs: number | undefined;
  /** The server's `Date` header (ms since epoch), used to measure clock skew. */
  readonly serverDateMs: number | undefined;

  constructor(code: ErrorCode, message: string, fields: SmartAuthFields) {
    super(code, message, {
      cause: fields.cause,
      details: { status: fields.status, error: fields.oauthError, error_description: fields.description, transient: fields.transient },
    });
    this.status = fields.status;
    this.oauthError = fields.oauthError;
    this.description = fields.description;
    this.transient = fields.transient;
    this.retryAfterMs = fields.retryAfterMs;
    this.serverDateMs = fields.serverDateMs;
  }
}

/**
 * Conservative: Epic's URL shapes only (an `/interconnect-…` path, Epic's `/api/FHIR/R4` casing, an epic.com or
 * epichosted.com host). A server that merely says "Epic" somewhere else is not enough.
 */
export function looksLikeEpic(...urls: ReadonlyArray<string | undefined>): boolean {
  return urls.some((url) => {
    if (url === undefined || !URL.canParse(url)) return false;
    const { hostname, pathname } = new URL(url);
    return /(^|\.)(epic|epichosted)\.com$/i.test(hostname) || /\/interconnect-[^/]+/i.test(pathname) || /\/api\/FHIR\/(R4|STU3|DSTU2)(\/|$)/.test(pathname);
  });
}

/** A client id as messages show it: whole when short (Epic's are UUIDs), else its ends and its length. */
export function shortClientId(clientId: string): string {
  if (clientId.length <= 64) return `"${clientId}"`;
  const jwt = /^eyJ[\w-]*\.[\w-]*\./.test(clientId) ? '; it looks like a JWT, not a client id' : '';
  return `"${clientId.slice(0, 8)}…${clientId.slice(-4)}" (${clientId.length} characters${jwt})`;
}

/** Descriptions come from the server: one line, bounded, scrubbed like any upstream text (JWTs, tokens, e-mails, ids). */
function safeDescription(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.trim().length === 0) return undefined;
  return scrubUpstreamText(value, 300);
}

function advice(code: ErrorCode, ctx: TokenErrorContext): string {
  const client = shortClientId(ctx.clientId);
  switch (code) {
    case 'BRG_ERR_SMART_INVALID_CLIENT':
      return ctx.epic
        ? `Check that client id ${client} is the one for this environment (Epic lists a production and a non-production id); ` +
            `that kid ${ctx.kid} is in the JWK Set registered for it (new keys can take a while to sync); that the JWK Set URL is reachable ` +
            "over TLS without authentication; and that this host's clock is correct."
        : `Check that client id ${client} is registered with this authorization server; that kid ${ctx.kid} is in the JWK Set registered ` +
            "for it; that the JWK Set URL is reachable over TLS without authentication; and that this host's clock is correct.";
    case 'BRG_ERR_SMART_UNAUTHORIZED_CLIENT':
      return ctx.epic
        ? `The customer's Epic build for client id ${client} is incomplete: their Epic Client Systems Administrator must map it to a background user.`
        : `The authorization server does not let client id ${client} use the client_credentials grant; check the client's registration.`;
    case 'BRG_ERR_SMART_INVALID_REQUEST':
      return 'The token request must be a form-encoded POST with no query string on the token URL; check smart.tokenUrl.';
    default:
      return 'Check smart.tokenUrl and the authorization server status.';
  }
}

/** The resource type a SMART scope is for: `system/AuditEvent.read` and `AuditEvent.rs` → AuditEvent. */
export function scopeResourceType(scope: string): string | undefined {
  return /^(?:(?:system|user|patient)\/)?([A-Z][A-Za-z]+)\./.exec(scope)?.[1];
}

/** Where the scopes to remove were learnt; `unservedTypes` come from the server's /metadata. */
export interface ScopeHint {
  readonly description?: string;
  readonly unservedTypes?: ReadonlySet<string>;
}

/** The requested scopes the hint points at, and why; empty when nothing identifies them. */
export function scopesToRemove(scope: string, hint: ScopeHint): { scopes: string[]; because: string } {
  const requested = scope.split(/\s+/).filter(Boolean);
  const { description, unservedTypes } = hint;
  if (description !== undefined) {
    const named = requested.filter((s) => {
      const type = scopeResourceType(s);
      return description.includes(s) || (type !== undefined && new RegExp(`\\b${type}\\b`).test(description));
    });
    if (named.length > 0 && named.length < requested.length)
      return { scopes: named, because: `the server's answer names ${named.length === 1 ? 'it' : 'them'}` };
  }
  if (unservedTypes !== undefined) {
    const unserved = requested.filter((s) => unservedTypes.has(scopeResourceType(s) ?? ''));
    const types = [...new Set(unserved.map((s) => scopeResourceType(s)))].join(', ');
    if (unserved.length > 0) return { scopes: unserved, because: `the server's /metadata lists no ${types}` };
  }
  return { scopes: [], because: '' };
}

/** invalid_scope: the requested scopes, and which to remove when the answer or /metadata tells (issue #21.2). */
function scopeAdvice(ctx: TokenErrorContext, hint: ScopeHint): string {
  const requested = `The requested scopes (smart.scope) are "${ctx.scope}"`;
  const { scopes, because } = scopesToRemove(ctx.scope, hint);
  if (scopes.length > 0) return `${requested}; remove ${scopes.join(' ')}: ${because}.`;
  const all = ctx.scope.split(/\s+/).filter(Boolean);
  const example = all.find((s) => scopeResourceType(s) === 'AuditEvent') ?? all[all.length - 1] ?? ctx.scope;
  return ctx.epic
    ? `${requested}; remove the scopes whose APIs are not selected on the Epic app record, e.g. ${example}.`
    : `${requested}; remove the scopes this client may not request, e.g. ${example}.`;
}

export interface TokenHttpFailure {
  readonly status: number;
  readonly headers: Headers;
  readonly bodyText: string;
}

/** Maps a non-2xx token response (or an unusable 2xx) to a SmartAuthError. */
export function tokenErrorFromResponse(failure: TokenHttpFailure, ctx: TokenErrorContext, nowMs: number): SmartAuthError {
  const body = parseJsonObject(failure.bodyText);
  // RFC 6749's `error` is a short ASCII code; a server or gateway that puts free text there (the assertion it refused,
  // an e-mail) gets it scrubbed and cut like the description. A real code passes scrubbing unchanged.
  const oauthError = typeof body?.['error'] === 'string' && body['error'].trim() !== '' ? scrubUpstreamText(body['error'], 64) : undefined;
  const description = safeDescription(body?.['error_description']);
  const transient = RETRYABLE_STATUSES.has(failure.status);
  const mapped = oauthError === undefined ? undefined : CODE_BY_OAUTH_ERROR[oauthError];
  const code: ErrorCode = transient ? 'BRG_ERR_SMART_TOKEN' : (mapped ?? (failure.status === 401 ? 'BRG_ERR_SMART_INVALID_CLIENT' : 'BRG_ERR_SMART_TOKEN'));
  const dateHeader = failure.headers.get('date');
  const serverDateMs = dateHeader === null ? undefined : Date.parse(dateHeader);
  const retryAfterMs = parseRetryAfter(failure.headers.get('retry-after'), nowMs);
  const fields: SmartAuthFields = {
    status: failure.status,
    transient,
    ...(oauthError === undefined ? {} : { oauthError }),
    ...(description === undefined ? {} : { description }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(serverDateMs === undefined || Number.isNaN(serverDateMs) ? {} : { serverDateMs }),
  };
  // A proxy's HTML page or a plain-text 503 says more than "no JSON": quote it, cleaned.
  const said =
    body === undefined
      ? `a body that is not JSON: ${quoteUpstreamText(failure.bodyText)}`
      : [oauthError, description].filter((s) => s !== undefined).join(': ');
  const answered = `${ctx.tokenUrl} answered HTTP ${failure.status}${said ? ` (${said})` : ''}.`;
  const next = code === 'BRG_ERR_SMART_INVALID_SCOPE' ? scopeAdvice(ctx, description === undefined ? {} : { description }) : advice(code, ctx);
  return new SmartAuthError(code, `${answered} ${next}`, fields);
}

/** invalid_scope again, naming the requested scopes whose types the server's /metadata does not list. */
export function invalidScopeWithMetadata(error: SmartAuthError, ctx: TokenErrorContext, unservedTypes: ReadonlySet<string>): SmartAuthError {
  const said = [error.oauthError, error.description].filter((s) => s !== undefined).join(': ');
  const hint: ScopeHint = { unservedTypes, ...(error.description === undefined ? {} : { description: error.description }) };
  return new SmartAuthError(error.code, `${ctx.tokenUrl} answered HTTP ${error.status}${said ? ` (${said})` : ''}. ${scopeAdvice(ctx, hint)}`, {
    status: error.status,
    transient: false,
    cause: error,
    ...(error.oauthError === undefined ? {} : { oauthError: error.oauthError }),
    ...(error.description === undefined ? {} : { description: error.description }),
  });
}

/** The token request's retry budget is spent on transient failures: final, with how many tries over how long. */
export function tokenRetriesSpent(last: SmartAuthError, ctx: TokenErrorContext, attempts: number, elapsedMs: number): SmartAuthError {
  const answer = last.status === 0 ? 'got no answer' : `answered HTTP ${last.status}${last.oauthError ? ` (${last.oauthError})` : ''}`;
  const wait = last.retryAfterMs === undefined ? '' : ` with Retry-After ${Math.round(last.retryAfterMs / 1000)} s`;
  // No answer at all: the last failure's own words (which host, why, what to check) say more than "the server status".
  const next = last.status === 0 ? `The last: ${last.message}` : 'Check the authorization server status, then run again.';
  return new SmartAuthError(
    'BRG_ERR_SMART_TOKEN',
    `${ctx.tokenUrl} ${answer}${wait} to ${attempts} token requests over ${Math.round(elapsedMs / 1000)} s; the token request's retries are spent. ${next}`,
    { status: last.status, transient: false, cause: last, ...(last.oauthError === undefined ? {} : { oauthError: last.oauthError }) },
  );
}

/**
 * No response at all: DNS, refused connection, TLS failure or the request timeout. A redirect and an untrusted, expired
 * or not yet valid certificate answer the same every time: named, and not retried.
 */
export function tokenNetworkError(error: unknown, ctx: TokenErrorContext): SmartAuthError {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
  const reason = error instanceof Error ? (cause ? cause.message : error.message) : String(error);
  const code = (cause as { code?: unknown } | undefined)?.code;
  // fetch with redirect: 'error' (an assertion is never re-posted to wherever a redirect points).
  if (reason === 'unexpected redirect') {
    return new SmartAuthError(
      'BRG_ERR_SMART_TOKEN',
      `${ctx.tokenUrl} answered with a redirect; the bridge does not re-send its client assertion elsewhere. Set smart.tokenUrl to the token endpoint itself (the token_endpoint of the server's .well-known/smart-configuration).`,
      { status: 0, transient: false, cause: error },
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    const advice =
      code === 'CERT_HAS_EXPIRED'
        ? 'its certificate has expired: the EHR team must renew it'
        : "its certificate is not valid yet: check this machine's clock (or the EHR team's certificate dates)";
    return new SmartAuthError('BRG_ERR_SMART_TOKEN', `${ctx.tokenUrl} was refused over TLS (${code}): ${advice}.`, {
      status: 0,
      transient: false,
      cause: error,
    });
  }
  if (typeof code === 'string' && UNTRUSTED_CERTIFICATE_CODES.has(code)) {
    return new SmartAuthError(
      'BRG_ERR_SMART_TOKEN',
      `${ctx.tokenUrl} presented a certificate this machine does not trust (${code}). Add the issuing CA to network.caFile (or the system store), or check that the URL names the host the certificate is for.`,
      { status: 0, transient: false, cause: error },
    );
  }
  return new SmartAuthError(
    'BRG_ERR_SMART_TOKEN',
    `Cannot reach ${ctx.tokenUrl} (${reason.replace(/\s+/g, ' ')}). Check the URL, DNS, the proxy (network.proxy, HTTPS_PROXY, NO_PROXY) and TLS trust (network.caFile).`,
    { status: 0, transient: true, cause: error },
  );
}

/** A 2xx whose body is not a usable token response. */
export function tokenResponseInvalid(ctx: TokenErrorContext, problem: string): SmartAuthError {
  return new SmartAuthError('BRG_ERR_SMART_TOKEN', `${ctx.tokenUrl} answered 200 but ${problem}; this is not a SMART token response. Check smart.tokenUrl.`, {
    status: 200,
    transient: false,
  });
}

export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
