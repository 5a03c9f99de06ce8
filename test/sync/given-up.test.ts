import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { GIVEN_UP_REASON, GivenUpRecorder } from '../../src/sync/given-up.js';

function files(rejects: string): { rejectsPath: string; spoolPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-given-up-'));
  const spoolPath = join(dir, 'run.txt');
  const rejectsPath = join(dir, 'run.ndjson');
  // Header, then event e1 (two rows) and event e2 (one row), CRLF as the spool has them.
  writeFileSync(spoolPath, 'H1\tH2\r\nr1a\tx\r\nr1b\ty\r\nr2\tz\r\n');
  writeFileSync(rejectsPath, rejects, { mode: 0o600 });
  return { rejectsPath, spoolPath };
}

const e1 = { key: 'e1|3', recordedMs: 0, rows: 2, start: 7, end: 21 };
const e2 = { key: 'e2|', recordedMs: 0, rows: 1, start: 21, end: 27 };

const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

it("writes each given-up row after the mapping's rejects; a resumed push keeps what an earlier one wrote whole, and counts each event once", () => {
  // Mapping rejects over several read chunks, so the scan for the given-up lines crosses chunk edges.
  const mapping = Array.from(
    { length: 3000 },
    (_, i) => `${JSON.stringify({ eventId: `m${i}`, reason: 'missing-patient-name', pad: 'x'.repeat(i % 97) })}\n`,
  ).join('');
  const { rejectsPath, spoolPath } = files(mapping);
  const first = new GivenUpRecorder(rejectsPath, spoolPath);
  expect([first.add(e1), first.add(e2)]).toEqual([true, true]);
  first.close();
  expect(first).toMatchObject({ rows: 3, events: 2 });
  const written = lines(rejectsPath);
  expect(written).toHaveLength(3003);
  const given = [
    { reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row: 'r1a\tx' },
    { reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row: 'r1b\ty' },
    { reason: GIVEN_UP_REASON, eventId: 'e2', row: 'r2\tz' },
  ];
  expect(written.slice(3000)).toEqual(given);
  // A resumed push (the first killed mid-write: a torn line at the end) that fails before it meets either event keeps
  // both (the torn line cut); the push after it meets both: nothing new to the run's counts, nothing written twice.
  writeFileSync(rejectsPath, `${readFileSync(rejectsPath, 'utf8')}{"reas`);
  new GivenUpRecorder(rejectsPath, spoolPath).close();
  expect(lines(rejectsPath).slice(3000)).toEqual(given);
  const third = new GivenUpRecorder(rejectsPath, spoolPath);
  expect([third.add(e1), third.add(e2)]).toEqual([false, false]);
  third.close();
  const after = lines(rejectsPath);
  expect(after).toHaveLength(3003);
  expect(after.slice(0, 3000).map((line) => line['eventId'])).toEqual(Array.from({ length: 3000 }, (_, i) => `m${i}`));
  expect(after.slice(3000)).toEqual(given);
});

it('a push killed between two writes of one event leaves its first rows: the next writes the rest, and counts it not again', () => {
  const line = (row: string) => `${JSON.stringify({ reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row })}\n`;
  const { rejectsPath, spoolPath } = files(line('r1a\tx'));
  const recorder = new GivenUpRecorder(rejectsPath, spoolPath);
  expect([recorder.add(e1), recorder.add(e2)]).toEqual([false, true]);
  recorder.close();
  expect(lines(rejectsPath)).toEqual([
    { reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row: 'r1a\tx' },
    { reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row: 'r1b\ty' },
    { reason: GIVEN_UP_REASON, eventId: 'e2', row: 'r2\tz' },
  ]);
});

it('leaves a rejects file without given-up lines as it is, and creates one that is missing 0600', () => {
  const mapping = `${JSON.stringify({ eventId: 'm1', reason: 'x' })}\n`;
  const { rejectsPath, spoolPath } = files(mapping);
  new GivenUpRecorder(rejectsPath, spoolPath).close();
  expect(readFileSync(rejectsPath, 'utf8')).toBe(mapping);
  const missing = join(mkdtempSync(join(tmpdir(), 'bridge-given-up-')), 'new.ndjson');
  const recorder = new GivenUpRecorder(missing, spoolPath);
  recorder.add(e2);
  recorder.close();
  expect(lines(missing)).toEqual([{ reason: GIVEN_UP_REASON, eventId: 'e2', row: 'r2\tz' }]);
  expect(statSync(missing).mode & 0o777).toBe(0o600);
});
