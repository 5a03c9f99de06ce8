import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureRunDirs, runFiles, sweepRunFiles } from '../../src/sync/run-files.js';
import { openStateStore, type RunRecord, type StateStore, ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

const DAY = 86_400_000;
let store: StateStore | undefined;
afterEach(() => store?.close());

const run = (id: string, connector: string, state: RunRecord['state']): RunRecord => ({
  id,
  connector,
  state,
  trigger: 'cli',
  since: '2026-11-22T00:00:00.000Z',
  until: '2026-11-23T00:00:00.000Z',
  startedAt: '2026-11-23T00:00:00.000Z',
  counts: { ...ZERO_COUNTS },
  dryRun: false,
});

describe('sweeping run files (PHI) at the start of a run', () => {
  it("sweeps a retired connector's finished runs by the same retention as its own, and leaves other live connectors' alone", () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-sweep-'));
    const clock = new ManualClock('2026-12-01T00:00:00Z');
    store = openStateStore(dir, clock);
    ensureRunDirs(dir);
    const runs = [
      run('retired-failed', 'retired:old:2026-11-30T00:00:00.000Z', 'failed'),
      run('retired-done-old', 'retired:old:2026-11-30T00:00:00.000Z', 'completed'),
      run('retired-done-new', 'retired:old:2026-11-30T00:00:00.000Z', 'completed'),
      run('other-failed', 'other', 'failed'),
    ];
    for (const r of runs) {
      store.createRun(r);
      const files = runFiles(dir, r.id);
      writeFileSync(files.spoolPath, 'PHI');
      writeFileSync(files.rejectsPath, 'PHI');
    }
    const old = new Date(clock.now() - 20 * DAY);
    utimesSync(runFiles(dir, 'retired-done-old').rejectsPath, old, old);

    sweepRunFiles(dir, store, 'main', { retainCompleted: false, rejectsRetentionMs: 14 * DAY, nowMs: clock.now() });
    const left = (id: string) => [existsSync(runFiles(dir, id).spoolPath), existsSync(runFiles(dir, id).rejectsPath)];
    expect(left('retired-failed')).toEqual([false, false]);
    expect(left('retired-done-old')).toEqual([false, false]);
    // A completed run's rejects stay for retention.rejectsDays, whoever its connector is now.
    expect(left('retired-done-new')).toEqual([false, true]);
    // Another connector sweeps its own (its run may be in flight in another process).
    expect(left('other-failed')).toEqual([true, true]);
  });

  it("removes finished runs' event logs after retention.runLogDays, any connector's; never an unfinished run's, nor the run-less log", () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-sweep-'));
    const clock = new ManualClock('2026-12-01T00:00:00Z');
    store = openStateStore(dir, clock);
    const logs = join(dir, 'runs');
    mkdirSync(logs);
    const runs = [
      run('done-old', 'main', 'completed'),
      run('failed-old', 'other', 'failed'),
      run('pushing-old', 'main', 'pushing'),
      run('done-new', 'main', 'completed'),
    ];
    for (const r of runs) store.createRun(r);
    const old = new Date(clock.now() - 91 * DAY);
    for (const id of [...runs.map((r) => r.id), 'no-run', 'unknown-old']) {
      writeFileSync(join(logs, `${id}.ndjson`), '{}\n');
      if (id !== 'done-new') utimesSync(join(logs, `${id}.ndjson`), old, old);
    }
    const removed = sweepRunFiles(dir, store, 'main', {
      retainCompleted: false,
      rejectsRetentionMs: 14 * DAY,
      nowMs: clock.now(),
      runLogRetentionMs: 90 * DAY,
    });
    const left = ['done-old', 'failed-old', 'pushing-old', 'done-new', 'no-run', 'unknown-old'].filter((id) => existsSync(join(logs, `${id}.ndjson`)));
    expect(left).toEqual(['pushing-old', 'done-new', 'no-run']);
    expect(removed).toBe(3);
  });
});
