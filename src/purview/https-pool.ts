/**
 * The HTTPS connection pool of one Entra token source or one push: the network settings (src/net: forward proxy,
 * NO_PROXY, network.caFile) plus the connector's own extra CA (purview.caFile, the sandbox's self-signed
 * certificate), trusted by this pool only, never through a global dispatcher or NODE_EXTRA_CA_CERTS.
 */
import type { Dispatcher } from 'undici';
import { createDispatcher, DIRECT_NETWORK, type NetworkSettings } from '../net/index.js';

export function createHttpsAgent(caPem?: string, network: NetworkSettings = DIRECT_NETWORK): Dispatcher {
  return createDispatcher(network, {
    extraCaPem: caPem,
    // One block in flight at a time: a single kept-alive connection is all a push needs.
    connections: 1,
    keepAliveTimeout: 30_000,
  });
}
