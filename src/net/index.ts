export { createDispatcher, type DispatcherOptions, fetchVia, routeOf } from './dispatcher.js';
export { bypassesProxy, type NoProxyEntry, parseNoProxy } from './no-proxy.js';
export { ProxyRefusedError, ProxyTunnelError, proxyRefusalIn, proxyRefusedError, proxyTunnelIn } from './proxy-errors.js';
export {
  DIRECT_NETWORK,
  type Environment,
  type NetworkConfig,
  type NetworkSettings,
  ProxyEndpoint,
  type ResolveNetworkOptions,
  resolveNetwork,
} from './settings.js';
export { certificateFailureIn, UNTRUSTED_CERTIFICATE_CODES } from './tls-errors.js';
