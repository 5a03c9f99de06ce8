import { describe, expect, it } from 'vitest';
import { createCachedTokenSource } from '../src/token-cache.js';
import { ManualClock } from './support/manual-clock.js';

function source(lifeSec: number, clock: ManualClock) {
  let n = 0;
  const fetches: number[] = [];
  const tokens = createCachedTokenSource(
    async () => {
      fetches.push(clock.now());
      n += 1;
      return { accessToken: `t${n}`, expiresInSec: lifeSec };
    },
    { clock, refreshMarginMs: 60_000 },
  );
  return { tokens, fetches };
}

/**
 * A token source whose first request answers nothing and fails as `onAbort` says once its signal aborts (every waiter
 * gave up); each later request answers t2, t3, …
 */
function abandonedFirst(onAbort: (signal: AbortSignal, reject: (error: unknown) => void) => void, failureCooldownMs?: number) {
  const counter = { fetches: 0 };
  const tokens = createCachedTokenSource(
    (signal) =>
      new Promise((resolve, reject) => {
        counter.fetches += 1;
        const n = counter.fetches;
        signal?.addEventListener('abort', () => onAbort(signal, reject));
        if (n > 1) resolve({ accessToken: `t${n}`, expiresInSec: 3600 });
      }),
    { clock: new ManualClock(0), ...(failureCooldownMs === undefined ? {} : { failureCooldownMs }) },
  );
  return { tokens, counter };
}

describe('createCachedTokenSource', () => {
  it('reuses a token until the margin before expiry, then refreshes', async () => {
    const clock = new ManualClock(0);
    const { tokens, fetches } = source(3600, clock);
    expect(await tokens.getToken()).toBe('t1');
    await clock.advance(3_539_000);
    expect(await tokens.getToken()).toBe('t1');
    await clock.advance(1_000);
    expect(await tokens.getToken()).toBe('t2');
    expect(fetches).toEqual([0, 3_540_000]);
  });

  it('refreshes a short-lived token at half its life', async () => {
    const clock = new ManualClock(0);
    const { tokens } = source(60, clock);
    expect(await tokens.getToken()).toBe('t1');
    await clock.advance(29_000);
    expect(await tokens.getToken()).toBe('t1');
    await clock.advance(1_000);
    expect(await tokens.getToken()).toBe('t2');
  });

  it('shares one refresh among concurrent callers and refetches after invalidate of the current token only', async () => {
    const clock = new ManualClock(0);
    const { tokens, fetches } = source(3600, clock);
    expect(await Promise.all([tokens.getToken(), tokens.getToken(), tokens.getToken()])).toEqual(['t1', 't1', 't1']);
    expect(fetches).toHaveLength(1);
    tokens.invalidate('some-older-token');
    expect(await tokens.getToken()).toBe('t1');
    tokens.invalidate('t1');
    expect(await tokens.getToken()).toBe('t2');
  });

  it('a caller that gives up does not fail the others sharing its refresh; the request stops once all have given up', async () => {
    const clock = new ManualClock(0);
    const aborted: unknown[] = [];
    let release: (issued: { accessToken: string; expiresInSec: number }) => void = () => undefined;
    const tokens = createCachedTokenSource(
      (signal) =>
        new Promise((resolve, reject) => {
          release = resolve;
          signal?.addEventListener('abort', () => {
            aborted.push(signal.reason);
            reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          });
        }),
      { clock },
    );
    const first = new AbortController();
    const second = new AbortController();
    const a = tokens.getToken(first.signal);
    const b = tokens.getToken(second.signal);
    const c = tokens.getToken();
    first.abort();
    await expect(a).rejects.toMatchObject({ name: 'AbortError' });
    expect(aborted).toEqual([]);
    release({ accessToken: 't1', expiresInSec: 3600 });
    expect(await b).toBe('t1');
    expect(await c).toBe('t1');

    // Every waiter gives up: the request itself is aborted (nobody needs its answer).
    tokens.invalidate('t1');
    const d = new AbortController();
    const e = new AbortController();
    const waits = [tokens.getToken(d.signal), tokens.getToken(e.signal)];
    d.abort();
    expect(aborted).toEqual([]);
    e.abort('stopped');
    await Promise.all(waits.map((w) => expect(w).rejects.toMatchObject({ name: 'AbortError' })));
    expect(aborted).toEqual(['stopped']);
  });

  it('a caller that comes after every waiter gave up starts its own request, not the aborted one', async () => {
    // The first request notices its abort late (msal takes no signal): it settles a moment after.
    const { tokens, counter } = abandonedFirst((_signal, reject) => setTimeout(() => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), 20));
    const gaveUp = new AbortController();
    const first = tokens.getToken(gaveUp.signal);
    gaveUp.abort();
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    expect(await tokens.getToken(new AbortController().signal)).toBe('t2');
    expect(counter.fetches).toBe(2);
  });

  it('a request every waiter gave up (on a timeout, or any reason) is no failure to cool down on: the next caller asks again', async () => {
    // A fetch that fails with its signal's reason, as fetch() does: here a TimeoutError, no AbortError.
    const { tokens, counter } = abandonedFirst((signal, reject) => reject(signal.reason), 30_000);
    const gaveUp = new AbortController();
    const first = tokens.getToken(gaveUp.signal);
    gaveUp.abort(new DOMException('the caller timed out', 'TimeoutError'));
    await expect(first).rejects.toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(await tokens.getToken()).toBe('t2');
    expect(counter.fetches).toBe(2);
  });
});
