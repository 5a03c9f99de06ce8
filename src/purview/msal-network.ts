/**
 * msal-node's network module over our own undici dispatcher (agent.ts: the forward proxy, NO_PROXY and the CAs of
 * src/net). msal's default is the global fetch, which would need a process-wide dispatcher to use a proxy or trust the
 * sandbox CA. It also remembers the `expires_in` Entra stated, so the token cache works with the server's own
 * lifetime rather than re-deriving it from msal's wall-clock `expiresOn`, and a proxy's refusal, which msal would
 * hide behind a bare `network_error`.
 */
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import { type Dispatcher, request } from 'undici';
import { type ProxyRefusedError, proxyRefusalIn } from '../net/index.js';

export interface MsalNetwork extends INetworkModule {
  /** `expires_in` of the last successful token response, in seconds. */
  lastExpiresInSec(): number | undefined;
  /** Why the last request got no usable answer (msal replaces our error with a bare `network_error`). */
  lastFailure(): string | undefined;
  /** The forward proxy's refusal of the last request, if that is why it failed. */
  lastRefusal(): ProxyRefusedError | undefined;
}

/** No HTTP answer from Entra (refused, reset, timeout): worth retrying. */
export class MsalNetworkError extends Error {
  override readonly name = 'MsalNetworkError';
}

export function createMsalNetwork(dispatcher: Dispatcher, timeoutMs: number): MsalNetwork {
  let lastExpiresIn: number | undefined;
  let lastFailure: string | undefined;
  let lastRefusal: ProxyRefusedError | undefined;
  const fail = (message: string, cause: unknown): never => {
    lastFailure = message;
    lastRefusal = proxyRefusalIn(cause);
    throw new MsalNetworkError(message, { cause });
  };
  const send = async <T>(url: string, method: 'GET' | 'POST', options: NetworkRequestOptions | undefined): Promise<NetworkResponse<T>> => {
    lastFailure = undefined;
    lastRefusal = undefined;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        method,
        dispatcher,
        headers: options?.headers ?? {},
        signal: AbortSignal.timeout(timeoutMs),
        ...(method === 'POST' ? { body: options?.body ?? '' } : {}),
      });
    } catch (cause) {
      const code = (cause as { code?: unknown }).code;
      return fail(`no answer (${typeof code === 'string' ? code : (cause as Error).name})`, cause);
    }
    const text = await response.body.text();
    let body: T;
    try {
      body = JSON.parse(text) as T;
    } catch (cause) {
      return fail(`HTTP ${response.statusCode} with a body that is not JSON`, cause);
    }
    const expiresIn = Number((body as { expires_in?: unknown }).expires_in);
    if (response.statusCode === 200 && Number.isFinite(expiresIn) && expiresIn > 0) lastExpiresIn = expiresIn;
    return { status: response.statusCode, headers: flatHeaders(response.headers), body };
  };
  return {
    sendGetRequestAsync: (url, options) => send(url, 'GET', options),
    sendPostRequestAsync: (url, options) => send(url, 'POST', options),
    lastExpiresInSec: () => lastExpiresIn,
    lastFailure: () => lastFailure,
    lastRefusal: () => lastRefusal,
  };
}

function flatHeaders(headers: Dispatcher.ResponseData['headers']): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}
