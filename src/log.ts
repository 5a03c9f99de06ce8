/**
 * pino factory. Logs carry counts and opaque ids only; these redaction paths are a second line of defence for
 * secrets that could ride along in an error or config object.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

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
