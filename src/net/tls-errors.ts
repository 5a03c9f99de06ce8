/**
 * Certificate failures no retry fixes: the server's certificate is not trusted here (a private CA not in caFile, a
 * TLS-inspecting proxy's), names another host, or is out of its validity. Node reports them by code on the error or in
 * its cause chain (fetch and undici wrap them).
 */

/** Node's codes for a server certificate this machine does not trust, or that does not name the host. */
export const UNTRUSTED_CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const OUT_OF_VALIDITY = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** The code of a certificate failure in `error`'s cause chain (untrusted, wrong host, expired, not yet valid), if any. */
export function certificateFailureIn(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 6; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (UNTRUSTED_CERTIFICATE_CODES.has(code) || OUT_OF_VALIDITY.has(code))) return code;
  }
  return undefined;
}
