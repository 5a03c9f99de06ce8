export { createDispatcher, fetchVia, routeOf, type DispatcherOptions } from './dispatcher.js';
export { bypassesProxy, parseNoProxy, type NoProxyEntry } from './no-proxy.js';
export {
  DIRECT_NETWORK,
  ProxyEndpoint,
  resolveNetwork,
  type Environment,
  type NetworkConfig,
  type NetworkSettings,
  type ResolveNetworkOptions,
} from './settings.js';
export { ProxyRefusedError, proxyRefusalIn, proxyRefusedError } from './proxy-errors.js';
