/**
 * The per-run event log: one NDJSON line per event, named by `eventId` (the kind of line), with the run's fields; a
 * reject's own event id does not overwrite that name.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SyncEvents } from '../../src/sync/index.js';
import { attachRunLog } from '../../src/sync/run-log.js';
import { errorOf } from '../support/error-of.js';
import { InstantClock } from '../support/manual-clock.js';

const dir = mkdtempSync(join(tmpdir(), 'bridge-run-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('run log', () => {
  it("writes each event's kind as eventId, a reject's event id as subject, 0600", () => {
    const events = new SyncEvents();
    const detach = attachRunLog(events, dir, new InstantClock(Date.parse('2026-11-01T00:00:00Z')));
    events.emit('reject', { runId: 'r1', eventId: 'ae-42', reason: 'missing-employee-login', column: 'EMP.SYSTEM_LOGIN' });
    events.emit('reject', { runId: 'r1', eventId: 'file:day.txt', reason: 'file-field-count', rows: 3 });
    detach();
    const path = join(dir, 'r1.ndjson');
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toEqual([
      { timestamp: '2026-11-01T00:00:00.000Z', eventId: 'reject', runId: 'r1', reason: 'missing-employee-login', column: 'EMP.SYSTEM_LOGIN', subject: 'ae-42' },
      { timestamp: '2026-11-01T00:00:00.000Z', eventId: 'reject', runId: 'r1', reason: 'file-field-count', rows: 3, subject: 'file:day.txt' },
    ]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  // /dev/full answers every write with ENOSPC: a run log on a full disk, without filling one.
  it.skipIf(!existsSync('/dev/full'))('a line the disk refuses is BRG_ERR_STATE naming the run log, not an untyped ENOSPC', () => {
    const events = new SyncEvents();
    const detach = attachRunLog(events, dir, new InstantClock(Date.parse('2026-11-01T00:00:00Z')));
    const path = join(dir, 'full.ndjson');
    symlinkSync('/dev/full', path);
    try {
      const error = errorOf(() => events.emit('page', { runId: 'full', events: 1, duplicates: 0, skipped: 0, rows: 1, rejects: 0 }));
      expect(error.code).toBe('BRG_ERR_STATE');
      expect(error.message).toContain(`Cannot write ${path} (ENOSPC). Free space on its disk`);
    } finally {
      detach();
      rmSync(path);
    }
  });
});
