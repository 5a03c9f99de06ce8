/**
 * The lease heartbeat: a renewal that meets a busy state database is tried again at the next beat, and the run is
 * stopped (never the process crashed from a timer) only once the lease may really have lapsed.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { holdLease, type LeasePolicy } from '../../src/sync/lease.js';
import { openStateStore, type StateStore } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

let store: StateStore | undefined;
afterEach(() => store?.close());

describe('lease heartbeat', () => {
  it('rides out a busy database for less than the TTL, and stops the run with BRG_ERR_STATE once it may have lapsed', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    store = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-lease-')), clock);
    let busy = false;
    const real = store;
    const flaky = Object.assign(Object.create(real) as StateStore, {
      renewLease: (name: string, id: string, ttl: number) => {
        if (busy) throw new BridgeError('BRG_ERR_STATE', 'The state database is locked by another process (database is locked).');
        return real.renewLease(name, id, ttl);
      },
    });
    let beat: () => void = () => undefined;
    const policy: LeasePolicy = {
      ttlMs: 90_000,
      identity: { host: 'h', pid: 1, command: 'bridge sync' },
      isStale: () => false,
      every: (_ms, renew) => {
        beat = renew;
        return () => undefined;
      },
    };
    let ids = 0;
    const lease = holdLease(flaky, 'connector:main', policy, clock, () => `holder-${++ids}`, 'A sync of connector "main"');
    await clock.advance(30_000);
    beat();
    busy = true;
    await clock.advance(30_000);
    expect(() => beat()).not.toThrow(); // 30 s since the last renewal: still ours
    await clock.advance(30_000);
    beat(); // 60 s
    expect(lease.lost.aborted).toBe(false);
    await clock.advance(30_000);
    beat(); // 90 s without a renewal: another process may have taken it
    expect(lease.lost.aborted).toBe(true);
    expect(lease.lost.reason).toMatchObject({ code: 'BRG_ERR_STATE', message: expect.stringContaining('could not be renewed for 90 s') });
    lease.release();
  });
});
