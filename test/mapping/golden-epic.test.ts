/**
 * Golden tests over Epic-shaped resources (test/fixtures/epic, synthetic, modelled on Epic's public sandbox): the
 * MRN, login and user id come from `type.text`-only identifiers with Epic OIDs; `use: old` never counts; sites pin
 * their own systems or type texts; times with local offsets on both sides of the end of DST come out as UTC instants.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuditEvent, FhirResource, Patient, Practitioner } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { subjectMrn } from '../../src/mapping/builtins.js';
import { OBJECT_ROLE } from '../../src/mapping/context.js';
import { type CompiledMapping, mapEvent } from '../../src/mapping/index.js';
import { resolveOptions } from '../../src/mapping/options.js';
import { mappingFileSpec } from '../../src/mapping/spec.js';
import { errorOf } from '../support/error-of.js';
import { builtinMapping, builtinSpec, compileSpec, fixturesDir, identifierKey, lookupOf } from './support.js';

const dir = resolve(fixturesDir, 'epic');
const files = readdirSync(dir)
  .filter((name) => name.endsWith('.json'))
  .sort();
const read = <T extends FhirResource>(name: string): T => JSON.parse(readFileSync(resolve(dir, name), 'utf8')) as T;
const people = files.filter((name) => !name.startsWith('AuditEvent-')).map((name) => read(name));
const lookup = lookupOf(people);
const event = (name: string): AuditEvent => read<AuditEvent>(`AuditEvent-${name}.json`);
/** An event time for subjectMrn, which takes only identifiers valid then (docs/mapping.md §5.1, §5.3). */
const T = Date.parse('2026-11-01T08:00:00Z');

const EPIC_ROWS: Record<string, string[][]> = {
  'dst-before': [
    [
      '2026-11-01T07:59:57Z',
      'Chart Review Accessed',
      'WS-3F-0412',
      'Patient Record',
      'Read/View/Print',
      '204518',
      'Rosa',
      'Ines',
      'Delgado',
      '4410 Prairie Dock Ln',
      'Unit 3',
      'VERONA',
      '53593',
      'WI',
      'US',
      'FAMILY MEDICINE CLINIC',
      '',
      '',
      'RSANTOS',
      'RSANTOS',
      'Santos',
      'Rafael',
    ],
  ],
  'dst-after': [
    [
      '2026-11-01T08:00:02.5Z',
      'Medication List Viewed',
      'WS-2F-0077',
      'Patient Record',
      'Read/View/Print',
      '204519',
      'Tomas',
      'Anders',
      'Eriksen',
      '2120 Badger Pkwy',
      '',
      'FITCHBURG',
      '53711-4208',
      'WI',
      'US',
      'EMERGENCY DEPT',
      '',
      '',
      'MOKAFOR',
      'MOKAFOR',
      'Okafor',
      'Maya',
    ],
  ],
  'site-text': [
    [
      '2026-11-01T15:20:10.123Z',
      'Chart Review Accessed',
      'WS-1F-0009',
      'Patient Record',
      'Read/View/Print',
      '',
      'Jun',
      '',
      'Nakamura',
      '915 N Cascade Ave',
      '',
      'COLORADO SPRINGS',
      '80903',
      'CO',
      'US',
      'URGENT CARE NORTH',
      '',
      '',
      '104455',
      '104455',
      'Brennan',
      'Hannah',
    ],
  ],
  'two-patients': [
    [
      '2026-11-01T16:05:44.900Z',
      'Report Printed',
      '',
      'Patient Record',
      'Read/View/Print',
      '81234567',
      'Amara',
      '',
      'Okafor',
      '3300 E Platte Ave',
      'Apt 12B',
      'COLORADO SPRINGS',
      '80909',
      'CO',
      'US',
      '',
      '',
      '',
      'RSANTOS',
      'RSANTOS',
      'Santos',
      'Rafael',
    ],
    [
      '2026-11-01T16:05:44.900Z',
      'Report Printed',
      '',
      'Patient Record',
      'Read/View/Print',
      '203588',
      'Lena',
      '',
      'Varga',
      '1217 Glacier Ridge Dr',
      '',
      'VERONA',
      '53593',
      'WI',
      'US',
      '',
      '',
      '',
      'RSANTOS',
      'RSANTOS',
      'Santos',
      'Rafael',
    ],
  ],
};

/** The healthcare schema has the same values, plus Employee User Name (the altId, when the event carries one). */
function healthcareRow(epic: string[], userName: string): string[] {
  return [...epic.slice(0, 19), userName, ...epic.slice(19)];
}

function cell(mapping: CompiledMapping, name: string, column: string): string[] {
  const index = mapping.columns.findIndex((entry) => entry.name === column);
  return mapEvent(event(name), mapping, lookup).rows.map((row) => row[index] ?? '');
}

describe('Epic-shaped resources with the built-in mappings (no site options)', () => {
  it('covers every file in the folder', () => {
    expect(
      files
        .filter((name) => name.startsWith('AuditEvent-'))
        .map((name) => name.slice(11, -5))
        .sort(),
    ).toEqual(Object.keys(EPIC_ROWS).sort());
  });

  // These events' users carry no UPN-shaped altId and no work e-mail: the login is their EMP record id, which is the
  // directory login only where a site made them equal, so each such row says so (docs/mapping.md §7.1).
  const EMP_LOGIN = new Set(['dst-before', 'dst-after', 'site-text', 'two-patients']);
  for (const [name, rows] of Object.entries(EPIC_ROWS)) {
    it(`epic: ${name}`, () => {
      const result = mapEvent(event(name), builtinMapping('epic'), lookup);
      const warnings = EMP_LOGIN.has(name) ? ['login-from-emp-id:EMP.SYSTEM_LOGIN'] : [];
      expect(result).toMatchObject({ rows, rejects: [], warnings });
    });

    it(`healthcare: ${name}`, () => {
      const result = mapEvent(event(name), builtinMapping('healthcare'), lookup);
      const altId = event(name).agent[0]?.altId ?? '';
      const warnings = EMP_LOGIN.has(name) ? ['login-from-emp-id:Email Address (UPN) or SamAccountName'] : [];
      expect(result).toMatchObject({ rows: rows.map((row) => healthcareRow(row, altId)), rejects: [], warnings });
    });
  }

  it('the instants are the same across the DST change: 01:00:03 MST comes 4.75 s after 01:59:58.250 MDT', () => {
    const before = Date.parse(event('dst-before').recorded);
    const after = Date.parse(event('dst-after').recorded);
    expect(after - before).toBe(4_750);
    expect(event('dst-after').recorded < event('dst-before').recorded).toBe(true); // as text, the other way round
  });
});

describe('site options pin a system or a type text', () => {
  const HSMRN_SYSTEM = 'urn:oid:1.2.840.114350.1.13.7341.2.7.5.737384.2046';

  it('mrnTypeTexts (any case) or mrnSystems find the site MRN, and leave the Epic shapes of other patients alone', () => {
    for (const options of [{ mrnTypeTexts: ['hsmrn'] }, { mrnSystems: [HSMRN_SYSTEM] }]) {
      const site = builtinMapping('epic', { options });
      expect(cell(site, 'site-text', 'PATIENT.PAT_MRN_ID')).toEqual(['H00451277']);
      expect(cell(site, 'dst-before', 'PATIENT.PAT_MRN_ID')).toEqual(['204518']);
      expect(cell(site, 'two-patients', 'PATIENT.PAT_MRN_ID')).toEqual(['81234567', '203588']);
    }
    expect(cell(builtinMapping('healthcare', { options: { mrnTypeTexts: ['HSMRN'] } }), 'site-text', 'Patient Reg Id')).toEqual(['H00451277']);
  });

  it('a pinned system or text wins over EPI', () => {
    const site = builtinMapping('epic', { options: { mrnTypeTexts: ['EPIC'] } });
    expect(cell(site, 'dst-before', 'PATIENT.PAT_MRN_ID')).toEqual(['E5183']);
  });

  it('loginTypeTexts / loginSystems pick the site login over the EMP id; userIdSystems picks the SER id (padding trimmed)', () => {
    expect(cell(builtinMapping('epic', { options: { loginTypeTexts: ['WINLOGIN'] } }), 'site-text', 'EMP.SYSTEM_LOGIN')).toEqual(['hbrennan']);
    const bySystem = builtinMapping('healthcare', { options: { loginSystems: ['urn:oid:1.2.840.114350.1.13.7341.2.7.5.737384.522'] } });
    expect(cell(bySystem, 'site-text', 'Email Address (UPN) or SamAccountName')).toEqual(['hbrennan']);
    const ser = builtinMapping('epic', { options: { userIdSystems: ['urn:oid:1.2.840.114350.1.13.0.1.7.2.836982'] } });
    expect(cell(ser, 'dst-before', 'CLARITY_EMP.USER_ID')).toEqual(['E1027']);
    expect(cell(builtinMapping('epic', { options: { userIdTypeTexts: ['PROVID'] } }), 'dst-before', 'CLARITY_EMP.USER_ID')).toEqual(['1027']);
  });

  it("a pinned login wins over the user's work e-mail; unpinned, the e-mail still comes before the EMP id (docs/mapping.md §7.1)", () => {
    const email = 'rafael.santos@hospital.example.org';
    const withEmail = people.map((resource) =>
      resource.resourceType === 'Practitioner' && resource.id === 'eR4sNt0sPq8Lm2Vx6CzHyJw3'
        ? { ...resource, telecom: [{ system: 'email' as const, use: 'work' as const, value: email }] }
        : resource,
    );
    const login = (schema: 'epic' | 'healthcare', options: Record<string, unknown>) => {
      const mapping = builtinMapping(schema, { options });
      const column = mapping.columns.findIndex((c) => c.name === (schema === 'epic' ? 'EMP.SYSTEM_LOGIN' : 'Email Address (UPN) or SamAccountName'));
      const result = mapEvent(event('dst-before'), mapping, lookupOf(withEmail));
      return { login: result.rows.map((row) => row[column]), warnings: result.warnings };
    };
    expect(login('epic', {})).toEqual({ login: [email], warnings: [] });
    const EMP = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780';
    for (const options of [{ loginSystems: [EMP] }, { loginTypeTexts: ['EXTERNAL'] }]) {
      expect(login('epic', options), JSON.stringify(options)).toEqual({ login: ['RSANTOS'], warnings: [] });
      expect(login('healthcare', options), JSON.stringify(options)).toEqual({ login: ['RSANTOS'], warnings: [] });
    }
  });

  it('a misspelt option is an error naming the one meant; an option an expression uses is a variable', () => {
    const typo = errorOf(() => builtinMapping('epic', { options: { mrnTypeText: ['HSMRN'] } }));
    // Options given over the file's are the configuration's (mapping.options): its error, naming the setting.
    expect(typo.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(typo.message).toContain(
      'Invalid configuration: mapping.options.mrnTypeText in the configuration: option "mrnTypeText" is not a known option (did you mean "mrnTypeTexts"?)',
    );
    expect(errorOf(() => builtinMapping('epic', { options: { loginsystems: [] } })).message).toContain('did you mean "loginSystems"?');
    expect(errorOf(() => builtinMapping('epic', { options: { mrnTypeTexts: 'HSMRN' } })).message).toContain('option "mrnTypeTexts"');
    const spec = builtinSpec('epic');
    const own = compileSpec({
      ...spec,
      options: { ...spec.options, campus: 'North' },
      columns: spec.columns.map((column) => (column.name === 'CLARITY_DEP.DEPARTMENT_NAME' ? { ...column, expressions: ['%campus'] } : column)),
    });
    expect(cell(own, 'two-patients', 'CLARITY_DEP.DEPARTMENT_NAME')).toEqual(['North', 'North']);
  });
});

describe('use: old never counts', () => {
  const withIdentifiers = <T extends Patient | Practitioner>(resource: T, change: (identifiers: NonNullable<T['identifier']>) => T['identifier']): T => ({
    ...resource,
    identifier: change(resource.identifier ?? []),
  });

  it('a patient whose only EPI is old has no MRN; a practitioner whose only EMP id is old has no login from it', () => {
    const patient = withIdentifiers(read<Patient>('Patient-merged-old-mrn.json'), (ids) =>
      ids.filter((id) => !(id.use === 'usual' && id.type?.text === 'EPI')),
    );
    const practitioner = withIdentifiers(read<Practitioner>('Practitioner-renamed-login.json'), (ids) => ids.filter((id) => id.use === 'old'));
    const result = mapEvent(event('dst-after'), builtinMapping('epic'), lookupOf([patient, practitioner]));
    expect(result.rows).toEqual([]);
    expect(result.rejects).toEqual([
      { eventId: 'eAE2dst0after00000000002', patientRef: `Patient/${patient.id ?? ''}`, reason: 'missing-employee-login', column: 'EMP.SYSTEM_LOGIN' },
    ]);
    const lenient = builtinMapping('epic', { options: { loginRegex: '.' } });
    const withAltId = { ...event('dst-after'), agent: event('dst-after').agent.map((agent, i) => (i === 0 ? { ...agent, altId: 'MOKAFOR' } : agent)) };
    const row = mapEvent(withAltId, lenient, lookupOf([patient, practitioner])).rows[0] ?? [];
    expect(row[lenient.columns.findIndex((c) => c.name === 'PATIENT.PAT_MRN_ID')]).toBe('');
    expect(row[lenient.columns.findIndex((c) => c.name === 'CLARITY_EMP.USER_ID')]).toBe(`${practitioner.id ?? ''}`);
  });

  it('an identifier-only subject: EPI, MRN text and Epic MRN OIDs qualify; old ones and other Epic types do not', () => {
    const options = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), { mrnTypeTexts: ['HSMRN'] }, 'test');
    const epicMrn = 'urn:oid:1.2.840.114350.1.13.512.2.7.5.737384.14';
    expect(subjectMrn({ identifier: { type: { text: 'EPI' }, system: 'urn:oid:2.16.840.1.113883.19.5', value: '1' } }, options, T)).toBe('1');
    expect(subjectMrn({ identifier: { type: { text: ' mrn ' }, value: '2' } }, options, T)).toBe('2');
    expect(subjectMrn({ identifier: { type: { text: 'HSMRN' }, value: '3' } }, options, T)).toBe('3');
    expect(subjectMrn({ identifier: { type: { text: 'Site label' }, system: epicMrn, value: '4' } }, options, T)).toBe('4');
    expect(subjectMrn({ identifier: { use: 'old', type: { text: 'EPI' }, system: epicMrn, value: '5' } }, options, T)).toBeUndefined();
    expect(
      subjectMrn({ identifier: { type: { text: 'EPIC' }, system: 'urn:oid:1.2.840.114350.1.13.512.2.7.5.737384.0', value: 'E6' } }, options, T),
    ).toBeUndefined();
    expect(
      subjectMrn({ identifier: { type: { text: 'INTERNAL' }, system: 'urn:oid:1.2.840.114350.1.13.512.2.7.2.698084', value: ' Z7' } }, options, T),
    ).toBeUndefined();
  });

  it('an identifier in HL7v2 CX form is judged by its assigning authority: an SSN or Epic PAT_ID so written is no MRN', () => {
    const options = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), {}, 'test');
    // Untyped, no system: the CX value names the SSN's authority (2.16.840.1.113883.4.1), Epic's patient record id type.
    expect(subjectMrn({ identifier: { value: '123456789^^^&2.16.840.1.113883.4.1&ISO' } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { value: 'Z7410^^^&1.2.840.114350.1.13.0.1.7.2.698084&ISO' } }, options, T)).toBeUndefined();
    // Another authority's untyped id is taken as IHE entities carry it, without its CX suffix; a pinned MRN system rules.
    expect(subjectMrn({ identifier: { value: 'M1234^^^&2.16.840.1.113883.19.5&ISO' } }, options, T)).toBe('M1234');
    const pinned = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), { mrnSystems: ['urn:oid:1.2.3'] }, 'test');
    expect(subjectMrn({ identifier: { value: 'OTHER77^^^&9.9.9&ISO' } }, pinned, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { value: 'MINE1^^^&1.2.3&ISO' } }, pinned, T)).toBe('MINE1');
    // Left unparsed (parseCxIdentifiers off), a CX value is no MRN at all.
    const raw = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), { parseCxIdentifiers: false }, 'test');
    expect(subjectMrn({ identifier: { value: 'M1234^^^&2.16.840.1.113883.19.5&ISO' } }, raw, T)).toBeUndefined();
    // Through the whole mapping: an event naming the patient by a CX SSN alone gets no MRN.
    const mapping = builtinMapping('epic');
    const base = event('dst-after');
    const bySsn = {
      ...base,
      entity: [{ what: { identifier: { value: '123456789^^^&2.16.840.1.113883.4.1&ISO' }, display: 'Doe, Jane' }, role: { system: OBJECT_ROLE, code: '1' } }],
    };
    const result = mapEvent(bySsn, mapping, lookup);
    expect(result.rejects).toEqual([]);
    const row = result.rows[0] ?? [];
    expect(row[mapping.columns.findIndex((c) => c.name === 'PATIENT.PAT_MRN_ID')]).toBe('');
  });

  it('a CX value with a namespace, a check digit or a type code after the id is read too: the id, in the OID system', () => {
    const options = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), {}, 'test');
    const oid = '1.2.840.114350.1.13.0.1.7.5.737384.14';
    const shapes = [`204518^^^EPI&${oid}&ISO`, `204518^^^&${oid}&ISO^MR`, `204518^^^EPI&${oid}&ISO^MR^FAC&1.2.3&ISO`, `204518^7^M10^&${oid}&ISO`];
    for (const value of shapes) expect(subjectMrn({ identifier: { value } }, options, T), value).toBe('204518');
    // Not a CX with an ISO authority: never split, so never an MRN.
    for (const value of ['204518^^^EPI', `204518^^^EPI&${oid}&DNS`]) expect(subjectMrn({ identifier: { value } }, options, T), value).toBeUndefined();

    // The whole row: the patient is found by the id and the OID, and the row carries its name.
    const patient = read<Patient>('Patient-sandbox-shape.json');
    const byIdentifier = lookupOf(people, { [identifierKey('Patient', `urn:oid:${oid}`, '204518')]: patient });
    const mapping = builtinMapping('epic');
    const base = event('dst-before');
    for (const value of shapes) {
      const result = mapEvent({ ...base, entity: [{ ...base.entity?.[0], what: { identifier: { value } } }] }, mapping, byIdentifier);
      const row = result.rows[0] ?? [];
      expect(result.warnings, value).not.toContain('unresolved-patient');
      expect(
        ['PATIENT.PAT_MRN_ID', 'PATIENT.PAT_LAST_NAME'].map((name) => row[mapping.columns.findIndex((c) => c.name === name)]),
        value,
      ).toEqual(['204518', 'Delgado']);
    }
  });

  it('a period.start with a time of day but no zone is not used: recorded stands in, and the row says so', () => {
    const mapping = builtinMapping('epic');
    const base = event('dst-after');
    const time = (result: ReturnType<typeof mapEvent>): string | undefined =>
      result.rows[0]?.[mapping.columns.findIndex((c) => c.name === 'ACCESS_LOG.ACCESS_TIME')];
    const { period: _period, ...withoutPeriod } = base;
    const recorded = mapEvent(withoutPeriod, mapping, lookup);
    expect(recorded.warnings).not.toContain('period-start-unreadable');
    expect(mapEvent(base, mapping, lookup).warnings).not.toContain('period-start-unreadable');
    for (const start of ['2026-11-01T01:30:00', '2026-11-01T01:30:00+0600']) {
      const result = mapEvent({ ...base, period: { start } }, mapping, lookup);
      expect(time(result)).toBe(time(recorded));
      expect(result.warnings).toContain('period-start-unreadable');
    }
    for (const start of ['2026-11-01', '2026-11-01T01:30:00-05:00']) {
      expect(mapEvent({ ...base, period: { start } }, mapping, lookup).warnings).not.toContain('period-start-unreadable');
    }
  });

  it("an untyped identifier-only subject: Epic's patient record id (an access log's PAT_ID) is no MRN; no system, another vendor's, or Epic's MRN system is", () => {
    const options = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), {}, 'test');
    const recordId = 'urn:oid:1.2.840.114350.1.13.512.2.7.2.698084';
    expect(subjectMrn({ identifier: { system: recordId, value: 'Z6139' } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { system: recordId, value: '     Z6139' } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { system: 'urn:oid:1.2.840.114350.1.13.512.2.7.3.878082.110', value: 'MYCHART7' } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { system: 'urn:oid:1.2.840.114350.1.13.512.2.7.5.737384.14', value: '203713' } }, options, T)).toBe('203713');
    expect(subjectMrn({ identifier: { value: '203714' } }, options, T)).toBe('203714');
    expect(subjectMrn({ identifier: { system: 'urn:oid:2.16.840.1.113883.19.5', value: '203715' } }, options, T)).toBe('203715');

    // The whole row: an event naming its patient only by Epic's record id, which the lookup cannot resolve, gets no MRN.
    const base = event('dst-after');
    const byRecordId = {
      ...base,
      entity: [{ ...base.entity?.[0], what: { identifier: { system: recordId, value: 'Z6139' }, display: 'Lopez, Camila' } }],
    };
    const practitioner = read<Practitioner>('Practitioner-renamed-login.json');
    const mapping = builtinMapping('epic');
    const result = mapEvent(byRecordId, mapping, lookupOf([practitioner]));
    expect(result.rows).toHaveLength(1);
    const row = result.rows[0] ?? [];
    expect(row[mapping.columns.findIndex((c) => c.name === 'PATIENT.PAT_MRN_ID')]).toBe('');
    expect(row.join('\t')).not.toContain('Z6139');
  });

  it("an untyped identifier-only subject: Epic's FHIR id and the SSN-based Medicare HICN are no MRN; nor is one that ended before the event", () => {
    const options = resolveOptions(mappingFileSpec.parse(builtinSpec('epic')), {}, 'test');
    const fhirId = 'http://open.epic.com/FHIR/StructureDefinition/patient-fhir-id';
    const hicn = 'urn:oid:2.16.840.1.113883.4.572';
    const epicMrn = 'urn:oid:1.2.840.114350.1.13.512.2.7.5.737384.14';
    expect(subjectMrn({ identifier: { system: fhirId, value: 'eQx9mY3vKcP0aRt2WbNfL7g3' } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { system: hicn, value: '123456789A' } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { value: '123456789A^^^&2.16.840.1.113883.4.572&ISO' } }, options, T)).toBeUndefined();
    // Valid at the event time, as a patient's own identifiers must be (docs/mapping.md §5.1).
    expect(subjectMrn({ identifier: { system: epicMrn, value: '203716', period: { end: '2020-01-01' } } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { value: '203717', period: { start: '2030' } } }, options, T)).toBeUndefined();
    expect(subjectMrn({ identifier: { system: epicMrn, value: '203718', period: { start: '2020', end: '2030' } } }, options, T)).toBe('203718');

    // The whole row: the patient named only so, and not found, has an empty MRN cell.
    const base = event('dst-after');
    const practitioner = read<Practitioner>('Practitioner-renamed-login.json');
    const mapping = builtinMapping('epic');
    for (const identifier of [
      { system: fhirId, value: 'eQx9mY3vKcP0aRt2WbNfL7g3' },
      { system: hicn, value: '123456789A' },
      { system: epicMrn, value: '203716', period: { end: '2020-01-01' } },
    ]) {
      const byIdentifier = { ...base, entity: [{ ...base.entity?.[0], what: { identifier, display: 'Lopez, Camila' } }] };
      const result = mapEvent(byIdentifier, mapping, lookupOf([practitioner]));
      expect(result.rows, identifier.system).toHaveLength(1);
      expect(result.rows[0]?.[mapping.columns.findIndex((c) => c.name === 'PATIENT.PAT_MRN_ID')], identifier.system).toBe('');
    }
  });
});
