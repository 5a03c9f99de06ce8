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

/** A connector whose lease another process holds until `lease.expiresMs` (undefined: released). */
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
  const started: string[] = [];
  /** A start that the lease refuses while it is held, and that records itself when it gets through. */
  const starter =
    (name: string, refusals = { count: 0 }) =>
    async (): Promise<void> => {
      if (lease.expiresMs !== undefined && lease.expiresMs > clock.now()) {
        refusals.count += 1;
        throw heldUntil(lease.expiresMs);
      }
      started.push(`${name}@${new Date(clock.now()).toISOString().slice(11, 19)}`);
    };
  return { clock, stop, lease, waits, started, starter };
}

describe('lease waits', () => {
  it('starts again once the holder lets go, polling a renewed lease; a second tick meanwhile replaces the first queued', async () => {
    const { clock, lease, waits, started, starter } = world();
    const refusals = { count: 0 };
    lease.expiresMs = clock.now() + 120_000;
    waits.start('main', 'schedule', starter('tick-1', refusals));
    await flushMicrotasks();
    waits.start('main', 'schedule', starter('tick-2'));
    waits.start('main', 'schedule', starter('tick-3'));
    await clock.advance(60_000);
    lease.expiresMs = clock.now() + 120_000; // the holder renews: still running
    await clock.advance(90_000);
    expect(started).toEqual([]);
    lease.expiresMs = undefined; // released
    await clock.advance(30_000);
    await flushMicrotasks();
    // The first tick, then the latest queued one (tick-2 replaced by tick-3).
    expect(started).toEqual(['tick-1@02:03:00', 'tick-3@02:03:00']);
    expect(refusals.count).toBe(1);
  });

  it('a tick that comes while the start-up resume waits runs after it, even when the resume is no longer wanted', async () => {
    const { clock, lease, waits, started, starter } = world();
    let resumeWanted = true;
    lease.expiresMs = clock.now() + 15_000;
    waits.start('main', 'resume', starter('resume'), () => resumeWanted);
    await flushMicrotasks();
    waits.start('main', 'schedule', starter('tick'));
    resumeWanted = false; // the process that held the connector finished the push
    await clock.advance(16_000);
    await flushMicrotasks();
    expect(started).toEqual(['tick@02:00:16']);
  });

  it("a dead holder's lease is waited out to its expiry, then the resume goes", async () => {
    const { clock, lease, waits, started, starter } = world();
    lease.expiresMs = clock.now() + 15_000;
    waits.start('main', 'resume', starter('resume'));
    await flushMicrotasks();
    await clock.advance(14_000);
    expect(started).toEqual([]);
    await clock.advance(2_000);
    await flushMicrotasks();
    expect(started).toEqual(['resume@02:00:16']);
  });

  it('waits for nothing after a refusal by a run of this process, or any other failure; stops when the service closes', async () => {
    const { clock, stop, lease, waits, started, starter } = world();
    let attempts = 0;
    waits.start('main', 'schedule', async () => {
      attempts += 1;
      throw new BridgeError('BRG_ERR_RUN_IN_PROGRESS', 'in this process', { details: { connector: 'main' } });
    });
    await flushMicrotasks();
    // Nothing waits: the next start goes at once.
    waits.start('main', 'schedule', starter('next'));
    await flushMicrotasks();
    expect(started).toEqual(['next@02:00:00']);

    lease.expiresMs = clock.now() + 60_000;
    waits.start('other', 'schedule', starter('held'));
    await flushMicrotasks();
    stop.abort();
    await flushMicrotasks();
    lease.expiresMs = undefined;
    await clock.advance(120_000);
    expect(started).toEqual(['next@02:00:00']);
    expect(attempts).toBe(1);
  });

  it('a failure while waiting (the state store unreadable) is logged, and the connector is free for the next tick', async () => {
    const clock = new ManualClock(T0);
    let broken = true;
    const errors: string[] = [];
    const logger = { ...silentLogger(), error: (_fields: unknown, message: string) => void errors.push(message) } as ReturnType<typeof silentLogger>;
    const waits = createLeaseWaits({
      readLease: () => {
        if (broken) throw new Error('SQLITE_BUSY');
        return undefined;
      },
      clock,
      signal: new AbortController().signal,
      logger,
    });
    waits.start('main', 'schedule', async () => {
      throw heldUntil(clock.now() + 1_000);
    });
    await flushMicrotasks();
    await flushMicrotasks();
    expect(errors).toEqual(['waiting for the connector failed; the next tick tries again']);
    broken = false;
    const started: string[] = [];
    waits.start('main', 'schedule', async () => void started.push('next'));
    await flushMicrotasks();
    expect(started).toEqual(['next']);
  });
});
