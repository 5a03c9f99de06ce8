/**
 * Enriching a drop folder's rows reads each row's access time to choose the patient's name and address valid then. A
 * Clarity export writes local wall-clock time without an offset: it is read in source.enrich.timeZone (or the mapping's
 * local zone), by default UTC, never in the zone of the host (a container's is UTC, a Windows server's the site's).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Patient } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { normalizeFlatFile, SCHEMA_COLUMNS } from '../../src/connector-file/index.js';
import type { ReferenceResolver } from '../../src/fhir/index.js';
import { builtinMappingPath, loadMapping } from '../../src/mapping/index.js';
import { parseTimeFormat, wallTimeInZone } from '../../src/mapping/time.js';
import { identifierKey } from '../../src/reference-keys.js';
import { createFileEnricher } from '../../src/sync/file-enrich.js';
import { InstantClock } from '../support/manual-clock.js';

const EPIC = SCHEMA_COLUMNS.epic.map((column) => column.name);
// Her family name changed at 2026-11-01T06:00Z: 01:00 CDT, the first pass of the hour Chicago repeats that night.
const patient: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  identifier: [{ system: 'urn:mrn', value: 'MRN1' }],
  name: [
    { use: 'official', family: 'Old', given: ['Ann'], period: { end: '2026-11-01T06:00:00Z' } },
    { use: 'official', family: 'New', given: ['Ann'], period: { start: '2026-11-01T06:00:00Z' } },
  ],
  address: [{ line: ['1 Main'], city: 'Chicago', postalCode: '60601', state: 'IL', country: 'US' }],
};
const resources = new Map<string, Patient>([
  [identifierKey('Patient', 'urn:mrn', 'MRN1'), patient],
  ['Patient/p1', patient],
]);
const resolver = { stats: { hits: 0, misses: 0, missing: 0 }, isHeld: () => false, prefetch: async () => undefined, get: (key: string) => resources.get(key) };

/** The family name each row gets, for access times written as given. */
async function familyNames(times: readonly string[], timeZone?: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-enrich-time-'));
  const row = (time: string) =>
    EPIC.map((column, i) =>
      i === 0 ? time : column === 'PATIENT.PAT_MRN_ID' ? 'MRN1' : column.startsWith('PATIENT.') || column.startsWith('ZC_') ? '' : `x${i}`,
    ).join('\t');
  const input = join(dir, 'in.txt');
  writeFileSync(input, `${[EPIC.join('\t'), ...times.map(row)].join('\r\n')}\r\n`);
  const normalized = await normalizeFlatFile(input, join(dir, 'normalized.txt'), 'epic', { exactHeader: true });
  const enricher = createFileEnricher({
    resolver: resolver as unknown as ReferenceResolver,
    mapping: loadMapping(builtinMappingPath('epic'), { strict: false }),
    batchRows: 100,
    clock: new InstantClock(Date.parse('2026-11-02T09:00:00Z')),
    mrnSystem: 'urn:mrn',
    ...(timeZone ? { timeZone } : {}),
  });
  const { file } = await enricher.enrich(normalized, join(dir, 'enriched.txt'));
  const last = EPIC.indexOf('PATIENT.PAT_LAST_NAME');
  return readFileSync(file.spoolPath, 'utf8')
    .split('\r\n')
    .slice(1, -1)
    .map((line) => line.split('\t')[last] ?? '');
}

describe('enrichment reads access times', () => {
  it('without an offset in the zone it is given: Chicago local times either side of the change, the repeated hour as its first pass', async () => {
    // 00:30 CDT = 05:30Z (Old); 01:30 repeated, its first pass 06:30Z (New); 02:30 CST = 08:30Z (New).
    expect(await familyNames(['2026-11-01 00:30:00', '2026-11-01 01:30:00', '2026-11-01 02:30:00'], 'America/Chicago')).toEqual(['Old', 'New', 'New']);
  });

  it('without an offset and without a zone as UTC, whatever the host: the same file reads the same on every machine', async () => {
    expect(await familyNames(['2026-11-01 05:30:00', '2026-11-01 06:30:00'])).toEqual(['Old', 'New']);
  });

  it('in the other forms exports write: en-US with AM/PM (SSMS, PowerShell), and a date alone (its midnight)', async () => {
    expect(await familyNames(['10/31/2026 11:30:00 PM', '11/1/2026 1:30 AM', '11/01/2026 02:30', '2026-11-02'], 'America/Chicago')).toEqual([
      'Old',
      'New',
      'New',
      'New',
    ]);
    expect(await familyNames(['11/1/2026 12:59:59 AM', '2026-11-01'], 'UTC')).toEqual(['Old', 'Old']);
  });

  it('with an offset as written, whatever the zone set', async () => {
    expect(await familyNames(['2026-11-01T05:59:59Z', '2026-11-01T01:00:01-05:00'], 'Asia/Tokyo')).toEqual(['Old', 'New']);
  });
});

describe('wallTimeInZone', () => {
  const chicago = parseTimeFormat('local:America/Chicago') as Extract<ReturnType<typeof parseTimeFormat>, { kind: 'local' }>;
  const iso = (text: string) => {
    const ms = wallTimeInZone(text, chicago);
    return ms === undefined ? undefined : new Date(ms).toISOString();
  };

  it('reads winter and summer times, the repeated hour as its first pass, a skipped time with the offset after it, and fractions', () => {
    expect(iso('2026-01-15 10:00:00')).toBe('2026-01-15T16:00:00.000Z');
    expect(iso('2026-07-15T10:00')).toBe('2026-07-15T15:00:00.000Z');
    expect(iso('2026-11-01 01:30:00')).toBe('2026-11-01T06:30:00.000Z');
    expect(iso('2026-11-01 01:59:59.5')).toBe('2026-11-01T06:59:59.500Z');
    expect(iso('2026-03-08 02:30:00')).toBe('2026-03-08T07:30:00.000Z');
  });

  it('is undefined for what is no date and time', () => {
    for (const text of ['11/01/2026 12:30 AM', '2026-02-30 10:00:00', '2026-11-01', 'yesterday']) expect(iso(text), text).toBeUndefined();
  });
});
