/**
 * The HTTPS connection pool of one token source or one push. An extra CA (the sandbox's self-signed certificate) is
 * trusted only by this pool, on top of the system roots, never through a global dispatcher or NODE_EXTRA_CA_CERTS.
 */
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { Agent } from 'undici';

export function createHttpsAgent(caPem?: string): Agent {
  return new Agent({
    connect: caPem ? { secureContext: secureContextTrusting(caPem) } : {},
    // One block in flight at a time: a single kept-alive connection is all a push needs.
    connections: 1,
    keepAliveTimeout: 30_000,
  });
}

/**
 * Parsing the ~140 system roots plus the extra CA costs ~30 ms, on every connection if left to tls.connect; the context
 * is built once per CA and shared by the pools that trust it (the token source and the push of one run).
 */
const contexts = new Map<string, SecureContext>();

function secureContextTrusting(caPem: string): SecureContext {
  let context = contexts.get(caPem);
  if (!context) {
    context = createSecureContext({ ca: [...rootCertificates, caPem] });
    if (contexts.size >= 8) contexts.clear();
    contexts.set(caPem, context);
  }
  return context;
}
