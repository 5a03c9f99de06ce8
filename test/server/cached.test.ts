/** The public JWK Set's read: at most once per period, its failure too, so repeated requests cost no disk or log. */
import { describe, expect, it } from 'vitest';
import { cachedFor } from '../../src/server/cached.js';
import { ManualClock } from '../support/manual-clock.js';

describe('cachedFor', () => {
  it('reads once per period, throws the same failure until the period ends, and reads again after a clock step back', async () => {
    const clock = new ManualClock('2026-12-07T00:00:00Z');
    let reads = 0;
    let failing = true;
    const read = cachedFor(5_000, clock, () => {
      reads += 1;
      if (failing) throw new Error(`no keys (${reads})`);
      return reads;
    });
    const first = (() => {
      try {
        return read();
      } catch (error) {
        return error;
      }
    })();
    expect(() => read()).toThrow(first as Error);
    expect(reads).toBe(1);
    failing = false;
    await clock.advance(4_999);
    expect(() => read()).toThrow('no keys (1)');
    await clock.advance(1);
    expect([read(), read(), reads]).toEqual([2, 2, 2]);
    // A clock set back (NTP) is no reason to serve a stale value for longer.
    clock.move(-3_600_000);
    expect(read()).toBe(3);
  });
});
