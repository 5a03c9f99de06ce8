/**
 * A forward proxy that refuses a tunnel (CONNECT answered 4xx: 407 without valid credentials, 403 for a host it does
 * not allow) will refuse it again: retrying for minutes as if the network were down hides the cause. The dispatcher
 * (dispatcher.ts) turns undici's refusals into a ProxyRefusedError naming the proxy; each client maps it to
 * BRG_ERR_PROXY_REFUSED without retrying. A proxy answering 5xx (the target unreachable from it) is a network error,
 * retried: a ProxyTunnelError, whose code marks it as one and whose message says the proxy answered, where undici's own
 * error is named AbortError and read as the run being cancelled. Messages name the proxy by origin and source, never
 * its credentials.
 */
import { BridgeError } from '../errors.js';
import type { ProxyEndpoint } from './settings.js';

export class ProxyRefusedError extends Error {
  override readonly name = 'ProxyRefusedError';
  constructor(
    readonly status: number,
    /** The proxy's origin, without userinfo. */
    readonly proxy: string,
    /** `HTTPS_PROXY`, `network.proxy.url`, … */
    readonly source: string,
    options?: { cause?: unknown },
  ) {
    super(`the proxy ${proxy} (${source}) answered HTTP ${status}`, options);
  }
}

/** A proxy's 5xx to CONNECT (it could not reach or resolve the host): a network failure, retried as one. */
export class ProxyTunnelError extends Error {
  override readonly name = 'ProxyTunnelError';
  /** A network error's code, as the clients' retry rules know them (`E…`). */
  readonly code = 'EPROXYTUNNEL';
  constructor(
    readonly status: number,
    readonly proxy: string,
    readonly source: string,
    options?: { cause?: unknown },
  ) {
    super(
      `the proxy ${proxy} (${source}) answered HTTP ${status} to CONNECT: it could not reach the host (if the host is internal, list it in NO_PROXY / network.proxy.noProxy)`,
      options,
    );
  }
}

/** undici's messages for a refused tunnel and, for plain-HTTP proxying, a 407. */
const REFUSALS = [/^Proxy response \((\d{3})\) !== 200 when HTTP Tunneling$/, /^Proxy Authentication Required \((407)\)$/];

/** A ProxyRefusedError for an undici error that says the proxy refused with a 4xx; otherwise `error` unchanged. */
export function asProxyRefusal(error: Error, endpoint: ProxyEndpoint): Error {
  for (const pattern of REFUSALS) {
    const status = Number(pattern.exec(error.message)?.[1]);
    if (status >= 400 && status < 500) return new ProxyRefusedError(status, endpoint.url, endpoint.source, { cause: error });
    if (status >= 500 && status < 600) return new ProxyTunnelError(status, endpoint.url, endpoint.source, { cause: error });
  }
  return error;
}

/** The ProxyTunnelError somewhere in `error`'s cause chain. */
export function proxyTunnelIn(error: unknown): ProxyTunnelError | undefined {
  return inCauseChain(error, ProxyTunnelError);
}

/** The ProxyRefusedError somewhere in `error`'s cause chain (fetch wraps dispatcher errors in a TypeError). */
export function proxyRefusalIn(error: unknown): ProxyRefusedError | undefined {
  return inCauseChain(error, ProxyRefusedError);
}

/** The first error of class `kind` in `error`'s cause chain (five deep at most). */
function inCauseChain<T extends Error>(error: unknown, kind: abstract new (...args: never[]) => T): T | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof kind) return current;
  }
  return undefined;
}

/** BRG_ERR_PROXY_REFUSED for `what` (e.g. "FHIR AuditEvent search at https://…"). */
export function proxyRefusedError(refusal: ProxyRefusedError, what: string): BridgeError {
  const hint =
    refusal.status === 407
      ? 'The proxy wants credentials: set network.proxy.credentials ({ env } or { file } holding user:password), or user:password in the proxy URL of the environment.'
      : 'Ask for the host to be allowed through the proxy, or list it in NO_PROXY / network.proxy.noProxy if it is reachable directly.';
  return new BridgeError(
    'BRG_ERR_PROXY_REFUSED',
    `${what}: the proxy ${refusal.proxy} (${refusal.source}) refused the connection with HTTP ${refusal.status}; nothing was sent to the server. ${hint}`,
    { cause: refusal, details: { proxy: refusal.proxy, source: refusal.source, status: refusal.status } },
  );
}
