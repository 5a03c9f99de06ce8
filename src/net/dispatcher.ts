/**
 * undici dispatchers that carry the network settings (settings.ts) to every outbound call: SMART discovery and token
 * (through fetchVia), FHIR (fhir-kit-client's fetch, given the dispatcher in its request options), Entra through
 * msal-node's network module and the Purview upload. One dispatcher routes each request by its origin: to a direct
 * Agent when no proxy applies or NO_PROXY names the host, else to a ProxyAgent, which tunnels https:// targets with
 * CONNECT (TLS stays end to end, the target's certificate is checked as usual) and sends http:// ones to the proxy
 * in absolute form. Extra CAs go into a TLS context of these pools only: never a global dispatcher, nor
 * NODE_EXTRA_CA_CERTS, so nothing else in the process trusts them.
 * See: https://undici.nodejs.org/#/docs/api/ProxyAgent.md
 */
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { Agent, Dispatcher, Pool, ProxyAgent } from 'undici';
import { bypassesProxy } from './no-proxy.js';
import { asProxyRefusal } from './proxy-errors.js';
import type { NetworkSettings, ProxyEndpoint } from './settings.js';

export interface DispatcherOptions {
  /** A PEM trusted by this dispatcher only, on top of network.caFile (the sandbox's purview.caFile). */
  readonly extraCaPem?: string | undefined;
  /** Largest response body in bytes (undici fails the read with UND_ERR_RES_EXCEEDED_MAX_SIZE). */
  readonly maxResponseSize?: number;
  /** Connections per origin. Default: unlimited (the callers' queues cap concurrency). */
  readonly connections?: number;
  readonly keepAliveTimeout?: number;
  /** How long a proxy may take to answer CONNECT (default PROXY_CONNECT_TIMEOUT_MS). */
  readonly proxyConnectTimeoutMs?: number;
}

/**
 * A proxy answers CONNECT once it reached the host, in seconds. undici's proxy client would wait its 300 s default for a
 * proxy that accepted the connection and never answered, whatever the caller's own timeout (Bulk, the doctor), times
 * each retry.
 */
export const PROXY_CONNECT_TIMEOUT_MS = 30_000;

export function createDispatcher(network: NetworkSettings, options: DispatcherOptions = {}): Dispatcher {
  const own = [...network.caPems, ...(options.extraCaPem ? [options.extraCaPem] : [])];
  // A trust of our own replaces Node's default store, and with it what NODE_EXTRA_CA_CERTS added: those go in too.
  const cas = own.length > 0 ? [...own, ...(network.processCaPems?.() ?? [])] : [];
  const tls = cas.length > 0 ? { secureContext: secureContextTrusting(cas) } : {};
  const pool = {
    ...(options.maxResponseSize !== undefined ? { maxResponseSize: options.maxResponseSize } : {}),
    ...(options.connections !== undefined ? { connections: options.connections } : {}),
    ...(options.keepAliveTimeout !== undefined ? { keepAliveTimeout: options.keepAliveTimeout } : {}),
  };
  const direct = new Agent({ ...pool, connect: tls });
  const agents = new Map<ProxyEndpoint, ProxyAgent>();
  const viaProxy = (endpoint: ProxyEndpoint): ProxyAgent => {
    let agent = agents.get(endpoint);
    if (!agent) {
      const authorization = endpoint.authorization();
      agent = new ProxyAgent({
        uri: endpoint.url,
        ...(authorization ? { token: authorization } : {}),
        // http:// targets go to the proxy as absolute-form requests (many proxies refuse CONNECT to port 80).
        proxyTunnel: false,
        requestTls: tls,
        proxyTls: tls,
        ...pool,
        // undici builds the plain-HTTP proxy client from `factory` with no pool options; this keeps the size cap there.
        factory: (origin, opts) => new Pool(origin, { ...opts, ...pool }),
        // The client that sends CONNECT: its answer bounded (its headers are the proxy's answer).
        clientFactory: (origin, opts) => new Pool(origin, { ...opts, headersTimeout: options.proxyConnectTimeoutMs ?? PROXY_CONNECT_TIMEOUT_MS }),
      });
      agents.set(endpoint, agent);
    }
    return agent;
  };
  const route = (origin: URL): Route => {
    const endpoint = proxyFor(network, origin);
    return endpoint ? { dispatcher: viaProxy(endpoint), endpoint } : { dispatcher: direct };
  };
  return new RoutedDispatcher(route, () => [direct, ...agents.values()]);
}

/** Where a request to `url` goes: the proxy's origin, or 'direct'. For `bridge doctor` and tests. */
export function routeOf(network: NetworkSettings, url: string): string {
  return proxyFor(network, new URL(url))?.url ?? 'direct';
}

function proxyFor(network: NetworkSettings, target: URL): ProxyEndpoint | undefined {
  const endpoint = target.protocol === 'https:' ? network.httpsProxy : network.httpProxy;
  return endpoint && !bypassesProxy(target, network.noProxy) ? endpoint : undefined;
}

/** The global fetch sending through `dispatcher` (SMART discovery and token requests take a fetch). */
export function fetchVia(dispatcher: Dispatcher): typeof fetch {
  // The global fetch's type names the Dispatcher of Node's bundled undici; at run time it takes any object with
  // dispatch(), and Node 20's fetch works with undici 7's dispatchers.
  return (input, init) => fetch(input, { ...init, dispatcher } as unknown as RequestInit);
}

interface Route {
  readonly dispatcher: Dispatcher;
  readonly endpoint?: ProxyEndpoint;
}

/** Picks the direct or a proxy dispatcher per request origin; closing it closes them all. */
class RoutedDispatcher extends Dispatcher {
  constructor(
    private readonly route: (origin: URL) => Route,
    private readonly members: () => Dispatcher[],
  ) {
    super();
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const { dispatcher, endpoint } = this.route(new URL(String(options.origin)));
    return dispatcher.dispatch(options, endpoint ? namingProxyRefusals(handler, endpoint) : handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const closed = Promise.all(this.members().map((member) => member.close())).then(() => undefined);
    if (!callback) return closed;
    void closed.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const done = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const destroyed = Promise.all(this.members().map((member) => member.destroy(err))).then(() => undefined);
    if (!done) return destroyed;
    void destroyed.then(done, done);
  }
}

type HandlerMethod = (this: unknown, ...args: unknown[]) => unknown;

/**
 * The caller's handler, with a proxy's refusal turned into a ProxyRefusedError (proxy-errors.ts) on its way to
 * onError (the handler API of Node's fetch) or onResponseError (undici 7's). A Proxy, so the handler keeps exactly
 * its own set of methods: undici tells the two APIs apart by which methods exist.
 */
function namingProxyRefusals(handler: Dispatcher.DispatchHandler, endpoint: ProxyEndpoint): Dispatcher.DispatchHandler {
  return new Proxy(handler, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = value as HandlerMethod;
      if (property === 'onError') return (error: Error) => method.call(target, asProxyRefusal(error, endpoint));
      if (property === 'onResponseError') return (controller: unknown, error: Error) => method.call(target, controller, asProxyRefusal(error, endpoint));
      return method.bind(target);
    },
  });
}

/**
 * Parsing the ~140 system roots plus the extra CAs costs ~30 ms, on every connection if left to tls.connect; the
 * context is built once per CA set and shared by the pools that trust it (token sources, FHIR, pushes of one run).
 */
const contexts = new Map<string, SecureContext>();

function secureContextTrusting(caPems: readonly string[]): SecureContext {
  const key = caPems.join('\n');
  let context = contexts.get(key);
  if (!context) {
    context = createSecureContext({ ca: [...rootCertificates, ...caPems] });
    if (contexts.size >= 8) contexts.clear();
    contexts.set(key, context);
  }
  return context;
}
