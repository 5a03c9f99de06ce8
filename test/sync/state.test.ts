import { mkdtempSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  openExistingStateStore,
  openStateStore,
  type RunRecord,
  type SeenEvent,
  STATE_SCHEMA_VERSION,
  type StateStore,
  UNKNOWN_USERS,
  upgradeStateStore,
  ZERO_COUNTS,
} from '../../src/sync/state/index.js';
import { MIGRATIONS } from '../../src/sync/state/migrations.js';
import { errorOf } from '../support/error-of.js';
import { eventCursor } from '../support/ledger-blocks.js';
import { ManualClock } from '../support/manual-clock.js';

let store: StateStore | undefined;
afterEach(() => store?.close());

function fresh(): { dir: string; store: StateStore } {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-state-'));
  store = openStateStore(dir, new ManualClock('2026-11-23T00:00:00Z'));
  return { dir, store };
}

/** Two Purview jobs (destinationKey form). */
const JOB_A = 'https://ingest|t|job-a';
const JOB_B = 'https://ingest|t|job-b';

/** The state database opened read-only beside the store, to read what the store does not expose. */
const readOnlyState = (dir: string): Database.Database => new Database(join(dir, 'bridge.sqlite'), { readonly: true });

const run = (id: string, over: Partial<RunRecord> = {}): RunRecord => ({
  id,
  connector: 'main',
  state: 'running',
  trigger: 'cli',
  since: '2026-11-22T00:00:00.000Z',
  until: '2026-11-23T00:00:00.000Z',
  startedAt: `2026-11-23T00:00:0${id.length}.000Z`,
  counts: { ...ZERO_COUNTS },
  dryRun: false,
  ...over,
});

describe('SQLite state store', () => {
  it('creates the database 0600 at the latest schema version with WAL', () => {
    const { dir } = fresh();
    store?.close();
    store = undefined;
    const file = join(dir, 'bridge.sqlite');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(9);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('keeps the watermark unchanged until a run completes, then moves it with the staged overlap keys atomically', () => {
    const { store: s } = fresh();
    s.createRun(run('r1'));
    s.beginPush('r1', { spoolPath: '/tmp/x.txt', error: { code: 'BRG_ERR_PURVIEW_UNAVAILABLE', message: 'earlier attempt' } }, [
      { key: 'e1|', windowMs: Date.parse('2026-11-22T23:59:00Z') },
    ]);
    expect(s.getWatermark('main')).toBeUndefined();
    expect(s.seenEvents('main', JOB_A, ['e1|'])).toEqual(new Set());
    expect(s.findUnfinishedRun('main')?.id).toBe('r1');

    s.completeRun('r1', { counts: { ...ZERO_COUNTS, rows: 3 }, watermark: '2026-11-23T00:00:00.000Z', destination: JOB_A });
    expect(s.getWatermark('main')).toBe('2026-11-23T00:00:00.000Z');
    expect(s.seenEvents('main', JOB_A, ['e1|', 'e2|'])).toEqual(new Set(['e1|']));
    // Issue #14.3: a completed run no longer carries the error of an earlier attempt.
    expect(s.getRun('r1')).toMatchObject({ state: 'completed', counts: { rows: 3 }, finishedAt: '2026-11-23T00:00:00.000Z' });
    expect(s.getRun('r1')?.error).toBeUndefined();
    expect(s.findUnfinishedRun('main')).toBeUndefined();
  });

  it('a completed run is final: the failure a second process records (it lost its lease) changes nothing, nor does a second completion', () => {
    const { dir, store: holder } = fresh();
    const other = openStateStore(dir, new ManualClock('2026-11-23T00:05:00Z'));
    try {
      holder.createRun(run('r1'));
      holder.beginPush('r1', { spoolPath: '/tmp/x.txt' }, [{ key: 'e1|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
      holder.completeRun('r1', { counts: { ...ZERO_COUNTS, rows: 3 }, watermark: '2026-11-23T00:00:00.000Z', destination: JOB_A, details: { unexported: 1 } });
      other.updateRun('r1', { state: 'pushing', error: { code: 'BRG_ERR_RUN_IN_PROGRESS', message: 'lost its lease' } });
      other.updateRun('r1', { state: 'failed', finishedAt: '2026-11-23T00:05:00.000Z' });
      other.completeRun('r1', { counts: { ...ZERO_COUNTS }, destination: JOB_B });
      expect(holder.getRun('r1')).toMatchObject({
        state: 'completed',
        counts: { rows: 3 },
        finishedAt: '2026-11-23T00:00:00.000Z',
        details: { unexported: 1 },
      });
      expect(holder.getRun('r1')?.error).toBeUndefined();
      expect(holder.findUnfinishedRun('main')).toBeUndefined();
      expect(other.seenEvents('main', JOB_B, ['e1|'])).toEqual(new Set());
    } finally {
      other.close();
    }
  });

  it('a run that fails drops the event keys it staged; a completion drops those failed runs of earlier releases kept', () => {
    const { dir, store: s } = fresh();
    const staged = (): number => {
      const db = readOnlyState(dir);
      try {
        return (db.prepare('SELECT count(*) AS n FROM pending_seen').get() as { n: number }).n;
      } finally {
        db.close();
      }
    };
    s.createRun(run('r1'));
    s.beginPush('r1', { spoolPath: '/tmp/x.txt' }, [{ key: 'e1|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
    s.updateRun('r1', { error: { code: 'BRG_ERR_PURVIEW_UNAVAILABLE', message: 'resumable' } });
    expect(staged()).toBe(1);
    s.updateRun('r1', { state: 'failed', finishedAt: '2026-11-23T00:00:00.000Z' });
    expect(staged()).toBe(0);
    // A run failed by an earlier release (or by hand, as the upgrade advice says) kept its keys: the next completion
    // of the connector drops them.
    s.createRun(run('r22'));
    s.beginPush('r22', { spoolPath: '/tmp/y.txt' }, [{ key: 'e2|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
    const raw = new Database(join(dir, 'bridge.sqlite'));
    raw.prepare("UPDATE runs SET state = 'failed' WHERE id = 'r22'").run();
    raw.close();
    s.createRun(run('r333'));
    s.beginPush('r333', { spoolPath: '/tmp/z.txt' }, [{ key: 'e3|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
    expect(staged()).toBe(2);
    s.completeRun('r333', { counts: { ...ZERO_COUNTS }, destination: JOB_A });
    expect(staged()).toBe(0);
    expect(s.seenEvents('main', JOB_A, ['e2|', 'e3|'])).toEqual(new Set(['e3|']));
  });

  it('marks a run pushing and stages its seen events in one transaction: a failure staging them leaves the run as it was', () => {
    const { store: s } = fresh();
    s.createRun(run('r1'));
    const good = { key: 'e1|', windowMs: Date.parse('2026-11-22T23:59:00Z') };
    // The process fails after the run row and one key were written, before the second key.
    const failing: SeenEvent[] = [good];
    Object.defineProperty(failing, 1, {
      enumerable: true,
      get: () => {
        throw new Error('killed midway');
      },
    });
    expect(() => s.beginPush('r1', { spoolPath: '/tmp/x.txt' }, failing)).toThrow('killed midway');
    expect(s.getRun('r1')).toMatchObject({ state: 'running' });
    expect(s.getRun('r1')?.spoolPath).toBeUndefined();
    s.beginPush('r1', { spoolPath: '/tmp/x.txt' }, [good]);
    expect(s.getRun('r1')).toMatchObject({ state: 'pushing', spoolPath: '/tmp/x.txt' });
    s.completeRun('r1', { counts: { ...ZERO_COUNTS }, destination: JOB_A });
    expect(s.seenEvents('main', JOB_A, ['e1|'])).toEqual(new Set(['e1|']));
  });

  it('keeps the seen set per destination: an event pushed to one Purview job is not seen for another (a backfill after purview.jobId changed)', () => {
    const { store: s } = fresh();
    s.createRun(run('r1'));
    s.beginPush('r1', {}, [{ key: 'e1|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
    s.completeRun('r1', { counts: { ...ZERO_COUNTS }, watermark: '2026-11-23T00:00:00.000Z', destination: JOB_A });
    expect(s.seenEvents('main', JOB_A, ['e1|'])).toEqual(new Set(['e1|']));
    expect(s.seenEvents('main', JOB_B, ['e1|'])).toEqual(new Set());
    // Pushed to job B too: seen for B now (the ledger still answers for A).
    s.createRun(run('r22'));
    s.beginPush('r22', {}, [{ key: 'e1|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
    s.completeRun('r22', { counts: { ...ZERO_COUNTS }, destination: JOB_B });
    expect(s.seenEvents('main', JOB_B, ['e1|'])).toEqual(new Set(['e1|']));
  });

  it('a seen event from before schema v6 (no destination) still counts for any destination: from 0.1.0 the ledger starts empty', () => {
    const { dir, store: s } = fresh();
    s.createRun(run('r1'));
    s.beginPush('r1', {}, [{ key: 'old|', windowMs: Date.parse('2026-11-22T23:59:00Z') }]);
    s.completeRun('r1', { counts: { ...ZERO_COUNTS }, destination: JOB_A });
    const db = new Database(join(dir, 'bridge.sqlite'));
    db.prepare('UPDATE seen_events SET destination = NULL').run();
    db.close();
    expect(s.seenEvents('main', JOB_B, ['old|'])).toEqual(new Set(['old|']));
    expect(s.seenEvents('main', JOB_A, ['old|'])).toEqual(new Set(['old|']));
  });

  // Issue #14.4: a backfill completing must not rewind the watermark.
  it('never moves the watermark backwards, comparing instants whatever their offset', () => {
    const { store: s } = fresh();
    for (const [id, watermark] of [
      ['a', '2026-11-23T00:00:00.000Z'],
      ['bb', '2026-11-22T12:00:00.000Z'],
      ['ccc', '2026-11-22T17:30:00-07:00'],
    ] as const) {
      s.createRun(run(id));
      s.completeRun(id, { counts: { ...ZERO_COUNTS }, watermark });
    }
    // '2026-11-22T17:30:00-07:00' is 00:30Z on the 23rd: later, so it moved; the 12:00Z one did not.
    expect(Date.parse(s.getWatermark('main') ?? '')).toBe(Date.parse('2026-11-23T00:30:00Z'));
  });

  // Issue #14.5: seen keys were pruned by comparing text, so "-07:00" events survived or vanished at random.
  it('prunes seen keys by instant, whatever offset their time was written with', () => {
    const { store: s } = fresh();
    s.createRun(run('r1'));
    const cutoff = Date.parse('2026-11-22T00:00:00Z');
    s.beginPush('r1', {}, [
      { key: 'before|', windowMs: Date.parse('2026-11-21T16:59:59-07:00') }, // 23:59:59Z: before the cutoff
      { key: 'after|', windowMs: Date.parse('2026-11-21T17:00:01-07:00') }, // 00:00:01Z: after it
    ]);
    s.completeRun('r1', { counts: { ...ZERO_COUNTS }, watermark: '2026-11-23T00:00:00.000Z', pruneSeenBeforeMs: cutoff, destination: JOB_A });
    expect(s.seenEvents('main', JOB_A, ['before|', 'after|'])).toEqual(new Set(['after|']));
  });

  it('lists runs newest first, filtered by connector, with their details', () => {
    const { store: s } = fresh();
    s.createRun(run('a'));
    s.createRun(run('bb', { connector: 'other', backfill: true }));
    s.createRun(run('ccc', { details: { skipReasons: { 'no-patient': 2 } } }));
    expect(s.listRuns().map((r) => r.id)).toEqual(['ccc', 'bb', 'a']);
    expect(s.listRuns({ connector: 'main', limit: 1 }).map((r) => r.id)).toEqual(['ccc']);
    expect(s.getRun('bb')?.backfill).toBe(true);
    expect(s.getRun('ccc')?.details).toEqual({ skipReasons: { 'no-patient': 2 } });
  });

  it('finds the last completed run of a connector however many runs failed since, leaving out dry runs and other connectors', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const s = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-state-')), clock);
    store = s;
    const complete = async (record: RunRecord): Promise<void> => {
      s.createRun(record);
      await clock.advance(60_000);
      s.completeRun(record.id, { counts: { ...ZERO_COUNTS } });
    };
    expect(s.lastCompletedRun('main')).toBeUndefined();
    await complete(run('good'));
    await complete(run('dry', { dryRun: true }));
    await complete(run('elsewhere', { connector: 'other' }));
    for (let i = 0; i < 300; i++)
      s.createRun(run(`failed-${i}`, { state: 'failed', startedAt: new Date(Date.parse('2026-11-24T00:00:00Z') + i * 1000).toISOString() }));
    expect(s.lastCompletedRun('main')).toMatchObject({ id: 'good', state: 'completed', finishedAt: '2026-11-23T00:01:00.000Z' });
    expect(s.lastCompletedRun('other')?.id).toBe('elsewhere');
    await complete(run('later'));
    expect(s.lastCompletedRun('main')?.id).toBe('later');
  });

  it('survives a reopen: state is durable', () => {
    const { dir, store: s } = fresh();
    s.createRun(run('r1'));
    const target = { destination: 'd', source: 'file:x' };
    const block = s.openRangeBlock(target, [{ first: 0, end: 10 }], 0);
    s.markAttempt(block.id);
    s.markAcked(block.id, 0);
    s.close();
    store = openStateStore(dir, new ManualClock(0));
    expect(store.getRun('r1')?.state).toBe('running');
    expect(store.rangesOf(target)).toEqual([{ first: 0, end: 10, state: 'acked' }]);
  });
});

/**
 * Destination keys of an older schema, as ids 1, 2, … in order, the connector `main` as source 1, and the statement that
 * claims an event (destination, key, block) for it on day 20000.
 */
function seedDestinations(db: Database.Database, keys: readonly string[]) {
  for (const [i, key] of keys.entries()) db.prepare('INSERT INTO destinations (id, key) VALUES (?, ?)').run(i + 1, key);
  db.prepare("INSERT INTO sources (id, key) VALUES (1, 'main')").run();
  return { claim: db.prepare('INSERT INTO delivered_events (destination_id, source_id, day, event_key, block_id) VALUES (?, 1, 20000, ?, ?)') };
}

/** A state database left at schema `version` by an older bridge. */
function stateAt(version: number): string {
  const dir = mkdtempSync(join(tmpdir(), `bridge-state-v${version}-`));
  const db = new Database(join(dir, 'bridge.sqlite'));
  db.pragma('journal_mode = WAL');
  for (const sql of MIGRATIONS.slice(0, version)) db.exec(sql);
  db.pragma(`user_version = ${version}`);
  db.close();
  return dir;
}

const versionOf = (dir: string): number => {
  const db = readOnlyState(dir);
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
};

describe('a damaged state database', () => {
  /** A database with some runs in it, closed: a file to damage as a disk or a torn copy would. */
  function closedDatabase(): { dir: string; file: string } {
    const { dir, store: opened } = fresh();
    for (let i = 0; i < 100; i++) opened.createRun(run(`r${i}`));
    opened.close();
    store = undefined;
    return { dir, file: join(dir, 'bridge.sqlite') };
  }

  it.each([
    ['not a database at all', 'SQLITE_NOTADB', (file: string) => writeFileSync(file, Buffer.alloc(8192, 0x5a))],
    ['truncated', 'SQLITE_CORRUPT', (file: string) => truncateSync(file, statSync(file).size / 2)],
  ])('%s: the open names the file and SQLite code, says it is damaged and what to do, and never to delete it', (_, code, damage) => {
    const { dir, file } = closedDatabase();
    damage(file);
    const error = errorOf(() => openStateStore(dir, new ManualClock('2026-11-23T00:00:00Z')));
    expect(error.code).toBe('BRG_ERR_STATE');
    expect(error.message).toContain(`Cannot open the state database ${file} (${code}). The database file is damaged`);
    expect(error.message).toContain('restore it from your latest backup');
    expect(error.message).toContain(`sqlite3 ${file} .recover`);
    expect(error.message).toContain('Do not delete it');
    expect(error.details).toMatchObject({ sqlite: code });
  });
});

describe('schema version', () => {
  it('a read-only open of an older schema refuses and changes nothing; an upgrade says from which version it went', () => {
    const dir = stateAt(6);
    const error = errorOf(() => openExistingStateStore(dir, new ManualClock(0), { upgrade: false }));
    expect(error.code).toBe('BRG_ERR_STATE_SCHEMA');
    expect(error.message).toContain(`schema v6 is older than this bridge (v${STATE_SCHEMA_VERSION})`);
    expect(error.message).toContain('bridge state upgrade');
    expect(versionOf(dir)).toBe(6);
    expect(upgradeStateStore(dir, { nowMs: 0, isStale: () => false })).toEqual({ from: 6, to: STATE_SCHEMA_VERSION });
    expect(versionOf(dir)).toBe(STATE_SCHEMA_VERSION);
    expect(upgradeStateStore(dir, { nowMs: 0, isStale: () => false })).toEqual({ from: STATE_SCHEMA_VERSION, to: STATE_SCHEMA_VERSION });
    store = openExistingStateStore(dir, new ManualClock(0), { upgrade: false });
    expect(store.listRuns({ limit: 5 })).toEqual([]);
    // A directory no bridge has used has nothing to upgrade: a typo in stateDir, not a new database.
    expect(errorOf(() => upgradeStateStore(join(dir, 'missing'), { nowMs: 0, isStale: () => false })).code).toBe('BRG_ERR_CONFIG_INVALID');
  });

  it('v8 keys a destination by host and job: two spellings of one tenant become one destination, nothing forgotten, a double flagged', () => {
    const dir = stateAt(7);
    const db = new Database(join(dir, 'bridge.sqlite'));
    const domain = 'https://ingest|contoso.onmicrosoft.com|job-1';
    const guid = 'https://ingest|3f2a9c1e-0000-4000-8000-000000000001|job-1';
    const other = 'https://ingest|3f2a9c1e-0000-4000-8000-000000000001|job-2';
    const { claim } = seedDestinations(db, [domain, guid, other]);
    db.prepare("INSERT INTO sources (id, key) VALUES (2, 'file:abc')").run();
    const block = db.prepare(
      'INSERT INTO delivery_blocks (id, destination_id, source_id, run_id, state, rows, attempts, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)',
    );
    // Under the domain: a and b; under the GUID (the same job, a rerun after the spelling changed): b again, and c.
    block.run(10, 1, 1, 'r-domain', 'acked', 2, 1);
    block.run(20, 2, 1, 'r-guid', 'acked', 2, 1);
    block.run(30, 3, 1, 'r-other', 'acked', 1, 1);
    claim.run(1, 'a|1', 10);
    claim.run(1, 'b|1', 10);
    claim.run(2, 'b|1', 20);
    claim.run(2, 'c|1', 20);
    claim.run(3, 'a|1', 30);
    // e: claimed under the domain by a block that never went out, then acknowledged under the GUID: sent once.
    block.run(11, 1, 1, 'r-domain-2', 'sending', 1, 0);
    block.run(21, 2, 1, 'r-guid-2', 'acked', 1, 1);
    claim.run(1, 'e|1', 11);
    claim.run(2, 'e|1', 21);
    // One file's rows 0-10 pushed under each spelling: the job holds them twice.
    block.run(40, 1, 2, 'r-file-domain', 'acked', 10, 1);
    block.run(50, 2, 2, 'r-file-guid', 'acked', 10, 1);
    db.prepare('INSERT INTO delivered_ranges (destination_id, source_id, first_row, end_row, block_id) VALUES (1, 2, 0, 10, 40), (2, 2, 0, 10, 50)').run();
    db.prepare('INSERT INTO delivery_marks (destination_id, source_id, high_ms) VALUES (?, 1, ?)').run(1, 5_000);
    db.prepare('INSERT INTO delivery_marks (destination_id, source_id, high_ms) VALUES (?, 1, ?)').run(2, 9_000);
    db.prepare('INSERT INTO delivery_horizons (destination_id, source_id, pruned_before_ms) VALUES (?, 1, ?)').run(2, 86_400_000);
    db.prepare("INSERT INTO seen_events (connector, event_key, recorded_ms, destination) VALUES ('main', 'c|1', 0, ?)").run(guid);
    db.prepare("INSERT INTO seen_events (connector, event_key, recorded_ms, destination) VALUES ('main', 'd|1', 0, NULL)").run();
    db.close();

    expect(upgradeStateStore(dir, { nowMs: 0, isStale: () => false })).toEqual({ from: 7, to: STATE_SCHEMA_VERSION });
    const after = readOnlyState(dir);
    try {
      // (v9 then drops the host: the job alone.)
      expect(after.prepare('SELECT id, key FROM destinations ORDER BY id').all()).toEqual([
        { id: 1, key: 'job-1' },
        { id: 3, key: 'job-2' },
      ]);
      // A claim both had is flagged may-be-sent and kept on the block that acknowledged it last (the second send).
      expect(after.prepare('SELECT destination_id, event_key, block_id, maybe_sent FROM delivered_events ORDER BY destination_id, event_key').all()).toEqual([
        { destination_id: 1, event_key: 'a|1', block_id: 10, maybe_sent: 0 },
        { destination_id: 1, event_key: 'b|1', block_id: 20, maybe_sent: 1 },
        { destination_id: 1, event_key: 'c|1', block_id: 20, maybe_sent: 0 },
        { destination_id: 1, event_key: 'e|1', block_id: 21, maybe_sent: 1 },
        { destination_id: 3, event_key: 'a|1', block_id: 30, maybe_sent: 0 },
      ]);
      // That block is flagged possibly duplicated, whole, as a block acknowledged after a lost answer is; so is the
      // later push of the file rows the other spelling had delivered. A double that never went out twice is not.
      expect(after.prepare('SELECT id, destination_id, possibly_duplicated, resent_rows FROM delivery_blocks ORDER BY id').all()).toEqual([
        { id: 10, destination_id: 1, possibly_duplicated: 0, resent_rows: 0 },
        { id: 11, destination_id: 1, possibly_duplicated: 0, resent_rows: 0 },
        { id: 20, destination_id: 1, possibly_duplicated: 1, resent_rows: 2 },
        { id: 21, destination_id: 1, possibly_duplicated: 0, resent_rows: 0 },
        { id: 30, destination_id: 3, possibly_duplicated: 0, resent_rows: 0 },
        { id: 40, destination_id: 1, possibly_duplicated: 0, resent_rows: 0 },
        { id: 50, destination_id: 1, possibly_duplicated: 1, resent_rows: 10 },
      ]);
      expect(after.prepare('SELECT destination_id, high_ms FROM delivery_marks').all()).toEqual([{ destination_id: 1, high_ms: 9_000 }]);
      expect(after.prepare('SELECT destination_id, pruned_before_ms FROM delivery_horizons').all()).toEqual([
        { destination_id: 1, pruned_before_ms: 86_400_000 },
      ]);
      expect(after.pragma('foreign_key_check')).toEqual([]);
    } finally {
      after.close();
    }
    // The store, asked with today's key (either spelling gives it), finds what each spelling delivered.
    store = openExistingStateStore(dir, new ManualClock(0), { upgrade: false });
    const job1 = { destination: 'job-1', source: 'main' };
    expect(store.seenEvents('main', job1.destination, ['c|1', 'd|1', 'e|1'])).toEqual(new Set(['c|1', 'd|1']));
    expect(store.prunedBefore(job1)).toBe(86_400_000);
    expect(store.connectorsDeliveredTo(job1.destination)).toEqual(['main']);
    expect(
      store.acknowledgedEvents(
        { ...job1 },
        ['a|1', 'b|1', 'c|1', 'e|1'].map((key) => ({ key, recordedMs: 20_000 * 86_400_000 })),
      ),
    ).toEqual(new Set(['a|1', 'b|1', 'c|1', 'e|1']));
    // Where the reports read a double: the job may hold b twice, sent again by the GUID spelling's run.
    expect(store.flaggedEventKeys(job1)).toContain('b|1');
    expect(store.flaggedEventKeys(job1)).not.toContain('e|1');
    expect(store.deliveredOf('r-guid')).toEqual({ blocks: 1, rows: 2, possiblyDuplicated: 1, rowsPossiblyDuplicated: 2 });
    expect([...store.possiblyDuplicatedOf('r-guid')]).toEqual(expect.arrayContaining([{ kind: 'event', key: 'b|1' }]));
    expect(store.deliveredOf('r-domain')).toMatchObject({ possiblyDuplicated: 0 });
    expect([...store.possiblyDuplicatedOf('r-file-guid')]).toEqual([{ kind: 'rows', source: 'file:abc', first: 0, end: 10 }]);
    expect(store.rangesOf({ destination: job1.destination, source: 'file:abc' })).toEqual([
      { first: 0, end: 10, state: 'acked' },
      { first: 0, end: 10, state: 'acked' },
    ]);
  });

  it('v9 keys a destination by the job alone: one job reached under two ingestion hosts becomes one destination, a double flagged', () => {
    const dir = stateAt(8);
    const db = new Database(join(dir, 'bridge.sqlite'));
    const preset = 'https://webhook.ingestion.office.com|job-1';
    const alias = 'https://purview-ingest.hospital.internal|job-1';
    const other = 'https://webhook.ingestion.office.com|job-2';
    const { claim } = seedDestinations(db, [preset, alias, other]);
    const block = db.prepare(
      'INSERT INTO delivery_blocks (id, destination_id, source_id, run_id, state, rows, attempts, created_ms, updated_ms) VALUES (?, ?, 1, ?, ?, ?, 1, 0, 0)',
    );
    // Under the preset host: a and b; under the alias (the same job, a rerun after ingestionBase changed): b again, and c.
    block.run(10, 1, 'r-preset', 'acked', 2);
    block.run(20, 2, 'r-alias', 'acked', 2);
    block.run(30, 3, 'r-other', 'acked', 1);
    claim.run(1, 'a|1', 10);
    claim.run(1, 'b|1', 10);
    claim.run(2, 'b|1', 20);
    claim.run(2, 'c|1', 20);
    claim.run(3, 'a|1', 30);
    db.prepare("INSERT INTO seen_events (connector, event_key, recorded_ms, destination) VALUES ('main', 'c|1', 0, ?)").run(alias);
    // bridge push's memory of a path's content, per destination (push.ts PUSHED_FILES); one under each host.
    const pushed = db.prepare("INSERT INTO source_state (connector, name, value, updated_at) VALUES ('file:push', ?, ?, ?)");
    pushed.run(`${preset}|/data/a.txt`, '{"sha256":"aa","rows":3}', '2026-11-02T00:00:00.000Z');
    pushed.run(`${alias}|/data/a.txt`, '{"sha256":"bb","rows":4}', '2026-11-01T00:00:00.000Z');
    pushed.run(`${other}|/data/b.txt`, '{"sha256":"cc","rows":5}', '2026-11-01T00:00:00.000Z');
    // A drop folder's count of files refused in a row, for its job.
    db.prepare("INSERT INTO source_state (connector, name, value, updated_at) VALUES ('drop', 'flat-file-whole-refusals', ?, 'x')").run(
      JSON.stringify({ destination: preset, count: 1 }),
    );
    db.close();

    expect(upgradeStateStore(dir, { nowMs: 0, isStale: () => false })).toEqual({ from: 8, to: STATE_SCHEMA_VERSION });
    const after = readOnlyState(dir);
    try {
      expect(after.prepare('SELECT id, key FROM destinations ORDER BY id').all()).toEqual([
        { id: 1, key: 'job-1' },
        { id: 3, key: 'job-2' },
      ]);
      expect(after.prepare('SELECT destination_id, event_key, block_id, maybe_sent FROM delivered_events ORDER BY destination_id, event_key').all()).toEqual([
        { destination_id: 1, event_key: 'a|1', block_id: 10, maybe_sent: 0 },
        { destination_id: 1, event_key: 'b|1', block_id: 20, maybe_sent: 1 },
        { destination_id: 1, event_key: 'c|1', block_id: 20, maybe_sent: 0 },
        { destination_id: 3, event_key: 'a|1', block_id: 30, maybe_sent: 0 },
      ]);
      expect(after.prepare('SELECT id, destination_id, possibly_duplicated FROM delivery_blocks ORDER BY id').all()).toEqual([
        { id: 10, destination_id: 1, possibly_duplicated: 0 },
        { id: 20, destination_id: 1, possibly_duplicated: 1 },
        { id: 30, destination_id: 3, possibly_duplicated: 0 },
      ]);
      expect(after.prepare("SELECT destination FROM seen_events WHERE event_key = 'c|1'").all()).toEqual([{ destination: 'job-1' }]);
      // One memory per path and job: the newest of two spellings is kept.
      expect(after.prepare("SELECT name, value FROM source_state WHERE connector = 'file:push' ORDER BY name").all()).toEqual([
        { name: 'job-1|/data/a.txt', value: '{"sha256":"aa","rows":3}' },
        { name: 'job-2|/data/b.txt', value: '{"sha256":"cc","rows":5}' },
      ]);
      expect(after.prepare("SELECT value FROM source_state WHERE name = 'flat-file-whole-refusals'").get()).toEqual({
        value: '{"destination":"job-1","count":1}',
      });
      expect(after.pragma('foreign_key_check')).toEqual([]);
    } finally {
      after.close();
    }
  });

  it('an upgrade is refused while a run holds a lease (a bridge is at work on it); a lease that expired is no hold', () => {
    const dir = stateAt(6);
    const db = new Database(join(dir, 'bridge.sqlite'));
    const owner = { id: 'h1', host: 'ehr-bridge-1', pid: 4242, command: 'bridge serve (schedule)', since: '2026-11-23T00:00:00.000Z' };
    db.prepare('INSERT INTO leases (name, owner_id, owner, expires_ms) VALUES (?, ?, ?, ?)').run('connector:main', 'h1', JSON.stringify(owner), 120_000);
    db.close();
    const error = errorOf(() => upgradeStateStore(dir, { nowMs: 60_000, isStale: () => false }));
    expect(error.code).toBe('BRG_ERR_RUN_IN_PROGRESS');
    // A sync, serve or push of the new version, which upgrade on their own, are refused the same way, unless the
    // holder died (as leases judge it: the commands pass that judgement).
    expect(errorOf(() => openStateStore(dir, new ManualClock(60_000))).code).toBe('BRG_ERR_RUN_IN_PROGRESS');
    expect(versionOf(dir)).toBe(6);
    expect(error.message).toContain('A run holds the state: connector:main by bridge serve (schedule) (host ehr-bridge-1, pid 4242');
    expect(versionOf(dir)).toBe(6);
    // An owner not written by a bridge still holds it, unnamed; a holder that died (as leases judge it) holds nothing.
    const odd = new Database(join(dir, 'bridge.sqlite'));
    odd.prepare('INSERT INTO leases (name, owner_id, owner, expires_ms) VALUES (?, ?, ?, ?)').run('connector:other', 'h2', 'not json', 120_000);
    odd.close();
    const unnamed = errorOf(() => upgradeStateStore(dir, { nowMs: 60_000, isStale: (holder) => holder.pid === 4242 }));
    expect(unnamed.code).toBe('BRG_ERR_RUN_IN_PROGRESS');
    expect(unnamed.message).toContain('connector:other by a bridge (host ?, pid ?');
    store = openStateStore(dir, new ManualClock(60_000), { upgrade: true, isStale: () => true });
    expect(versionOf(dir)).toBe(STATE_SCHEMA_VERSION);
  });

  it('a newer schema is refused by every open, the upgrade included, and left as it is', () => {
    const dir = stateAt(STATE_SCHEMA_VERSION);
    const db = new Database(join(dir, 'bridge.sqlite'));
    db.pragma(`user_version = ${STATE_SCHEMA_VERSION + 1}`);
    db.close();
    for (const open of [() => openStateStore(dir, new ManualClock(0)), () => upgradeStateStore(dir, { nowMs: 0, isStale: () => false })]) {
      const error = errorOf(open);
      expect(error.code).toBe('BRG_ERR_STATE_SCHEMA');
      expect(error.message).toContain(`newer than this bridge (v${STATE_SCHEMA_VERSION})`);
    }
    expect(versionOf(dir)).toBe(STATE_SCHEMA_VERSION + 1);
  });
});

describe('migration from v1', () => {
  it('converts seen keys to instants and drops the spool-hash block ledger', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-state-v1-'));
    const db = new Database(join(dir, 'bridge.sqlite'));
    db.exec(MIGRATIONS[0] as string);
    db.pragma('user_version = 1');
    db.prepare('INSERT INTO seen_events VALUES (?, ?, ?)').run('main', 'e1|1', '2026-11-28T02:13:15.250-07:00');
    db.prepare('INSERT INTO pending_seen VALUES (?, ?, ?)').run('r9', 'e2|1', '2026-11-28T09:13:15Z');
    db.close();
    store = openStateStore(dir, new ManualClock(0));
    const raw = new Database(join(dir, 'bridge.sqlite'), { readonly: true });
    expect(raw.prepare('SELECT recorded_ms FROM seen_events').get()).toEqual({ recorded_ms: Date.parse('2026-11-28T09:13:15.250Z') });
    expect(raw.prepare('SELECT recorded_ms FROM pending_seen').get()).toEqual({ recorded_ms: Date.parse('2026-11-28T09:13:15Z') });
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'blocks'").get()).toBeUndefined();
    // v6: a key from before carries no destination and counts for any: the v1 block ledger is gone, so it is all that
    // keeps the first run after the upgrade from sending its overlap again.
    expect(raw.prepare('SELECT destination FROM seen_events').get()).toEqual({ destination: null });
    raw.close();
    expect(store.seenEvents('main', JOB_B, ['e1|1'])).toEqual(new Set(['e1|1']));
  });

  it('is refused while a sync 0.1.0 left pushing waits (its acknowledged blocks cannot be carried over), naming the run and what to do', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-state-v1-'));
    const db = new Database(join(dir, 'bridge.sqlite'));
    db.exec(MIGRATIONS[0] as string);
    db.pragma('user_version = 1');
    const insertRun = db.prepare(
      "INSERT INTO runs (id, connector, state, trigger, since, until, started_at, counts, spool_path) VALUES (?, 'main', ?, 'schedule', ?, ?, ?, '{}', ?)",
    );
    insertRun.run('done-run', 'completed', '2026-11-01T07:45:00.000Z', '2026-11-01T09:00:00.000Z', '2026-11-01T09:00:01.000Z', null);
    insertRun.run(
      'old-push',
      'pushing',
      '2026-11-01T08:45:00.000Z',
      '2026-11-01T11:00:00.000Z',
      '2026-11-01T11:00:01.000Z',
      join(dir, 'spool', 'old-push.txt'),
    );
    // A run that died pulling: 0.1.0 sends nothing before a run is 'pushing', so it holds nothing back.
    insertRun.run('dead-pull', 'running', '2026-11-01T08:45:00.000Z', '2026-11-01T12:00:00.000Z', '2026-11-01T12:00:01.000Z', null);
    // 0.1.0 acknowledged both blocks of the unfinished push: Purview holds their rows, and this version cannot tell which.
    for (const idx of [0, 1]) db.prepare("INSERT INTO blocks VALUES ('spool-sha', ?, 'acked', 2, 1, 0, '2026-11-01T11:00:02Z')").run(idx);
    db.close();

    for (const open of [() => openStateStore(dir, new ManualClock(0)), () => upgradeStateStore(dir, { nowMs: 0, isStale: () => false })]) {
      const error = errorOf(open);
      expect(error.code).toBe('BRG_ERR_STATE_SCHEMA');
      expect(error.message).toContain(
        'a push it left unfinished waits: run old-push of connector "main" (window 2026-11-01T08:45:00.000Z to 2026-11-01T11:00:00.000Z, started 2026-11-01T11:00:01.000Z)',
      );
      expect(error.message).not.toContain('dead-pull');
      expect(error.message).toContain("run 0.1.0's `bridge sync --connector main` once");
      expect(error.message).toContain(`sqlite3 ${join(dir, 'bridge.sqlite')} "UPDATE runs SET state = 'failed' WHERE state = 'pushing'"`);
      expect(error.details).toEqual({ run: 'old-push', connector: 'main', unfinished: 1 });
    }
    // Left as it was: 0.1.0 can still finish the push from its own block checkpoints.
    const raw = readOnlyState(dir);
    expect(raw.pragma('user_version', { simple: true })).toBe(1);
    expect(raw.prepare("SELECT count(*) AS n FROM blocks WHERE state = 'acked'").get()).toEqual({ n: 2 });
    raw.close();

    // 0.1.0 finished it: the upgrade goes ahead (the run that died pulling is closed by the next run, as before).
    const finished = new Database(join(dir, 'bridge.sqlite'));
    finished.prepare("UPDATE runs SET state = 'completed' WHERE id = 'old-push'").run();
    finished.close();
    expect(upgradeStateStore(dir, { nowMs: 0, isStale: () => false })).toEqual({ from: 1, to: STATE_SCHEMA_VERSION });
    store = openStateStore(dir, new ManualClock(0));
    expect(store.findUnfinishedRuns('main').map((r) => [r.id, r.state])).toEqual([['dead-pull', 'running']]);
  });
});

describe('delivery ledger', () => {
  const target = { destination: 'https://ingest|t|job', source: 'conn', runId: 'r1' };

  it('claims whole events for a block while they fit, at least one, and reports every decision', () => {
    const { store: s } = fresh();
    const decisions: string[] = [];
    const events = eventCursor([
      { key: 'a', rows: 2 },
      { key: 'b', rows: 3 },
      { key: 'a', rows: 2 },
      { key: 'c', rows: 4 },
    ]);
    const block = s.openEventBlock(target, events, 5, (e, d) => decisions.push(`${e.key}:${d}`));
    expect(block).toMatchObject({ rows: 5, resentRows: 0 });
    expect(decisions).toEqual(['a:send', 'b:send']);
    s.markAttempt(block?.id ?? -1);
    s.markAcked(block?.id ?? -1, 0);
    const next = s.openEventBlock(target, events, 5, (e, d) => decisions.push(`${e.key}:${d}`));
    // 'a' again further on in the spool: already acknowledged, so not sent twice.
    expect(next).toMatchObject({ rows: 4 });
    expect(decisions.slice(2)).toEqual(['a:delivered', 'c:send']);
    const big = s.openEventBlock(target, eventCursor([{ key: 'huge', rows: 50 }]), 5, () => undefined);
    expect(big?.rows).toBe(50);
  });

  it('an acknowledged event is delivered; one sent without an answer is re-sent; the same event twice in a block once', () => {
    const { store: s } = fresh();
    const first = s.openEventBlock(
      target,
      eventCursor([
        { key: 'x', rows: 1 },
        { key: 'y', rows: 1 },
      ]),
      10,
      () => undefined,
    );
    s.markAttempt(first?.id ?? -1);
    s.markAcked(first?.id ?? -1, 0);
    const second = s.openEventBlock(target, eventCursor([{ key: 'z', rows: 2 }]), 10, () => undefined);
    s.markAttempt(second?.id ?? -1); // sent, then the process died
    const decisions: string[] = [];
    const third = s.openEventBlock(
      target,
      eventCursor([
        { key: 'x', rows: 1 },
        { key: 'z', rows: 2 },
        { key: 'w', rows: 1 },
        { key: 'w', rows: 1 },
      ]),
      10,
      (e, d) => decisions.push(`${e.key}:${d}`),
    );
    expect(decisions).toEqual(['x:delivered', 'z:resend', 'w:send', 'w:duplicate']);
    expect(third).toMatchObject({ rows: 3, resentRows: 2 });
    expect(s.openEventBlock(target, eventCursor([{ key: 'x', rows: 1 }]), 10, () => undefined)).toBeUndefined();
  });

  it('a block Purview definitely refused is as never sent: its events go out again unflagged, unless an earlier block carrying them may have been stored', () => {
    const { dir, store: s } = fresh();
    // y was first in a block sent without an answer (maybe stored), then moved to the block that was refused.
    const lost = s.openEventBlock(target, eventCursor([{ key: 'y', rows: 1 }]), 10, () => undefined);
    s.markAttempt(lost?.id ?? -1);
    const refused = s.openEventBlock(
      target,
      eventCursor([
        { key: 'x', rows: 2 },
        { key: 'y', rows: 1 },
      ]),
      10,
      () => undefined,
    );
    expect(refused).toMatchObject({ rows: 3, resentRows: 1 });
    s.markAttempt(refused?.id ?? -1);
    s.markRefused(refused?.id ?? -1);
    // Another process (a taker, or the run after the fix) claims them again.
    const decisions: string[] = [];
    const again = s.openEventBlock(
      { ...target, runId: 'r2' },
      eventCursor([
        { key: 'x', rows: 2 },
        { key: 'y', rows: 1 },
      ]),
      10,
      (e, d) => decisions.push(`${e.key}:${d}`),
    );
    expect(decisions).toEqual(['x:send', 'y:resend']);
    expect(again).toMatchObject({ rows: 3, resentRows: 1 });
    // A refusal is recorded only for a block still being sent: an acknowledged one stays acknowledged.
    s.markAcked(again?.id ?? -1, again?.resentRows ?? 0);
    s.markRefused(again?.id ?? -1);
    const db = readOnlyState(dir);
    expect(db.prepare('SELECT state, refused FROM delivery_blocks WHERE id = ?').get(again?.id)).toEqual({ state: 'acked', refused: 0 });
    expect(db.prepare('SELECT refused FROM delivery_blocks WHERE id = ?').get(refused?.id)).toEqual({ refused: 1 });
    db.close();
  });

  it('gives up the events of the newest block refused with 400 (under the lease): never sent again to that job, by any run', () => {
    const { store: s } = fresh();
    const LEASE = 'connector:conn';
    expect(s.acquireLease(LEASE, holderOf('bridge state give-up')('op'), 60_000, () => false)).toMatchObject({ acquired: true });
    const lease = { name: LEASE, holderId: 'op' };
    const decide = (t: typeof target, keys: string[]) => {
      const decisions: string[] = [];
      const block = s.openEventBlock(t, eventCursor(keys.map((key) => ({ key, rows: key === 'b' ? 2 : 1 }))), 10, (e, d) => decisions.push(`${e.key}:${d}`));
      return { block, decisions };
    };
    // A block whose connection failed before the body went out is refused too, but Purview never judged it.
    const unsent = decide(target, ['a', 'b']).block;
    s.markAttempt(unsent?.id ?? -1);
    s.markRefused(unsent?.id ?? -1);
    expect(s.refusedBlock(target)).toBeUndefined();
    expect(s.giveUpRefused(target, lease, 'INC-1', unsent?.id ?? -1)).toBe(false);
    // Sent again, now refused with 400; then a smaller block carries a alone and is refused again: the newest.
    const first = decide(target, ['a', 'b', 'c']).block;
    s.markAttempt(first?.id ?? -1);
    s.markRefused(first?.id ?? -1, 400);
    expect(s.refusedBlock(target)).toMatchObject({ blockId: first?.id, events: 3, rows: 4, status: 400, runId: 'r1' });
    const narrowed = decide({ ...target, runId: 'r2' }, ['a']).block;
    s.markAttempt(narrowed?.id ?? -1);
    s.markRefused(narrowed?.id ?? -1, 400);
    expect(s.refusedBlock(target)).toMatchObject({ blockId: narrowed?.id, events: 1, runId: 'r2' });
    // Refused while another holds the connector's lease: a run may be claiming these events right now.
    expect(() => s.giveUpRefused(target, { name: LEASE, holderId: 'someone-else' }, 'INC-1', narrowed?.id ?? -1)).toThrow(/BRG_ERR_RUN_IN_PROGRESS|lease/);
    // Only the block shown, while it is still the newest refusal: the older one (a is on a newer block now) is not.
    expect(s.giveUpRefused(target, lease, 'INC-1', first?.id ?? -1)).toBe(false);
    expect(s.refusedBlock(target)?.givenUpMs).toBeUndefined();
    expect(s.giveUpRefused(target, lease, 'INC-1', narrowed?.id ?? -1)).toBe(true);
    expect(s.refusedBlock(target)).toMatchObject({ blockId: narrowed?.id, events: 1, note: 'INC-1', givenUpMs: expect.any(Number) });
    expect(s.giveUpRefused(target, lease, 'again', narrowed?.id ?? -1)).toBe(false);
    // Every later claim of a is given up; b and c (still on the first refused block) are sent plainly.
    expect(decide({ ...target, runId: 'r3' }, ['a', 'b', 'c']).decisions).toEqual(['a:given-up', 'b:send', 'c:send']);
    expect(decide({ ...target, runId: 'r4' }, ['a']).block).toBeUndefined();
    // b and c now sit on a block of r3 never refused: the given-up one is the newest with events.
    expect(s.refusedBlock(target)).toMatchObject({ blockId: narrowed?.id, givenUpMs: expect.any(Number), note: 'INC-1' });
    // Another job, or another version of the event, is sent.
    expect(decide({ ...target, destination: 'https://ingest|t|other' }, ['a']).decisions).toEqual(['a:send']);
    expect(decide({ ...target, runId: 'r5' }, ['a|2']).decisions).toEqual(['a|2:send']);
    expect(s.acknowledgedEvents(target, [{ key: 'a', recordedMs: undefined }])).toEqual(new Set());
  });

  it('offers only a block whose last answer was 400 (flagged or not), and an operator look creates nothing', () => {
    const { dir, store: s } = fresh();
    const other = { ...target, source: 'other' };
    const refusedWith = (status: number, how: 'refused' | 'answered') => {
      const block = s.openEventBlock(other, eventCursor([{ key: `k${status}${how}`, rows: 1 }]), 10, () => undefined);
      s.markAttempt(block?.id ?? -1);
      if (how === 'refused') s.markRefused(block?.id ?? -1, status);
      else s.markAnswered(block?.id ?? -1, status);
      return block?.id;
    };
    refusedWith(413, 'refused');
    refusedWith(429, 'refused');
    refusedWith(403, 'answered');
    expect(s.refusedBlock(other)).toBeUndefined();
    // A 400 after an attempt of unknown outcome: still the block to give up (its rows stay flagged when sent again).
    const flagged = refusedWith(400, 'answered');
    expect(s.refusedBlock(other)).toMatchObject({ blockId: flagged, status: 400, events: 1 });
    const db = readOnlyState(dir);
    const count = () => db.prepare('SELECT (SELECT count(*) FROM destinations) + (SELECT count(*) FROM sources) AS n').get();
    const before = count();
    expect(s.refusedBlock({ destination: 'https://ingest|t|never', source: 'nobody' })).toBeUndefined();
    expect(count()).toEqual(before);
    db.close();
  });

  it('keys by destination: the same event is new to another job', () => {
    const { store: s } = fresh();
    const b = s.openEventBlock(target, eventCursor([{ key: 'x', rows: 1 }]), 10, () => undefined);
    s.markAcked(b?.id ?? -1, 0);
    expect(s.acknowledgedEvents(target, [{ key: 'x', recordedMs: undefined }])).toEqual(new Set(['x']));
    expect(s.acknowledgedEvents({ ...target, destination: 'https://ingest|t|other' }, [{ key: 'x', recordedMs: undefined }])).toEqual(new Set());
    expect(s.acknowledgedEvents({ ...target, source: 'other-connector' }, [{ key: 'x', recordedMs: undefined }])).toEqual(new Set());
  });

  it('keeps a high mark of claimed instants and prunes by day once the push is as old as the horizon', async () => {
    const clock = new ManualClock('2026-11-20T12:00:00Z');
    store = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-state-')), clock);
    const s = store;
    const t = Date.parse('2026-11-20T10:00:00Z');
    const b = s.openEventBlock(target, eventCursor([{ key: 'old', recordedMs: t, rows: 1 }]), 10, () => undefined);
    s.markAcked(b?.id ?? -1, 0);
    await clock.advance(3 * 86_400_000);
    const c = s.openEventBlock(target, eventCursor([{ key: 'new', recordedMs: t + 3 * 86_400_000, rows: 1 }]), 10, () => undefined);
    s.markAcked(c?.id ?? -1, 0);
    expect(s.highMark(target)).toBe(t + 3 * 86_400_000);
    // A horizon of the 21st forgets the event recorded and pushed on the 20th, not the one of the 23rd.
    s.pruneDeliveries(target, t + 86_400_000);
    expect(
      s.acknowledgedEvents(target, [
        { key: 'old', recordedMs: t },
        { key: 'new', recordedMs: t + 3 * 86_400_000 },
      ]),
    ).toEqual(new Set(['new']));
  });

  it('does not forget an event recorded long ago but pushed recently (a backlog found by _lastUpdated)', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    store = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-state-')), clock);
    const s = store;
    const recorded = Date.parse('2026-09-01T10:00:00Z');
    const b = s.openEventBlock(target, eventCursor([{ key: 'backlog', recordedMs: recorded, rows: 1 }]), 10, () => undefined);
    s.markAttempt(b?.id ?? -1);
    s.markAcked(b?.id ?? -1, 0);
    s.pruneDeliveries(target, Date.parse('2026-11-23T00:00:00Z') - 31 * 86_400_000);
    expect(s.acknowledgedEvents(target, [{ key: 'backlog', recordedMs: recorded }])).toEqual(new Set(['backlog']));
    // 32 days later the push itself is past the horizon: forgotten like any other.
    await clock.advance(32 * 86_400_000);
    s.pruneDeliveries(target, clock.now() - 31 * 86_400_000);
    expect(s.acknowledgedEvents(target, [{ key: 'backlog', recordedMs: recorded }])).toEqual(new Set());
  });

  it('never gives a new block the id of a pruned one: a claim that outlived its block reads no stranger', async () => {
    const clock = new ManualClock('2026-11-20T12:00:00Z');
    store = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-state-')), clock);
    const s = store;
    const day = 86_400_000;
    // Three blocks; the first went out without an answer. Their events are recorded on a day the prune below keeps.
    const recordedMs = clock.now() + 3 * day;
    const ids = ['c', 'a', 'b'].map((key) => s.openEventBlock(target, eventCursor([{ key, recordedMs, rows: 1 }]), 10, () => undefined)?.id ?? -1);
    for (const id of ids) s.markAttempt(id);
    s.markAcked(ids[1] ?? -1, 0);
    s.markAcked(ids[2] ?? -1, 0);
    await clock.advance(2 * day);
    // The blocks are older than the horizon; the claims of their events' day outlive them.
    s.pruneDeliveries(target, clock.now());
    const next = s.openEventBlock(target, eventCursor([{ key: 'd', recordedMs, rows: 1 }]), 10, () => undefined);
    expect(next?.id).toBeGreaterThan(Math.max(...ids));
    s.markAttempt(next?.id ?? -1);
    s.markAcked(next?.id ?? -1, 0);
    // c went out without an answer in a block now gone: it is sent again flagged, never read as the new block's "delivered".
    const decisions: string[] = [];
    s.openEventBlock(target, eventCursor([{ key: 'c', recordedMs, rows: 1 }]), 10, (e, d) => decisions.push(`${e.key}:${d}`));
    expect(decisions).toEqual(['c:resend']);
  });

  it('remembers how far back a prune forgot, raised only: a second process with a longer retention sees it', async () => {
    const clock = new ManualClock('2026-11-20T12:00:00Z');
    const dir = mkdtempSync(join(tmpdir(), 'bridge-state-'));
    store = openStateStore(dir, clock);
    const s = store;
    const b = s.openEventBlock(target, eventCursor([{ key: 'old', recordedMs: Date.parse('2026-11-20T10:00:00Z'), rows: 1 }]), 10, () => undefined);
    s.markAcked(b?.id ?? -1, 0);
    s.pruneDeliveries(target, Date.parse('2026-11-01T00:00:00Z')); // 31 days: nothing that old, nothing forgotten
    expect(s.prunedBefore(target)).toBeUndefined();
    await clock.advance(10 * 86_400_000);
    const horizon = clock.now() - 86_400_000;
    s.pruneDeliveries(target, horizon); // 1 day: 'old' is forgotten
    s.pruneDeliveries(target, clock.now() - 31 * 86_400_000); // 31 days again: forgets nothing, brings nothing back
    const other = openStateStore(dir, clock);
    try {
      expect(other.prunedBefore(target)).toBe(horizon);
      expect(other.prunedBefore({ ...target, source: 'other' })).toBeUndefined();
    } finally {
      other.close();
    }
  });

  it('a claim once in a block that may have reached Purview stays "resend" through blocks that never got sent', () => {
    const { store: s } = fresh();
    const first = s.openEventBlock(target, eventCursor([{ key: 'e', rows: 1 }]), 10, () => undefined);
    s.markAttempt(first?.id ?? -1); // sent; the answer was lost
    const decisions: string[] = [];
    const second = s.openEventBlock(target, eventCursor([{ key: 'e', rows: 1 }]), 10, (e, d) => decisions.push(`${e.key}:${d}`));
    expect(second).toMatchObject({ resentRows: 1 });
    // The second block dies before its first attempt (the Entra token never came, kill -9, ...).
    const third = s.openEventBlock(target, eventCursor([{ key: 'e', rows: 1 }]), 10, (e, d) => decisions.push(`${e.key}:${d}`));
    expect(decisions).toEqual(['e:resend', 'e:resend']);
    s.markAttempt(third?.id ?? -1);
    s.markAcked(third?.id ?? -1, third?.resentRows ?? 0);
    expect(s.flaggedEventKeys(target)).toEqual(new Set(['e']));
  });
});

/** A lease holder of host h1 (a process of `command`). */
const holderOf = (command: string) => (id: string) => ({ id, host: 'h1', pid: 1, command, since: '2026-11-23T00:00:00.000Z' });

/** A claim cursor over one event of one row. */
const one = (key: string, recordedMs: number) => {
  let taken = false;
  return {
    peek: () => (taken ? undefined : { key, recordedMs, rows: 1 }),
    take: () => {
      taken = true;
    },
  };
};

describe('the delivery ledger under leases, two processes on one state', () => {
  const LEASE = 'connector:conn';
  const holder = holderOf('bridge sync');
  const opened: StateStore[] = [];
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  /** Two connections to one state directory: two processes, on this machine or another sharing the state. */
  function twoProcesses(clock: ManualClock): { a: StateStore; b: StateStore } {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-ledger-lease-'));
    const a = openStateStore(dir, clock);
    const b = openStateStore(dir, clock);
    opened.push(a, b);
    return { a, b };
  }

  it('refuses to claim or send for a run that lost its lease; the new holder sends its claims plainly, once', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { a, b } = twoProcesses(clock);
    const target = (run: string, holderId: string) => ({ destination: 'https://ingest|t|job', source: 'conn', runId: run, lease: { name: LEASE, holderId } });
    expect(a.acquireLease(LEASE, holder('A'), 60_000, () => false)).toMatchObject({ acquired: true });
    const claimedByA = a.openEventBlock(target('runA', 'A'), one('e|1', clock.now()), 10, () => undefined);
    // A pauses (waiting for its token) past its lease; B takes the lease over and pulls the same window.
    await clock.advance(61_000);
    expect(b.acquireLease(LEASE, holder('B'), 60_000, () => false)).toMatchObject({ acquired: true, tookOverFrom: holder('A') });
    expect(() => a.markAttempt(claimedByA?.id ?? -1)).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS', message: expect.stringContaining('lost its lease') }),
    );
    expect(() => a.openEventBlock(target('runA', 'A'), one('f|1', clock.now()), 10, () => undefined)).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS' }),
    );
    expect(() => a.openRangeBlock({ ...target('runA', 'A'), source: 'file:x' }, [{ first: 0, end: 1 }], 0)).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS' }),
    );
    // A's block can never go out now, so B's claim of e is a plain send.
    const decisions: string[] = [];
    const claimedByB = b.openEventBlock(target('runB', 'B'), one('e|1', clock.now()), 10, (e, d) => decisions.push(`${e.key}:${d}`));
    expect(decisions).toEqual(['e|1:send']);
    b.markAttempt(claimedByB?.id ?? -1);
    b.markAcked(claimedByB?.id ?? -1, 0);
    expect(b.flaggedEventKeys(target('runB', 'B'))).toEqual(new Set());
  });

  it('sends flagged an event never claimed but recorded on a day a prune forgot; a takeover keeps the flag', async () => {
    const clock = new ManualClock('2026-11-20T12:00:00Z');
    const { a, b } = twoProcesses(clock);
    const day = 86_400_000;
    const target = (run: string, holderId: string) => ({ destination: 'https://ingest|t|job', source: 'conn', runId: run, lease: { name: LEASE, holderId } });
    const decide = (store: StateStore, t: ReturnType<typeof target>, events: Array<{ key: string; recordedMs?: number }>) => {
      const decisions: string[] = [];
      const cursor = events.map((e) => ({ recordedMs: undefined, ...e, rows: 2 }));
      let at = 0;
      const block = store.openEventBlock(t, { peek: () => cursor[at], take: () => (at += 1) }, 100, (e, d) => decisions.push(`${e.key}:${d}`));
      return { block, decisions };
    };
    const recorded = Date.parse('2026-11-20T10:00:00Z');
    expect(a.acquireLease(LEASE, holder('A'), 60_000, () => false)).toMatchObject({ acquired: true });
    const sent = decide(a, target('r1', 'A'), [{ key: 'old|1', recordedMs: recorded }]).block;
    a.markAttempt(sent?.id ?? -1);
    a.markAcked(sent?.id ?? -1, 0);
    a.releaseLease(LEASE, 'A');
    // 40 days on, a run with a 31-day retention forgets it.
    await clock.advance(40 * day);
    const horizon = clock.now() - 31 * day;
    a.pruneDeliveries({ destination: 'https://ingest|t|job', source: 'conn' }, horizon);
    // The same event again (a Bulk export re-stamped it), one of the last day forgotten, one of the horizon's own day (its
    // claims were kept), a recent one and one without a time: only the first two may be in Purview already.
    const events = [
      { key: 'old|1', recordedMs: recorded },
      { key: 'late|1', recordedMs: Math.floor(horizon / day) * day - 1 },
      { key: 'edge|1', recordedMs: Math.floor(horizon / day) * day },
      { key: 'new|1', recordedMs: clock.now() - day },
      { key: 'timeless|1' },
    ];
    expect(a.acquireLease(LEASE, holder('A'), 60_000, () => false)).toMatchObject({ acquired: true });
    const first = decide(a, target('r2', 'A'), events);
    expect(first.decisions).toEqual(['old|1:resend', 'late|1:resend', 'edge|1:send', 'new|1:send', 'timeless|1:send']);
    expect(first.block).toMatchObject({ rows: 10, resentRows: 4 });
    // A dies (kill -9) before the block goes out; B takes the lease over: A's block can never go out, so the three are
    // plain sends, and the two stay flagged.
    await clock.advance(61_000);
    expect(b.acquireLease(LEASE, holder('B'), 60_000, () => false)).toMatchObject({ acquired: true, tookOverFrom: holder('A') });
    const second = decide(b, target('r3', 'B'), events);
    expect(second.decisions).toEqual(['old|1:resend', 'late|1:resend', 'edge|1:send', 'new|1:send', 'timeless|1:send']);
    b.markAttempt(second.block?.id ?? -1);
    b.markAcked(second.block?.id ?? -1, second.block?.resentRows ?? 0);
    // The block is flagged (an operator's list names its events); its possibly duplicated rows are the two events'.
    expect(b.deliveredOf('r3')).toEqual({ blocks: 1, rows: 10, possiblyDuplicated: 1, rowsPossiblyDuplicated: 4 });
    expect(b.flaggedEventKeys(target('r3', 'B'))).toContain('old|1');
    expect(decide(b, target('r4', 'B'), events).block).toBeUndefined();
  });

  it('refuses a write once the lease expired, even if nobody took it yet (by the store clock)', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { a } = twoProcesses(clock);
    a.acquireLease(LEASE, holder('A'), 60_000, () => false);
    const block = a.openEventBlock({ destination: 'd', source: 'conn', lease: { name: LEASE, holderId: 'A' } }, one('e|1', clock.now()), 10, () => undefined);
    await clock.advance(60_000);
    expect(() => a.markAttempt(block?.id ?? -1)).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS', message: expect.stringContaining('expired') }),
    );
  });

  it('a claim taken over from a block that could still be sent (opened without the lease) is flagged, never a silent double', () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { a, b } = twoProcesses(clock);
    const target = (run: string) => ({ destination: 'https://ingest|t|job', source: 'conn', runId: run });
    const claimedByA = a.openEventBlock(target('runA'), one('e|1', clock.now()), 10, () => undefined);
    const decisions: string[] = [];
    const claimedByB = b.openEventBlock(target('runB'), one('e|1', clock.now()), 10, (e, d) => decisions.push(`${e.key}:${d}`));
    expect(decisions).toEqual(['e|1:resend']);
    expect(claimedByB).toMatchObject({ resentRows: 1 });
    // Both go out: Purview holds e twice, and the ledger says so.
    for (const [writer, block] of [
      [a, claimedByA],
      [b, claimedByB],
    ] as const) {
      writer.markAttempt(block?.id ?? -1);
      writer.markAcked(block?.id ?? -1, block?.resentRows ?? 0);
    }
    expect(b.flaggedEventKeys(target('x'))).toEqual(new Set(['e|1']));
  });
});

describe('leases', () => {
  const holder = (id: string, pid = 1) => ({ id, host: 'h1', pid, command: 'bridge sync', since: '2026-11-23T00:00:00.000Z' });

  it('one holder at a time; expiry or staleness lets another take over; only the holder renews or releases', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const dir = mkdtempSync(join(tmpdir(), 'bridge-lease-'));
    const a = openStateStore(dir, clock);
    const b = openStateStore(dir, clock); // a second process on the same state
    try {
      expect(a.acquireLease('connector:main', holder('A'), 60_000, () => false)).toEqual({ acquired: true });
      const lost = b.acquireLease('connector:main', holder('B', 2), 60_000, () => false);
      expect(lost).toEqual({ acquired: false, holder: holder('A'), expiresMs: clock.now() + 60_000 });
      expect(b.renewLease('connector:main', 'B', 60_000)).toBe(false);
      expect(a.renewLease('connector:main', 'A', 60_000)).toBe(true);
      // The holder is a dead process of this host: taken over at once.
      expect(b.acquireLease('connector:main', holder('B', 2), 60_000, (h) => h.id === 'A')).toMatchObject({ acquired: true, tookOverFrom: holder('A') });
      expect(a.renewLease('connector:main', 'A', 60_000)).toBe(false);
      // Expired: anyone takes it.
      await clock.advance(61_000);
      expect(a.acquireLease('connector:main', holder('A2'), 60_000, () => false)).toMatchObject({ acquired: true });
      b.releaseLease('connector:main', 'B'); // not B's any more: nothing happens
      expect(a.readLease('connector:main')?.holder.id).toBe('A2');
      a.releaseLease('connector:main', 'A2');
      expect(a.readLease('connector:main')).toBeUndefined();
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses a lease, and a block under one, once a newer bridge upgraded the schema under this open store (a service between runs)', () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const dir = mkdtempSync(join(tmpdir(), 'bridge-lease-schema-'));
    const service = openStateStore(dir, clock); // opened at start, idle between runs: it holds no lease
    const newer = new Database(join(dir, 'bridge.sqlite')); // a newer bridge's upgrade, refused only by held leases
    try {
      expect(service.acquireLease('connector:main', holder('A'), 60_000, () => false)).toEqual({ acquired: true });
      const target = { destination: 'https://ingest|job', source: 'main', runId: 'r1', lease: { name: 'connector:main', holderId: 'A' } };
      newer.pragma(`user_version = ${STATE_SCHEMA_VERSION + 1}`);
      // A run in flight whose lease lapsed while it was paused (so nothing refused the upgrade) claims and sends nothing more.
      expect(() => service.openEventBlock(target, one('e|1', clock.now()), 10, () => undefined)).toThrow(
        expect.objectContaining({ code: 'BRG_ERR_STATE_SCHEMA' }),
      );
      service.releaseLease('connector:main', 'A');
      const error = errorOf(() => service.acquireLease('connector:main', holder('B'), 60_000, () => false));
      expect(error.code).toBe('BRG_ERR_STATE_SCHEMA');
      expect(error.message).toContain(`schema v${STATE_SCHEMA_VERSION + 1} is newer than this bridge (v${STATE_SCHEMA_VERSION})`);
      expect(error.message).toContain('a newer bridge upgraded the state while this one ran');
      expect(error.message).toContain('stop it and run the newer version');
      expect(service.readLease('connector:main')).toBeUndefined();
      // The same version (an upgrade this bridge made, or none): taken as before.
      newer.pragma(`user_version = ${STATE_SCHEMA_VERSION}`);
      expect(service.acquireLease('connector:main', holder('B'), 60_000, () => false)).toEqual({ acquired: true });
    } finally {
      newer.close();
      service.close();
    }
  });
});

describe('source state', () => {
  it('keeps a value per connector and name across reopen, and deletes it', () => {
    const { dir, store: s } = fresh();
    s.setSourceState('main', 'bulk-export', '{"status":"https://x/status/1"}');
    s.setSourceState('other', 'bulk-export', '{"status":"https://x/status/2"}');
    s.close();
    store = openStateStore(dir, new ManualClock(0));
    expect(store.getSourceState('main', 'bulk-export')).toBe('{"status":"https://x/status/1"}');
    store.setSourceState('main', 'bulk-export', undefined);
    expect(store.getSourceState('main', 'bulk-export')).toBeUndefined();
    expect(store.getSourceState('other', 'bulk-export')).toBe('{"status":"https://x/status/2"}');
  });
});

describe('moving a renamed connector’s state (bridge state rename / retire)', () => {
  const JOB = 'https://ingest|t|job';
  const holder = holderOf('bridge state');
  /** Connector "old": a completed run with a watermark, seen events, a source checkpoint and one acknowledged block. */
  function withHistory(s: StateStore, clock: ManualClock): void {
    expect(s.acquireLease('connector:old', holder('run'), 60_000, () => false)).toMatchObject({ acquired: true });
    s.createRun(run('r1', { connector: 'old' }));
    s.beginPush('r1', {}, [{ key: 'e|1', windowMs: clock.now() - 1000 }]);
    const block = s.openEventBlock(
      { destination: JOB, source: 'old', runId: 'r1', lease: { name: 'connector:old', holderId: 'run' } },
      one('e|1', clock.now()),
      10,
      () => undefined,
    );
    s.markAttempt(block?.id ?? -1);
    s.markAcked(block?.id ?? -1, 0);
    s.completeRun('r1', { counts: { ...ZERO_COUNTS, rows: 1 }, watermark: '2026-11-23T00:00:00.000Z', destination: JOB });
    s.setSourceState('old', 'bulk-export', '{"covered":[]}');
    s.releaseLease('connector:old', 'run');
  }
  const leases = (s: StateStore, ...names: string[]) =>
    names.map((name) => {
      expect(s.acquireLease(`connector:${name}`, holder(`mv-${name}`), 60_000, () => false)).toMatchObject({ acquired: true });
      return { name: `connector:${name}`, holderId: `mv-${name}` };
    });

  it('moves watermark, runs, seen events, source state and ledger claims in one go; the new name finds every delivery', () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { dir, store: s } = fresh();
    withHistory(s, clock);
    expect(s.connectorsDeliveredTo(JOB)).toEqual(['old']);
    expect(s.connectorsDeliveredTo('https://ingest|t|other-job')).toEqual([]);
    // A refused first run of the new name already made its (empty) ledger source, and its failed run record; a dry
    // run of it kept the users it found unknown (a cache: not state of its own; neither name's moves or stays).
    expect(s.prunedBefore({ destination: JOB, source: 'new' })).toBeUndefined();
    s.setSourceState('new', UNKNOWN_USERS, '{"base":"x","found":{"k-new":1}}');
    s.setSourceState('old', UNKNOWN_USERS, '{"base":"x","found":{"k-old":1}}');
    s.createRun(run('refused', { connector: 'new' }));
    s.updateRun('refused', { state: 'failed', error: { code: 'BRG_ERR_CONNECTOR_STATE', message: 'run bridge state rename old new' } });

    const files: string[] = [];
    expect(s.moveConnector('old', 'new', leases(s, 'old', 'new'), { destination: JOB, files: () => files.push('moved') })).toEqual({
      watermark: '2026-11-23T00:00:00.000Z',
      runs: 1,
      seenEvents: 1,
      ledger: true,
    });
    expect(files).toEqual(['moved']);
    expect(s.getWatermark('new')).toBe('2026-11-23T00:00:00.000Z');
    expect(s.getWatermark('old')).toBeUndefined();
    // The refused run goes with the move: kept, it would keep the connector's health "failing" until its next run.
    expect(s.listRuns({ connector: 'new' }).map((r) => r.id)).toEqual(['r1']);
    expect(s.seenEvents('new', JOB, ['e|1'])).toEqual(new Set(['e|1']));
    expect(s.getSourceState('new', 'bulk-export')).toBe('{"covered":[]}');
    expect([s.getSourceState('new', UNKNOWN_USERS), s.getSourceState('old', UNKNOWN_USERS)]).toEqual([undefined, undefined]);
    expect(s.acknowledgedEvents({ destination: JOB, source: 'new' }, [{ key: 'e|1', recordedMs: clock.now() }])).toEqual(new Set(['e|1']));
    expect(s.acknowledgedEvents({ destination: JOB, source: 'old' }, [{ key: 'e|1', recordedMs: clock.now() }])).toEqual(new Set());
    expect(s.connectorsDeliveredTo(JOB)).toEqual(['new']);
    // The old name's blocks are the new name's: its runs take their unattempted claims as their own, not another lease's.
    const db = new Database(join(dir, 'bridge.sqlite'), { readonly: true });
    expect(db.prepare('SELECT DISTINCT lease_name FROM delivery_blocks').pluck().all()).toEqual(['connector:new']);
    db.close();
  });

  it('a fault at the last table, or in moving the files, leaves everything under the old name (one transaction)', () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { dir, store: s } = fresh();
    withHistory(s, clock);
    const held = leases(s, 'old', 'new');
    expect(() =>
      s.moveConnector('old', 'new', held, {
        files: () => {
          throw new Error('EXDEV: cross-device link not permitted');
        },
      }),
    ).toThrow(/EXDEV/);
    const db = new Database(join(dir, 'bridge.sqlite'));
    // The disk fails at the last table the move touches.
    db.exec("CREATE TRIGGER fail_move BEFORE UPDATE ON delivery_blocks BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
    db.close();
    expect(() => s.moveConnector('old', 'new', held)).toThrow(/disk I\/O error/);
    expect(s.getWatermark('old')).toBe('2026-11-23T00:00:00.000Z');
    expect(s.getWatermark('new')).toBeUndefined();
    expect(s.listRuns({ connector: 'old' })).toHaveLength(1);
    expect(s.getSourceState('old', 'bulk-export')).toBeDefined();
    expect(s.connectorsDeliveredTo(JOB)).toEqual(['old']);
  });

  it('refuses without the leases, with a run unfinished, onto a name with state of its own, or from a name the state lacks', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { dir, store: s } = fresh();
    withHistory(s, clock);
    // A second process holds the old name's lease (a sync in flight): the move checks the lease inside its transaction.
    const other = openStateStore(dir, clock);
    try {
      expect(other.acquireLease('connector:old', holder('sync'), 60_000, () => false)).toMatchObject({ acquired: true });
      expect(() => s.moveConnector('old', 'new', [{ name: 'connector:old', holderId: 'mv-old' }])).toThrow(
        expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS' }),
      );
      other.releaseLease('connector:old', 'sync');
    } finally {
      other.close();
    }
    s.createRun(run('r2', { connector: 'old', state: 'pushing' }));
    expect(() => s.moveConnector('old', 'new', leases(s, 'old', 'new'))).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_CONNECTOR_STATE', message: expect.stringContaining('bridge sync --connector old') }),
    );
    s.updateRun('r2', { state: 'failed' });
    s.createRun(run('r3', { connector: 'new' }));
    s.completeRun('r3', { counts: { ...ZERO_COUNTS }, watermark: '2026-11-22T00:00:00.000Z' });
    expect(() => s.moveConnector('old', 'new', leases(s, 'old', 'new'))).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_CONNECTOR_STATE', message: expect.stringContaining('already has state of its own') }),
    );
    expect(() => s.moveConnector('old', 'newer', leases(s, 'newer'), { destination: 'https://ingest|t|other-job' })).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_CONNECTOR_STATE', message: expect.stringContaining('another Purview job') }),
    );
    expect(() => s.moveConnector('nobody', 'newer', leases(s, 'nobody'))).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_CONNECTOR_STATE', message: expect.stringContaining('nothing under connector "nobody"') }),
    );
    expect(s.getWatermark('old')).toBe('2026-11-23T00:00:00.000Z');
  });

  it('a retired name is listed as retired:<name>:<time>; flat files (file:…) are not listed', () => {
    const clock = new ManualClock('2026-11-23T00:00:00Z');
    const { store: s } = fresh();
    withHistory(s, clock);
    const file = s.openRangeBlock({ destination: JOB, source: 'file:abc', runId: 'r9' }, [{ first: 0, end: 3 }], 0);
    s.markAcked(file.id, 0);
    expect(s.connectorsDeliveredTo(JOB)).toEqual(['old']);
    s.moveConnector('old', 'retired:old:2026-11-23T00:00:00.000Z', leases(s, 'old'));
    expect(s.connectorsDeliveredTo(JOB)).toEqual(['retired:old:2026-11-23T00:00:00.000Z']);
    expect(s.listRuns({ connector: 'retired:old:2026-11-23T00:00:00.000Z' })).toHaveLength(1);
  });
});
