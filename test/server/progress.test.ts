/** Live progress of the run in flight, from the sync events (what the operator page shows while a run works). */
import { describe, expect, it } from 'vitest';
import { trackProgress } from '../../src/server/progress.js';
import { SyncEvents } from '../../src/sync/events.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

describe('progress tracker', () => {
  it('follows pull, spool and push, estimates the blocks, and clears at the end', () => {
    const events = new SyncEvents();
    const tracker = trackProgress(events, 100, new ManualClock('2026-11-23T12:00:00Z'));
    let changes = 0;
    const stop = tracker.onChange(() => (changes += 1));
    expect(tracker.current()).toBeUndefined();
    events.emit('run_start', { runId: 'r1', connector: 'c', since: 'a', until: 'b', dryRun: false, backfill: false });
    events.emit('page', { runId: 'r1', events: 120, duplicates: 0, skipped: 5, rows: 130, rejects: 2 });
    events.emit('page', { runId: 'r1', events: 100, duplicates: 0, skipped: 0, rows: 120, rejects: 0 });
    expect(tracker.current()).toEqual({
      runId: 'r1',
      phase: 'pulling',
      startedAt: '2026-11-23T12:00:00.000Z',
      events: 220,
      rows: 250,
      rejects: 2,
      rowsAcked: 0,
      blocksAcked: 0,
    });
    events.emit('spool_complete', { runId: 'r1', rows: 250 });
    expect(tracker.current()).toMatchObject({ phase: 'pushing', blocksTotal: 3 });
    events.emit('rows_already_delivered', { runId: 'r1', rows: 100 });
    expect(tracker.current()).toMatchObject({ rowsAcked: 100, blocksTotal: 2 });
    events.emit('block_acked', { runId: 'r1', index: 0, rows: 100, status: 200, ms: 5, possiblyDuplicated: false, possiblyDuplicatedRows: 0 });
    expect(tracker.current()).toMatchObject({ rowsAcked: 200, blocksAcked: 1, blocksTotal: 2 });
    // Events of another run (none should come, but a stale one must not corrupt the counts).
    events.emit('block_acked', { runId: 'other', index: 0, rows: 100, status: 200, ms: 5, possiblyDuplicated: false, possiblyDuplicatedRows: 0 });
    expect(tracker.current()?.blocksAcked).toBe(1);
    events.emit('run_complete', { runId: 'r1', connector: 'c', counts: { ...ZERO_COUNTS } });
    expect(tracker.current()).toBeUndefined();
    expect(changes).toBe(7);
    stop();
    tracker.detach();
  });

  it('starts a resumed run in the push phase and clears on error', () => {
    const events = new SyncEvents();
    const tracker = trackProgress(events, 10, new ManualClock(0));
    events.emit('run_start', { runId: 'old', connector: 'c', since: 'a', until: 'b', resumedFrom: 'old', dryRun: false, backfill: false });
    expect(tracker.current()?.phase).toBe('pushing');
    events.emit('error', { runId: 'old', connector: 'c', code: 'BRG_ERR_ABORTED', message: 'stopped' });
    expect(tracker.current()).toBeUndefined();
    tracker.detach();
  });
});
