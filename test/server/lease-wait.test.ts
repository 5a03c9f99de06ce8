/** A start another process's lease refused is started again once that lease ends (lease-wait.ts), and only then. */
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createLeaseWaits } from '../../src/server/lease-wait.js';
import { flushMicrotasks, ManualClock } from '../support/manual-clock.js';

const T0 = '2026-11-23T02:00:00Z';

function heldUntil(expiresMs: number): BridgeError {
  return new BridgeError('BRG_ERR_RUN_IN_PROGRESS', 'held', { details: { host: 'other', pid: 7, expires: new Date(expiresMs).toISOString() } });
}

function world() {
  const clock = new ManualClock(T0);
  const stop = new AbortController();
  const lease: { expiresMs: number | undefined } = { expiresMs: undefined };
  const waits = createLeaseWaits({
    readLease: () => (lease.expiresMs === undefined ? undefined : { expiresMs: lease.expiresMs }),
    clock,
    signal: stop.signal,
    logger: silentLogger(),
  });
  return { clock, stop, lease, waits };
}

describe('lease waits', () => {
  it('starts again once the holder lets go, polling a renewed lease; a tick meanwhile adds no second wait', async () => {
    const { clock, lease, waits } = world();
    const starts: number[] = [];
    const start = async (): Promise<void> => {
      starts.push(clock.now());
      if (lease.expiresMs !== undefined && lease.expiresMs > clock.now()) throw heldUntil(lease.expiresMs);
    };
    lease.expiresMs = clock.now() + 120_000;
    waits.start('main', 'schedule', start);
    await flushMicrotasks();
    expect(waits.isWaiting('main')).toBe(true);
    waits.start('main', 'schedule', start);
    await clock.advance(60_000);
    lease.expiresMs = clock.now() + 120_000; // the holder renews: still running
    await clock.advance(90_000);
    expect(starts).toHaveLength(1);
    lease.expiresMs = undefined; // released
    await clock.advance(30_000);
    await flushMicrotasks();
    expect(starts).toHaveLength(2);
    expect(waits.isWaiting('main')).toBe(false);
  });

  it("a dead holder's lease is waited out to its expiry; a resume no longer wanted then is not started", async () => {
    const { clock, lease, waits } = world();
    let starts = 0;
    let wanted = true;
    lease.expiresMs = clock.now() + 15_000;
    waits.start(
      'main',
      'resume',
      async () => {
        starts += 1;
        if (starts === 1) throw heldUntil(lease.expiresMs ?? 0);
      },
      () => wanted,
    );
    await flushMicrotasks();
    await clock.advance(16_000);
    await flushMicrotasks();
    expect(starts).toBe(2);

    lease.expiresMs = clock.now() + 15_000;
    starts = 0;
    waits.start(
      'other',
      'resume',
      async () => {
        starts += 1;
        throw heldUntil(lease.expiresMs ?? 0);
      },
      () => wanted,
    );
    await flushMicrotasks();
    wanted = false; // another process finished the push meanwhile
    await clock.advance(16_000);
    await flushMicrotasks();
    expect(starts).toBe(1);
    expect(waits.isWaiting('other')).toBe(false);
  });

  it('waits for nothing after a refusal by a run of this process, or any other failure; stops when the service closes', async () => {
    const { clock, stop, lease, waits } = world();
    let starts = 0;
    waits.start('main', 'schedule', async () => {
      starts += 1;
      throw new BridgeError('BRG_ERR_RUN_IN_PROGRESS', 'in this process', { details: { connector: 'main' } });
    });
    await flushMicrotasks();
    expect(waits.isWaiting('main')).toBe(false);

    lease.expiresMs = clock.now() + 60_000;
    waits.start('main', 'schedule', async () => {
      starts += 1;
      throw heldUntil(lease.expiresMs ?? 0);
    });
    await flushMicrotasks();
    expect(waits.isWaiting('main')).toBe(true);
    stop.abort();
    await flushMicrotasks();
    await clock.advance(120_000);
    expect(starts).toBe(2);
    expect(waits.isWaiting('main')).toBe(false);
  });
});
