import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStateStore, ZERO_COUNTS, type RunRecord, type StateStore } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

let store: StateStore | undefined;
afterEach(() => store?.close());

function fresh(): { dir: string; store: StateStore } {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-state-'));
  store = openStateStore(dir, new ManualClock('2026-11-23T00:00:00Z'));
  return { dir, store };
}

const run = (id: string, over: Partial<RunRecord> = {}): RunRecord => ({
  id, connector: 'main', state: 'running', trigger: 'cli', since: '2026-11-22T00:00:00.000Z', until: '2026-11-23T00:00:00.000Z',
  startedAt: `2026-11-23T00:00:0${id.length}.000Z`, counts: { ...ZERO_COUNTS }, dryRun: false, ...over,
});

describe('SQLite state store', () => {
  it('creates the database 0600 at the latest schema version with WAL', () => {
    const { dir } = fresh();
    store?.close();
    store = undefined;
    const file = join(dir, 'bridge.sqlite');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('keeps the watermark unchanged until a run completes, then moves it with the staged overlap keys atomically', () => {
    const { store: s } = fresh();
    s.createRun(run('r1'));
    s.updateRun('r1', { state: 'pushing', spoolPath: '/tmp/x.txt' });
    s.stageSeenEvents('r1', [{ key: 'e1|', recorded: '2026-11-22T23:59:00Z' }]);
    expect(s.getWatermark('main')).toBeUndefined();
    expect(s.seenEvents('main', ['e1|'])).toEqual(new Set());
    expect(s.findUnfinishedRun('main')?.id).toBe('r1');

    s.completeRun('r1', { counts: { ...ZERO_COUNTS, rows: 3 }, watermark: '2026-11-23T00:00:00.000Z' });
    expect(s.getWatermark('main')).toBe('2026-11-23T00:00:00.000Z');
    expect(s.seenEvents('main', ['e1|', 'e2|'])).toEqual(new Set(['e1|']));
    expect(s.getRun('r1')).toMatchObject({ state: 'completed', counts: { rows: 3 }, finishedAt: '2026-11-23T00:00:00.000Z' });
    expect(s.findUnfinishedRun('main')).toBeUndefined();
  });

  it('prunes seen keys older than the given instant', () => {
    const { store: s } = fresh();
    s.createRun(run('r1'));
    s.stageSeenEvents('r1', [{ key: 'old|', recorded: '2026-11-20T00:00:00Z' }, { key: 'new|', recorded: '2026-11-22T23:00:00Z' }]);
    s.completeRun('r1', { counts: { ...ZERO_COUNTS }, watermark: '2026-11-23T00:00:00.000Z', pruneBefore: '2026-11-22T00:00:00Z' });
    expect(s.seenEvents('main', ['old|', 'new|'])).toEqual(new Set(['new|']));
  });

  it('records blocks as sending before the request and acked after, counting attempts', () => {
    const { store: s } = fresh();
    expect(s.get('sha', 0)).toBeUndefined();
    s.markSending('sha', 0, 100);
    expect(s.get('sha', 0)).toEqual({ state: 'sending', attempts: 1 });
    s.markSending('sha', 0, 100);
    expect(s.get('sha', 0)).toEqual({ state: 'sending', attempts: 2 });
    s.markAcked('sha', 0, 100, true);
    expect(s.get('sha', 0)).toEqual({ state: 'acked', attempts: 2 });
    expect(s.get('sha', 1)).toBeUndefined();
  });

  it('lists runs newest first, filtered by connector', () => {
    const { store: s } = fresh();
    s.createRun(run('a'));
    s.createRun(run('bb', { connector: 'other' }));
    s.createRun(run('ccc'));
    expect(s.listRuns().map((r) => r.id)).toEqual(['ccc', 'bb', 'a']);
    expect(s.listRuns({ connector: 'main', limit: 1 }).map((r) => r.id)).toEqual(['ccc']);
  });

  it('survives a reopen: state is durable', () => {
    const { dir, store: s } = fresh();
    s.createRun(run('r1'));
    s.markAcked('sha', 3, 10, false);
    s.close();
    store = openStateStore(dir, new ManualClock(0));
    expect(store.getRun('r1')?.state).toBe('running');
    expect(store.get('sha', 3)?.state).toBe('acked');
  });
});
