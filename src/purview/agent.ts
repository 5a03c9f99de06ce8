/**
 * The HTTPS connection pool of one token source or one push. An extra CA (the sandbox's self-signed certificate) is
 * trusted only by this pool, on top of the system roots, never through a global dispatcher or NODE_EXTRA_CA_CERTS.
 */
import { rootCertificates } from 'node:tls';
import { Agent } from 'undici';

export function createHttpsAgent(caPem?: string): Agent {
  return new Agent({
    connect: caPem ? { ca: [...rootCertificates, caPem] } : {},
    // One block in flight at a time: a single kept-alive connection is all a push needs.
    connections: 1,
    keepAliveTimeout: 30_000,
  });
}
