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

it("writes each given-up row after the mapping's rejects, and a second push of the run replaces the first's lines", () => {
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
  expect(written.slice(3000)).toEqual([
    { reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row: 'r1a\tx' },
    { reason: GIVEN_UP_REASON, eventId: 'e1', versionId: '3', row: 'r1b\ty' },
    { reason: GIVEN_UP_REASON, eventId: 'e2', row: 'r2\tz' },
  ]);
  // A resumed push (killed mid-write: a torn line at the end) meets e2 alone this time.
  writeFileSync(rejectsPath, `${readFileSync(rejectsPath, 'utf8')}{"reas`);
  const again = new GivenUpRecorder(rejectsPath, spoolPath);
  // Both were recorded by the first push: not new to the run's counts (the live reject metric takes each event once).
  expect(again.add(e2)).toBe(false);
  again.close();
  const after = lines(rejectsPath);
  expect(after).toHaveLength(3001);
  expect(after.slice(0, 3000).map((line) => line['eventId'])).toEqual(Array.from({ length: 3000 }, (_, i) => `m${i}`));
  expect(after[3000]).toEqual({ reason: GIVEN_UP_REASON, eventId: 'e2', row: 'r2\tz' });
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
