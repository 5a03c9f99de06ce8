/**
 * `bridge rejects <run>` and `bridge runs --possibly-duplicated <run>` take a run id or its first 8+ characters: found
 * in the whole history (a service syncing every 15 minutes passes 10,000 runs in about 100 days), never by a pattern.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { findRun } from '../../src/cli/find-run.js';
import type { BridgeError } from '../../src/errors.js';
import { openStateStore, type RunRecord, type StateStore, ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

let store: StateStore | undefined;
afterEach(() => store?.close());

const run = (id: string, startedAt: string): RunRecord => ({
  id,
  connector: 'main',
  state: 'completed',
  trigger: 'schedule',
  since: '2026-01-01T00:00:00.000Z',
  until: '2026-01-01T00:15:00.000Z',
  startedAt,
  counts: { ...ZERO_COUNTS },
  dryRun: false,
});

function refused(id: string): BridgeError {
  try {
    findRun(store as StateStore, id);
  } catch (error) {
    return error as BridgeError;
  }
  throw new Error(`findRun("${id}") found a run`);
}

it('finds an old run by its prefix behind 10,050 newer ones, and refuses short, ambiguous or pattern-like prefixes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'find-run-'));
  store = openStateStore(dir, new ManualClock('2026-12-01T00:00:00Z'));
  store.createRun(run('0a1b2c3d-0000-4000-8000-000000000001', '2026-01-01T00:00:00.000Z'));
  store.createRun(run('f0f0f0f0-0000-4000-8000-000000000001', '2026-01-01T00:05:00.000Z'));
  store.createRun(run('f0f0f0f0-0000-4000-8000-000000000002', '2026-01-01T00:06:00.000Z'));
  // The newer history, written beside the store in one transaction (10,050 inserts one by one take minutes with fsync).
  const db = new Database(join(dir, 'bridge.sqlite'));
  const columns = (db.prepare('PRAGMA table_info(runs)').all() as Array<{ name: string }>).map((c) => c.name);
  const values = columns.map((c) =>
    c === 'id'
      ? "printf('9%07d-0000-4000-8000-000000000000', n.i)"
      : c === 'started_at'
        ? "strftime('%Y-%m-%dT%H:%M:%fZ', '2026-02-01', '+' || n.i || ' minutes')"
        : `r.${c}`,
  );
  db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10050)
    INSERT INTO runs (${columns.join(', ')}) SELECT ${values.join(', ')} FROM n, runs r WHERE r.id = '0a1b2c3d-0000-4000-8000-000000000001'`);
  db.close();
  expect(store.listRuns({ limit: 20_000 })).toHaveLength(10_053);

  expect(findRun(store, '0a1b2c3d').id).toBe('0a1b2c3d-0000-4000-8000-000000000001');
  expect(findRun(store, 'f0f0f0f0-0000-4000-8000-000000000002').startedAt).toBe('2026-01-01T00:06:00.000Z');
  expect(refused('0a1b2c3').message).toBe('"0a1b2c3" is too short for a run id: give its first 8 characters or more, as bridge runs shows them.');
  expect(refused('f0f0f0f0').message).toBe('More than one run starts with "f0f0f0f0"; give more of the id.');
  expect(refused('0a1b2c3%').message).toBe('No run "0a1b2c3%" in the state directory (bridge runs lists them).');
  expect(refused('0a1b2c3_').message).toBe('No run "0a1b2c3_" in the state directory (bridge runs lists them).');
  expect(refused('0a1b2c3').exitCode).toBe(2);
});
