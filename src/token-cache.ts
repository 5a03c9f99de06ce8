/**
 * Cached, single-flight access tokens for both sides (SMART toward the EHR, Entra toward Purview).
 * A token is reused until `refreshMarginMs` before it expires; however many callers ask during a refresh, one
 * request goes out. `invalidate()` is for a 401 from the resource server: the next caller fetches a fresh token.
 * With `failureCooldownMs`, a failed fetch answers every caller for that long instead of starting a new series of
 * token requests for each one (issue #15.2: requests queued behind a failing token endpoint each restarted it).
 */
import { abortError, type Clock } from './clock.js';
import { isAbortError } from './errors.js';

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
  /** After a failed fetch (not an abort), callers get that failure for this long without a new fetch. Default 0. */
  readonly failureCooldownMs?: number;
}

export function createCachedTokenSource(fetchToken: (signal?: AbortSignal) => Promise<IssuedToken>, options: TokenCacheOptions): TokenSource {
  const margin = options.refreshMarginMs ?? 60_000;
  let current: { token: string; refreshAt: number } | undefined;
  let inFlight: SharedFetch | undefined;
  let failed: { error: unknown; until: number } | undefined;

  const start = (): SharedFetch => {
    const controller = new AbortController();
    const shared: SharedFetch = {
      waiting: 0,
      promise: Promise.resolve(''),
      // Nobody waits any more: a caller that comes next starts its own request instead of joining this aborted one.
      abandon: (reason) => {
        if (inFlight === shared) inFlight = undefined;
        controller.abort(reason);
      },
    };
    shared.promise = (async () => {
      try {
        let issued: IssuedToken;
        try {
          issued = await fetchToken(controller.signal);
        } catch (error) {
          const cooldown = options.failureCooldownMs ?? 0;
          // A request every waiter gave up failed with whatever reason the last one had (a timeout, a shutdown): no answer
          // of the server's to hand unrelated callers for the cooldown.
          if (cooldown > 0 && !controller.signal.aborted && !isAbortError(error)) failed = { error, until: options.clock.now() + cooldown };
          throw error;
        }
        failed = undefined;
        options.onRefresh?.();
        // Refresh `margin` before expiry; a token living less than twice the margin is refreshed at half its life.
        const lifeMs = issued.expiresInSec * 1000;
        current = { token: issued.accessToken, refreshAt: options.clock.now() + lifeMs - Math.min(margin, lifeMs / 2) };
        return issued.accessToken;
      } finally {
        if (inFlight === shared) inFlight = undefined;
      }
    })();
    return shared;
  };

  return {
    async getToken(signal) {
      if (current && options.clock.now() < current.refreshAt) return current.token;
      if (failed && options.clock.now() < failed.until) throw failed.error;
      if (signal?.aborted) throw abortError(signal);
      inFlight ??= start();
      return wait(inFlight, signal);
    },
    invalidate(staleToken) {
      if (staleToken === undefined || current?.token === staleToken) current = undefined;
    },
  };
}

/**
 * One token request shared by every caller waiting for it. It runs on its own signal, aborted only once every waiter
 * has given up: the first caller's signal (a download stopped early) must not fail the others, nor keep a caller that
 * gave up waiting for the whole token budget.
 */
interface SharedFetch {
  /** Aborts the request, which no caller waits for any more. */
  readonly abandon: (reason: unknown) => void;
  /** Callers still waiting; one without a signal never gives up. */
  waiting: number;
  promise: Promise<string>;
}

function wait(shared: SharedFetch, signal: AbortSignal | undefined): Promise<string> {
  shared.waiting += 1;
  if (!signal) return shared.promise;
  return new Promise<string>((resolve, reject) => {
    const giveUp = (): void => {
      shared.waiting -= 1;
      if (shared.waiting === 0) shared.abandon(signal.reason);
      reject(abortError(signal));
    };
    signal.addEventListener('abort', giveUp, { once: true });
    shared.promise.then(
      (token) => {
        signal.removeEventListener('abort', giveUp);
        resolve(token);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', giveUp);
        reject(error);
      },
    );
  });
}
