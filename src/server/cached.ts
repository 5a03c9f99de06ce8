/**
 * A value read at most once per period, its failure too: for what a public, unthrottled route serves from disk (the JWK
 * Set lists a keys folder and logs why it cannot), so a client repeating the request cannot turn it into disk reads and
 * log lines. The same error object is thrown until the period ends, so a caller can log it once.
 */
import type { Clock } from '../clock.js';

export function cachedFor<T>(periodMs: number, clock: Pick<Clock, 'now'>, read: () => T): () => T {
  let readAt = Number.NEGATIVE_INFINITY;
  let outcome: { readonly value: T } | { readonly error: unknown } | undefined;
  return () => {
    const now = clock.now();
    if (outcome === undefined || now - readAt >= periodMs || now < readAt) {
      try {
        outcome = { value: read() };
      } catch (error) {
        outcome = { error };
      }
      readAt = now;
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  };
}
