/** API bearer tokens: stored as SHA-256 hashes, compared in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto';

export function hashApiToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** True when the presented token's hash equals one of the configured hashes; every hash is compared (no early exit). */
export function verifyApiToken(presented: string | undefined, hashes: readonly string[]): boolean {
  if (!presented) return false;
  const candidate = Buffer.from(hashApiToken(presented), 'hex');
  let ok = false;
  for (const hash of hashes) {
    const expected = Buffer.from(hash, 'hex');
    if (expected.length === candidate.length && timingSafeEqual(expected, candidate)) ok = true;
  }
  return ok;
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
