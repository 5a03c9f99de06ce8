/**
 * Token endpoint failures become one typed error, `SmartAuthError`, carrying the RFC 6749 §5.2 error code and
 * description the server sent (never the assertion or a token), with a message that says what to check.
 * `invalid_grant` is treated like `invalid_client`: reference servers use it for assertion failures.
 */
import { BridgeError, type ErrorCode } from '../errors.js';
import { RETRYABLE_STATUSES, parseRetryAfter } from '../http.js';

/** What the messages may name: all public identifiers. */
export interface TokenErrorContext {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly kid: string;
  readonly scope: string;
}

const CODE_BY_OAUTH_ERROR: Readonly<Record<string, ErrorCode>> = {
  invalid_client: 'BRG_ERR_SMART_INVALID_CLIENT',
  invalid_grant: 'BRG_ERR_SMART_INVALID_CLIENT',
  unauthorized_client: 'BRG_ERR_SMART_UNAUTHORIZED_CLIENT',
  invalid_scope: 'BRG_ERR_SMART_INVALID_SCOPE',
  invalid_request: 'BRG_ERR_SMART_INVALID_REQUEST',
};

export class SmartAuthError extends BridgeError {
  override readonly name: string = 'SmartAuthError';
  /** HTTP status of the token response; 0 when no response arrived. */
  readonly status: number;
  /** The RFC 6749 `error` code, when the server sent one. */
  readonly oauthError: string | undefined;
  /** Network failures, 408, 429 and 5xx: worth another attempt with a fresh assertion. */
  readonly transient: boolean;
  readonly retryAfterMs: number | undefined;
  /** The server's `Date` header (ms since epoch), used to measure clock skew. */
  readonly serverDateMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    fields: { status: number; oauthError?: string; description?: string; transient: boolean; retryAfterMs?: number; serverDateMs?: number; cause?: unknown },
  ) {
    super(code, message, {
      cause: fields.cause,
      details: { status: fields.status, error: fields.oauthError, error_description: fields.description, transient: fields.transient },
    });
    this.status = fields.status;
    this.oauthError = fields.oauthError;
    this.transient = fields.transient;
    this.retryAfterMs = fields.retryAfterMs;
    this.serverDateMs = fields.serverDateMs;
  }
}

/** Descriptions come from the server: bounded, and anything shaped like a JWT is blanked. */
function safeDescription(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined;
  return value.replace(/eyJ[\w-]*\.[\w-]*\.[\w-]*/g, '[jwt]').slice(0, 300);
}

function advice(code: ErrorCode, ctx: TokenErrorContext): string {
  switch (code) {
    case 'BRG_ERR_SMART_INVALID_CLIENT':
      return `Check that client id "${ctx.clientId}" is the one for this environment (Epic lists a production and a non-production id); ` +
        `that kid ${ctx.kid} is in the JWK Set registered for it (new keys can take a while to sync); that the JWK Set URL is reachable ` +
        'over TLS without authentication; and that this host\'s clock is correct.';
    case 'BRG_ERR_SMART_UNAUTHORIZED_CLIENT':
      return `The customer's Epic build for client id "${ctx.clientId}" is incomplete: their Epic Client Systems Administrator must map it to a background user.`;
    case 'BRG_ERR_SMART_INVALID_SCOPE':
      return `Request only scopes whose APIs are selected on the app record (smart.scope is "${ctx.scope}").`;
    case 'BRG_ERR_SMART_INVALID_REQUEST':
      return 'The token request must be a form-encoded POST with no query string on the token URL; check smart.tokenUrl.';
    default:
      return 'Check smart.tokenUrl and the authorization server status.';
  }
}

export interface TokenHttpFailure {
  readonly status: number;
  readonly headers: Headers;
  readonly bodyText: string;
}

/** Maps a non-2xx token response (or an unusable 2xx) to a SmartAuthError. */
export function tokenErrorFromResponse(failure: TokenHttpFailure, ctx: TokenErrorContext, nowMs: number): SmartAuthError {
  const body = parseJsonObject(failure.bodyText);
  const oauthError = typeof body?.['error'] === 'string' ? body['error'] : undefined;
  const description = safeDescription(body?.['error_description']);
  const transient = RETRYABLE_STATUSES.has(failure.status);
  const mapped = oauthError === undefined ? undefined : CODE_BY_OAUTH_ERROR[oauthError];
  const code: ErrorCode = transient ? 'BRG_ERR_SMART_TOKEN' : mapped ?? (failure.status === 401 ? 'BRG_ERR_SMART_INVALID_CLIENT' : 'BRG_ERR_SMART_TOKEN');
  const said = [oauthError, description].filter((s) => s !== undefined).join(': ');
  const message = `${ctx.tokenUrl} answered HTTP ${failure.status}${said ? ` (${said})` : ''}. ${advice(code, ctx)}`;
  const dateHeader = failure.headers.get('date');
  const serverDateMs = dateHeader === null ? undefined : Date.parse(dateHeader);
  const retryAfterMs = parseRetryAfter(failure.headers.get('retry-after'), nowMs);
  return new SmartAuthError(code, message, {
    status: failure.status,
    transient,
    ...(oauthError === undefined ? {} : { oauthError }),
    ...(description === undefined ? {} : { description }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(serverDateMs === undefined || Number.isNaN(serverDateMs) ? {} : { serverDateMs }),
  });
}

/** No response at all: DNS, refused connection, TLS failure or the request timeout. */
export function tokenNetworkError(error: unknown, ctx: TokenErrorContext): SmartAuthError {
  const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
  return new SmartAuthError(
    'BRG_ERR_SMART_TOKEN',
    `Cannot reach ${ctx.tokenUrl} (${reason}). Check the URL, DNS, proxy and TLS trust (NODE_EXTRA_CA_CERTS).`,
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
