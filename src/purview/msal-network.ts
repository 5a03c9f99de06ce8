/**
 * msal-node's network module over our own undici dispatcher (agent.ts: the forward proxy, NO_PROXY and the CAs of
 * src/net). msal's default is the global fetch, which would need a process-wide dispatcher to use a proxy or trust the
 * sandbox CA. It also remembers the `expires_in` Entra stated, so the token cache works with the server's own
 * lifetime rather than re-deriving it from msal's wall-clock `expiresOn`, and a proxy's refusal, which msal would
 * hide behind a bare `network_error`.
 *
 * A 429 or 5xx answer is turned into a network failure here, never handed to msal: msal's built-in throttling
 * (msal-common ThrottlingUtils.postProcess) would record it, and for its Retry-After, or 60 s, refuse every later
 * request of the app locally with a ServerError that has no status. Our retry (auth.ts) would read that as a final
 * refusal, and one Entra blip would end the push as a credentials error. The Retry-After is remembered for auth.ts.
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
  /** Entra's 429 or 5xx answer to the last request (with its Retry-After, as sent), if that is why it failed. */
  lastBusy(): EntraBusy | undefined;
  /**
   * The HTTP status of a 4xx (or 2xx, 3xx) answer to the last request whose body was not JSON: no Entra answer, but a
   * proxy's or firewall's page. Asking again gets the same page.
   */
  lastForeign(): number | undefined;
}

/** A 429 or 5xx answer from Entra ID: transient, worth retrying after `retryAfter` when it says so. */
export interface EntraBusy {
  readonly status: number;
  readonly retryAfter: string | undefined;
}

/** No usable HTTP answer from Entra (refused, reset, timeout, a 429 or 5xx): worth retrying. */
export class MsalNetworkError extends Error {
  override readonly name = 'MsalNetworkError';
}

export function createMsalNetwork(dispatcher: Dispatcher, timeoutMs: number): MsalNetwork {
  let lastExpiresIn: number | undefined;
  let lastFailure: string | undefined;
  let lastRefusal: ProxyRefusedError | undefined;
  let lastBusy: EntraBusy | undefined;
  let lastForeign: number | undefined;
  const fail = (message: string, cause?: unknown): never => {
    lastFailure = message;
    lastRefusal = cause === undefined ? undefined : proxyRefusalIn(cause);
    throw new MsalNetworkError(message, cause === undefined ? {} : { cause });
  };
  const send = async <T>(url: string, method: 'GET' | 'POST', options: NetworkRequestOptions | undefined): Promise<NetworkResponse<T>> => {
    lastFailure = undefined;
    lastRefusal = undefined;
    lastBusy = undefined;
    lastForeign = undefined;
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
    const status = response.statusCode;
    if (status === 429 || status >= 500) {
      lastBusy = { status, retryAfter: headerValue(response.headers['retry-after']) };
      return fail(`Entra ID answered HTTP ${status}${aadstsCodes(text)}`);
    }
    let body: T;
    try {
      body = JSON.parse(text) as T;
    } catch (cause) {
      lastForeign = status;
      return fail(`HTTP ${status} with a body that is not JSON`, cause);
    }
    const expiresIn = Number((body as { expires_in?: unknown }).expires_in);
    if (status === 200 && Number.isFinite(expiresIn) && expiresIn > 0) lastExpiresIn = expiresIn;
    return { status, headers: flatHeaders(response.headers), body };
  };
  return {
    sendGetRequestAsync: (url, options) => send(url, 'GET', options),
    sendPostRequestAsync: (url, options) => send(url, 'POST', options),
    lastExpiresInSec: () => lastExpiresIn,
    lastFailure: () => lastFailure,
    lastRefusal: () => lastRefusal,
    lastBusy: () => lastBusy,
    lastForeign: () => lastForeign,
  };
}

/**
 * The headers msal sees, without Retry-After: on any other non-2xx answer it would start msal's throttle as well
 * (see above), and the retry policy is ours.
 */
function flatHeaders(headers: Dispatcher.ResponseData['headers']): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && name.toLowerCase() !== 'retry-after') flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** ` (AADSTS90033)` from Entra's JSON error body: the codes only, which are safe to log and name the cause. */
function aadstsCodes(text: string): string {
  try {
    const codes = (JSON.parse(text) as { error_codes?: unknown }).error_codes;
    const numbers = Array.isArray(codes) ? codes.filter((code): code is number => Number.isInteger(code)) : [];
    return numbers.length > 0 ? ` (${numbers.map((code) => `AADSTS${code}`).join(', ')})` : '';
  } catch {
    return '';
  }
}
