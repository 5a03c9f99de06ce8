/**
 * The memory backend (bridge sandbox's default, and the FHIR pull tests') matches dates and tokens as R4 search says,
 * where medplum's repository alone does not: an instant is a point, ids and identifiers match exactly, escapes hold.
 */
import type { AuditEvent, FhirResource, Practitioner } from 'fhir/r4.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBackend, type MemoryBackend } from '../../src/sandbox/fhir-backend.js';

const EMP = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780';

function event(id: string, recorded: string): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id,
    meta: { lastUpdated: recorded },
    recorded,
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
    agent: [{ requestor: true }],
    source: { observer: { display: 'Epic' } },
  };
}

function practitioner(id: string, value: string, system = EMP): Practitioner {
  return { resourceType: 'Practitioner', id, identifier: [{ system, value }] };
}

let backend: MemoryBackend;
const ids = async (type: string, query: string): Promise<string[]> =>
  (await backend.search(type, new URLSearchParams(query))).resources.map((resource) => resource.id ?? '').sort();

beforeAll(async () => {
  backend = await createMemoryBackend();
  await backend.load([
    event('whole', '2026-11-01T00:01:00Z'),
    event('local', '2026-10-31T19:02:00.250-05:00'),
    event('fine', '2026-11-01T00:03:00.1234567Z'),
    practitioner('eAbC', 'C|D'),
    practitioner('eOther', 'D', 'C'),
    practitioner('eJs', 'JSMITH12'),
    practitioner('eComma', 'Smith, Ann'),
  ] as FhirResource[]);
});

describe('memory backend: an instant is a point (R4 search §3.1.1.4.2)', () => {
  it.each([
    ['date=ge2026-11-01T00:01:00.500Z', ['fine', 'local']],
    ['date=gt2026-11-01T00:01:00.000Z', ['fine', 'local']],
    ['date=ge2026-11-01T00:01:00.000Z', ['fine', 'local', 'whole']],
    ['date=eq2026-11-01T00:01:00.000Z', ['whole']],
    ['date=eq2026-11-01T00:01:00Z', ['whole']],
    ['date=eq2026-11-01T00:02:00.250Z', ['local']],
    ['date=lt2026-11-01T00:02:00.250Z', ['whole']],
    ['date=le2026-11-01T00:02:00.250Z', ['local', 'whole']],
    ['date=ne2026-11-01T00:01:00.000Z', ['fine', 'local']],
    ['date=eq2026-11-01', ['fine', 'local', 'whole']],
    ['date=ge2026-11-01T00:00:30Z&date=lt2026-11-01T00:01:00.500Z', ['whole']],
    ['date=ge2026-11-01T00:01:00.500Z&date=lt2026-11-01T00:01:30Z', []],
    ['_lastUpdated=gt2026-11-01T00:03:00.123Z', ['fine']],
    ['_lastUpdated=gt2026-11-01T00:03:00.124Z', []],
  ])('%s', async (query, expected) => {
    expect(await ids('AuditEvent', query)).toEqual(expected);
  });

  it('sorts by the instant and pages after filtering', async () => {
    const page = await backend.search('AuditEvent', new URLSearchParams('date=ge2026-11-01T00:00:00Z&_sort=-date&_count=2'));
    expect(page.resources.map((resource) => resource.id)).toEqual(['fine', 'local']);
    expect(page.total).toBe(3);
  });

  it('refuses a value that is no FHIR date, with 400 words naming it', async () => {
    await expect(ids('AuditEvent', 'date=ge2026-13-01')).rejects.toThrow(/AuditEvent date=ge2026-13-01 is not a FHIR date/);
  });
});

describe('memory backend: tokens match exactly (R4 search §3.1.1.4.7, escaping §3.1.1.1)', () => {
  it.each([
    [`identifier=${EMP}|C\\|D`, ['eAbC']],
    ['identifier=C\\|D', ['eAbC']],
    ['identifier=C|D', ['eOther']],
    [`identifier=${EMP}|jsmith12`, []],
    [`identifier=${EMP}|JSMITH12`, ['eJs']],
    ['identifier=Smith\\, Ann', ['eComma']],
    [`identifier=${EMP}|JSMITH12,${EMP}|Smith\\, Ann`, ['eComma', 'eJs']],
    [`identifier=${EMP}|`, ['eAbC', 'eComma', 'eJs']],
    ['_id=eabc', []],
    ['_id=eAbC,eJs', ['eAbC', 'eJs']],
  ])('%s', async (query, expected) => {
    expect(await ids('Practitioner', query)).toEqual(expected);
  });
});
