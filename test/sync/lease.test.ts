/**
 * The lease heartbeat: a renewal that meets a busy state database is tried again at the next beat while that beat
 * can still land inside the lease, and the run is stopped (never the process crashed from a timer) before another
 * process can take the lease over. The other process here is a second connection to the same state database, as a
 * second `bridge` process on this or another machine would have.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { type HeldLease, heldByThisProcess, holdLease, type LeasePolicy } from '../../src/sync/lease.js';
import { type LeaseHolder, openStateStore, type StateStore } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

const opened: StateStore[] = [];
afterEach(() => {
  for (const store of opened.splice(0)) store.close();
});

const LEASE = 'connector:main';

/** This process's store, whose renewals fail while `busy` is set, and a second process's store on the same files. */
function twoProcesses(clock: ManualClock) {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-lease-'));
  const real = openStateStore(dir, clock);
  const other = openStateStore(dir, clock);
  opened.push(real, other);
  const state = { busy: false, busyMs: 0 };
  const flaky = Object.assign(Object.create(real) as StateStore, {
    renewLease: (name: string, id: string, ttl: number) => {
      if (state.busy) {
        clock.move(state.busyMs); // the busy wait passes before the error comes
        throw new BridgeError('BRG_ERR_STATE', 'The state database is locked by another process (database is locked).');
      }
      return real.renewLease(name, id, ttl);
    },
  });
  return { flaky, other, state };
}

/** A heartbeat the test fires by hand, so it can come late as a timer of a busy process does. */
function manualBeat(ttlMs: number): { policy: LeasePolicy; beat: () => void; beatMs: () => number } {
  let renew: () => void = () => undefined;
  let every = 0;
  const policy: LeasePolicy = {
    ttlMs,
    identity: { host: 'h', pid: 1, command: 'bridge sync' },
    isStale: () => false,
    every: (ms, fn) => {
      every = ms;
      renew = fn;
      return () => undefined;
    },
  };
  return { policy, beat: () => renew(), beatMs: () => every };
}

const otherHolder: LeaseHolder = { id: 'other', host: 'h2', pid: 2, command: 'bridge sync', since: '2026-11-23T00:00:00Z' };

describe('lease heartbeat', () => {
  it('rides out one busy renewal (which waits out the busy timeout), and stops the run before another process can take over', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { flaky, other, state } = twoProcesses(clock);
    const { policy, beat, beatMs } = manualBeat(120_000); // the default TTL: a beat every 30 s
    let ids = 0;
    const lease = holdLease(flaky, LEASE, policy, clock, () => `holder-${++ids}`, 'A sync of connector "main"');
    expect(beatMs()).toBe(30_000);
    await clock.advance(30_000);
    beat(); // renewed at 30 s: ours until 150 s
    state.busy = true;
    state.busyMs = 5_000; // better-sqlite3 waits busy_timeout (5 s) before it gives up
    await clock.advance(30_000);
    expect(() => beat()).not.toThrow(); // failed at 65 s, 35 s since the renewal: two beats still fit before 150 s
    expect(lease.lost.aborted).toBe(false);
    await clock.advance(25_000);
    beat(); // failed at 95 s: the next beat might land after the lease lapsed, so the run stops now
    expect(lease.lost.aborted).toBe(true);
    expect(lease.lost.reason).toMatchObject({ code: 'BRG_ERR_STATE', message: expect.stringContaining('could not be renewed for 65 s') });
    expect(other.acquireLease(LEASE, otherHolder, 120_000, () => false)).toMatchObject({ acquired: false }); // still ours until 150 s
    await clock.advance(55_000);
    expect(other.acquireLease(LEASE, otherHolder, 120_000, () => false)).toMatchObject({ acquired: true });
    lease.release(); // no longer ours: releasing leaves the other process's lease alone
    expect(other.readLease(LEASE)?.holder.id).toBe('other');
  });

  it('for any TTL, timers late by up to a beat and renewals that wait out the busy timeout, the run stops before another process can take the lease', async () => {
    for (const ttlMs of [10_000, 16_000, 20_000, 90_000, 100_000, 100_001, 100_002, 120_000, 299_999]) {
      for (const lateness of [0, 0.25, 0.5, 0.99]) {
        for (const busyMs of [0, 1_000, 5_000]) {
          const label = `TTL ${ttlMs} ms, ${lateness} beat late, ${busyMs} ms busy`;
          const clock = new ManualClock('2026-11-23T00:00:00Z');
          const { flaky, other, state } = twoProcesses(clock);
          const { policy, beat, beatMs } = manualBeat(ttlMs);
          const lease: HeldLease = holdLease(flaky, LEASE, policy, clock, () => 'ours', 'A sync');
          const late = Math.floor(beatMs() * lateness);
          Object.assign(state, { busy: true, busyMs }); // from the start: no renewal succeeds
          const expiresMs = other.readLease(LEASE)?.expiresMs ?? 0;
          for (let beats = 0; beats < 20 && !lease.lost.aborted; beats++) {
            await clock.advance(beatMs() + late);
            beat();
            // Still running: its next try, late and busy as this one, must end while the lease is its own.
            if (!lease.lost.aborted) expect(clock.now() + beatMs() + late + busyMs, label).toBeLessThan(expiresMs);
          }
          expect(lease.lost.aborted, label).toBe(true);
          await clock.advance(Math.max(0, expiresMs - clock.now()));
          expect(
            other.acquireLease(LEASE, otherHolder, ttlMs, () => false),
            label,
          ).toMatchObject({ acquired: true });
          lease.release();
          for (const store of opened.splice(0)) store.close();
        }
      }
    }
  });

  it('a renewal that succeeds keeps the run going however long the database was busy before it', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { flaky, other, state } = twoProcesses(clock);
    const { policy, beat } = manualBeat(90_000);
    const lease = holdLease(flaky, LEASE, policy, clock, () => 'ours', 'A sync');
    state.busy = true;
    await clock.advance(30_000);
    beat(); // busy once: 30 s since the taking, two beats left
    state.busy = false;
    await clock.advance(30_000);
    beat(); // renewed at 60 s: ours until 150 s
    state.busy = true;
    await clock.advance(30_000);
    beat();
    expect(lease.lost.aborted).toBe(false);
    expect(other.readLease(LEASE)?.expiresMs).toBe(Date.parse('2026-11-23T00:02:30Z'));
    expect(other.acquireLease(LEASE, otherHolder, 90_000, () => false)).toMatchObject({ acquired: false });
    lease.release();
  });
});

describe('the leases this process holds', () => {
  it("a holder is this process's from its taking to its release, or until another process took its lease over; never a refused one", async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { flaky, other } = twoProcesses(clock);
    const { policy, beat } = manualBeat(60_000);
    const released = holdLease(flaky, LEASE, policy, clock, () => 'released', 'A sync');
    expect(heldByThisProcess('released')).toBe(true);
    expect(() => holdLease(flaky, LEASE, policy, clock, () => 'refused', 'A sync')).toThrow(expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS' }));
    expect(heldByThisProcess('refused')).toBe(false);
    released.release();
    expect(heldByThisProcess('released')).toBe(false);

    const lost = holdLease(flaky, LEASE, policy, clock, () => 'taken-over', 'A sync');
    expect(heldByThisProcess('taken-over')).toBe(true);
    await clock.advance(61_000); // paused past its TTL: another process takes it
    expect(other.acquireLease(LEASE, otherHolder, 60_000, () => false)).toMatchObject({ acquired: true });
    beat();
    expect(lost.lost.aborted).toBe(true);
    expect(heldByThisProcess('taken-over')).toBe(false);
    lost.release();
    expect(other.readLease(LEASE)?.holder.id).toBe('other');
  });

  it("a run stopped because its renewals failed keeps its lease this process's until it releases it (the store still names it)", async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { flaky, state } = twoProcesses(clock);
    const { policy, beat, beatMs } = manualBeat(20_000);
    const lease = holdLease(flaky, LEASE, policy, clock, () => 'stopped', 'A sync');
    Object.assign(state, { busy: true, busyMs: 5_000 });
    for (let beats = 0; beats < 10 && !lease.lost.aborted; beats++) {
      await clock.advance(beatMs());
      beat();
    }
    expect(lease.lost.reason).toMatchObject({ code: 'BRG_ERR_STATE' });
    expect(heldByThisProcess('stopped')).toBe(true);
    state.busy = false;
    lease.release();
    expect(heldByThisProcess('stopped')).toBe(false);
  });
});
