/**
 * pino factory. Logs carry counts and opaque ids only; these redaction paths are a second line of defence for
 * secrets that could ride along in an error or config object.
 */
import { type DestinationStream, type Logger, pino } from 'pino';
import { BridgeError, scrubErrorText } from './errors.js';

export type { Logger } from 'pino';

export const REDACT_PATHS: readonly string[] = [
  'token',
  'accessToken',
  'access_token',
  'assertion',
  'client_assertion',
  'clientSecret',
  'client_secret',
  'appSecret',
  'secret',
  'password',
  'privateKey',
  'authorization',
  'apiToken',
  '*.token',
  '*.accessToken',
  '*.access_token',
  '*.assertion',
  '*.client_assertion',
  '*.clientSecret',
  '*.client_secret',
  '*.appSecret',
  '*.secret',
  '*.password',
  '*.privateKey',
  '*.authorization',
  '*.apiToken',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers["proxy-authorization"]',
  '*.headers["proxy-authorization"]',
  'proxyCredentials',
  '*.proxyCredentials',
];

/**
 * `err` as pino would write it, minus what may carry PHI: quoted values in the message and stack are blanked
 * (scrubErrorText), and only the type, message, stack, code and a BridgeError's details (never PHI by contract) are
 * kept, not every enumerable property (an HTTP error's body, a URL error's input).
 */
export function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const plain = pino.stdSerializers.err(error) as { type?: string; message?: string; stack?: string };
  const code = (error as { code?: unknown }).code;
  return {
    type: plain.type,
    message: scrubErrorText(plain.message ?? ''),
    stack: scrubErrorText(plain.stack ?? ''),
    ...(typeof code === 'string' ? { code } : {}),
    ...(error instanceof BridgeError ? { details: error.details } : {}),
  };
}

/** What fastify's access log line holds of a request (its own serializer's fields). */
interface LoggedRequest {
  readonly method?: string;
  readonly url?: string;
  readonly host?: string;
  readonly ip?: string;
  readonly socket?: { readonly remotePort?: number };
}

/**
 * fastify's request serializer with the query blanked (`?…`): no route takes anything there, and a client that puts its
 * API token in it (an EventSource cannot send headers), or an MRN, would have it logged in clear. The path names the route.
 */
function serializeRequest(req: LoggedRequest): Record<string, unknown> {
  const url = req.url;
  const query = url?.indexOf('?') ?? -1;
  return {
    method: req.method,
    url: url !== undefined && query >= 0 ? `${url.slice(0, query)}?…` : url,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

export interface LoggerOptions {
  readonly level?: string;
  readonly name?: string;
  /** Where lines go; defaults to stderr so stdout stays clean for command output. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'bridge',
      level: options.level ?? 'info',
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      serializers: { err: serializeError, req: serializeRequest },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything, for library defaults and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
