/**
 * Cached, single-flight access tokens for both sides (SMART toward the EHR, Entra toward Purview).
 * A token is reused until `refreshMarginMs` before it expires; however many callers ask during a refresh, one
 * request goes out. `invalidate()` is for a 401 from the resource server: the next caller fetches a fresh token.
 */
import type { Clock } from './clock.js';

export interface TokenSource {
  /** A bearer token valid for at least the refresh margin. */
  getToken(signal?: AbortSignal): Promise<string>;
  /** Drops the cached token (e.g. after a 401) so the next getToken fetches a new one. */
  invalidate(staleToken?: string): void;
}

export interface IssuedToken {
  readonly accessToken: string;
  /** Lifetime in seconds as the server stated it. */
  readonly expiresInSec: number;
}

export interface TokenCacheOptions {
  readonly clock: Clock;
  /** Default 60 s: Epic tokens live 3600 s, SMART recommends 300 s; 60 s leaves room for a long page. */
  readonly refreshMarginMs?: number;
  /** Observes every real fetch (metrics: token refreshes). */
  readonly onRefresh?: () => void;
}

export function createCachedTokenSource(
  fetchToken: (signal?: AbortSignal) => Promise<IssuedToken>,
  options: TokenCacheOptions,
): TokenSource {
  const margin = options.refreshMarginMs ?? 60_000;
  let current: { token: string; refreshAt: number } | undefined;
  let inFlight: Promise<string> | undefined;

  const refresh = (signal?: AbortSignal): Promise<string> => {
    inFlight ??= (async () => {
      try {
        const issued = await fetchToken(signal);
        options.onRefresh?.();
        // Refresh `margin` before expiry; a token living less than twice the margin is refreshed at half its life.
        const lifeMs = issued.expiresInSec * 1000;
        current = { token: issued.accessToken, refreshAt: options.clock.now() + lifeMs - Math.min(margin, lifeMs / 2) };
        return issued.accessToken;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };

  return {
    async getToken(signal) {
      if (current && options.clock.now() < current.refreshAt) return current.token;
      return refresh(signal);
    },
    invalidate(staleToken) {
      if (staleToken === undefined || current?.token === staleToken) current = undefined;
    },
  };
}
