/**
 * Golden tests over every AuditEvent of the official FHIR R4 example package (test/fixtures/hl7-r4), for both
 * connector schemas: the exact rows, or the exact skip/reject reasons, written out by hand from the rules in
 * docs/mapping.md.
 */
import { describe, expect, it } from 'vitest';
import { type CompiledMapping, createSerializer, type EventMapResult, mapEvent } from '../../src/mapping/index.js';
import { auditEvent, builtinMapping, builtinSpec, compileSpec, fixtureFiles, hl7Resources, identifierKey, lookupOf, readFixture } from './support.js';

const byColumn = (mapping: CompiledMapping, row: readonly string[]): Record<string, string> =>
  Object.fromEntries(mapping.columns.map((column, index) => [column.name, row[index] as string]));

const epic = builtinMapping('epic');
const healthcare = builtinMapping('healthcare');
const lookup = lookupOf(hl7Resources());

/** Default mapping, both schemas: what each fixture yields with every R4 Patient/Practitioner example available. */
const DEFAULT_OUTCOMES: Record<string, (schema: 'epic' | 'healthcare') => Omit<EventMapResult, 'warnings'>> = {
  // The requestor has only who.identifier "SomeIdiot@nowhere" and altId "notMe": neither is UPN-shaped
  // (docs/mapping.md §7.1).
  'AuditEvent-example-disclosure.json': (schema) => ({
    rows: [],
    rejects: [{ eventId: 'example-disclosure', patientRef: 'Patient/example', reason: 'missing-employee-login', column: loginColumn(schema) }],
  }),
  'AuditEvent-example-error.json': () => ({ rows: [], skipped: 'failure-outcome', rejects: [] }),
  'AuditEvent-example-login.json': () => ({ rows: [], skipped: 'no-patient', rejects: [] }),
  // Identifier-only patient, no lookup by identifier: nothing to name the patient with.
  'AuditEvent-example-media.json': (schema) => ({
    rows: [],
    rejects: [{ eventId: 'example-media', patientRef: 'entity[0].what.identifier', reason: 'missing-patient-name', column: firstNameColumn(schema) }],
  }),
  'AuditEvent-example-pixQuery.json': (schema) => ({
    rows: [],
    rejects: [{ eventId: 'example-pixQuery', patientRef: 'entity[0].what.identifier', reason: 'missing-patient-name', column: firstNameColumn(schema) }],
  }),
  // altId "601847123" is not a login under the default (UPN-shaped) rule, and no display name is ever used.
  'AuditEvent-example-rest.json': (schema) => ({
    rows: [],
    rejects: [{ eventId: 'example-rest', patientRef: 'Patient/example', reason: 'missing-employee-login', column: loginColumn(schema) }],
  }),
  'AuditEvent-example-search.json': () => ({ rows: [], skipped: 'no-patient', rejects: [] }),
  'AuditEvent-example.json': () => ({ rows: [], skipped: 'no-patient', rejects: [] }),
};

function loginColumn(schema: 'epic' | 'healthcare'): string {
  return schema === 'epic' ? 'EMP.SYSTEM_LOGIN' : 'Email Address (UPN) or SamAccountName';
}

function firstNameColumn(schema: 'epic' | 'healthcare'): string {
  return schema === 'epic' ? 'PATIENT.PAT_FIRST_NAME' : 'Patient First Name';
}

describe('HL7 R4 example AuditEvents with the built-in mappings', () => {
  const events = fixtureFiles('hl7-r4').filter((name) => name.startsWith('AuditEvent-'));

  it('covers every AuditEvent in the fixture folder', () => {
    expect(events).toEqual(Object.keys(DEFAULT_OUTCOMES).sort());
  });

  for (const schema of ['epic', 'healthcare'] as const) {
    for (const name of events) {
      it(`${schema}: ${name}`, () => {
        const { warnings: _warnings, ...result } = mapEvent(auditEvent('hl7-r4', name), schema === 'epic' ? epic : healthcare, lookup);
        expect(result).toEqual(DEFAULT_OUTCOMES[name]?.(schema));
      });
    }
  }

  it('warns (codes only, no PHI) about an unresolved patient and heuristic employee names', () => {
    expect(mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-media.json'), epic, lookup).warnings).toEqual([
      'unresolved-patient',
      'name-heuristic:employee_last_name',
      'name-heuristic:employee_first_name',
    ]);
  });
});

describe('HL7 R4 examples at a site whose logins are numeric altIds', () => {
  const numericEpic = builtinMapping('epic', { options: { loginRegex: '^[0-9]+$' } });
  const numericHealthcare = builtinMapping('healthcare', { options: { loginRegex: '^[0-9]+$' } });
  // The identifier-only patient "e3cdfc81a0d24bd^^^&2.16.840.1.113883.4.2&ISO" (HL7v2 CX) resolves by identifier.
  const byIdentifier = lookupOf(hl7Resources(), {
    [identifierKey('Patient', 'urn:oid:2.16.840.1.113883.4.2', 'e3cdfc81a0d24bd')]: readFixture('hl7-r4', 'Patient-f001.json'),
  });

  it('example-rest (vread of Patient/example/_history/1) → one Epic row', () => {
    const result = mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-rest.json'), numericEpic, byIdentifier);
    expect(result.rows.map((row) => byColumn(numericEpic, row))).toEqual([
      {
        'ACCESS_LOG.ACCESS_TIME': '2013-06-20T23:42:24Z',
        'ACCESS_LOG_METRIC.METRIC_NAME': 'vread Patient',
        'ACCESS_LOG.WORKSTATION_ID': 'Workstation1.ehr.familyclinic.com',
        'ZC_METRIC_GROUP.NAME': 'Restful Operation',
        'ZC_ACCESS_ACTION.NAME': 'Read/View/Print',
        'PATIENT.PAT_MRN_ID': '12345',
        'PATIENT.PAT_FIRST_NAME': 'Peter',
        'PATIENT.PAT_MIDDLE_NAME': 'James',
        'PATIENT.PAT_LAST_NAME': 'Chalmers',
        'PATIENT.ADD_LINE_1': '534 Erewhon St',
        'PATIENT.ADD_LINE_2': '',
        'PATIENT.CITY': 'PleasantVille',
        'PATIENT.ZIP': '3999',
        'ZC_STATE.NAME': 'Vic',
        'ZC_COUNTRY.NAME': '',
        'CLARITY_DEP.DEPARTMENT_NAME': '',
        'ZC_BTG_REASON.NAME': '',
        'PAT_BTG_AUDIT.BTG_EXPLANATION': '',
        'EMP.SYSTEM_LOGIN': '601847123',
        'CLARITY_EMP.USER_ID': '95',
        employee_last_name: 'Grieve',
        employee_first_name: 'Grahame',
      },
    ]);
    expect(result.rejects).toEqual([]);
    expect(result.warnings).toEqual(['name-heuristic:employee_last_name', 'name-heuristic:employee_first_name']);
    expect(createSerializer(numericEpic).line(result.rows[0] ?? [])).toBe(
      '2013-06-20T23:42:24Z\tvread Patient\tWorkstation1.ehr.familyclinic.com\tRestful Operation\tRead/View/Print\t12345\tPeter\tJames\tChalmers\t' +
        '534 Erewhon St\t\tPleasantVille\t3999\tVic\t\t\t\t\t601847123\t95\tGrieve\tGrahame',
    );
  });

  it('example-rest → one Healthcare row (with Employee User Name)', () => {
    const result = mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-rest.json'), numericHealthcare, byIdentifier);
    expect(result.rows).toEqual([
      [
        '2013-06-20T23:42:24Z',
        'vread Patient',
        'Workstation1.ehr.familyclinic.com',
        'Restful Operation',
        'Read/View/Print',
        '12345',
        'Peter',
        'James',
        'Chalmers',
        '534 Erewhon St',
        '',
        'PleasantVille',
        '3999',
        'Vic',
        '',
        '',
        '',
        '',
        '601847123',
        '601847123',
        '95',
        'Grieve',
        'Grahame',
      ],
    ]);
  });

  it('example-pixQuery: identifier-only patient found by its CX identifier; MRN from the entity identifier', () => {
    const result = mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-pixQuery.json'), numericHealthcare, byIdentifier);
    expect(result.rows.map((row) => byColumn(numericHealthcare, row))).toEqual([
      {
        'Creation Time': '2015-08-26T23:42:24Z',
        'Event Name': 'PIX Query',
        // The requestor has no network; the DCM 110153 agent's machine name (network type 1) is the workstation.
        'Workstation Id': 'Workstation1.ehr.familyclinic.com',
        'Event Section': 'Query',
        'Event Category': 'Execute',
        'Patient Reg Id': 'e3cdfc81a0d24bd',
        'Patient First Name': 'Pieter',
        'Patient Middle Name': '',
        'Patient Last Name': 'van de Heuvel',
        'Patient Address Line 1': 'Van Egmondkade 23',
        'Patient Address Line 2': '',
        'Patient City': 'Amsterdam',
        'Patient Zip Code': '1024 RJ',
        'Patient State': '',
        'Patient Country': 'NLD',
        'Patient Department': '',
        'Restricted Access Reason': '',
        'Restricted Access Comment': '',
        'Email Address (UPN) or SamAccountName': '601847123',
        'Employee User Name': '601847123',
        'Employee Id': '95',
        'Employee Last Name': 'Grieve',
        'Employee First Name': 'Grahame',
      },
    ]);
  });

  it('example-media: same patient by identifier, no workstation (no agent has a machine address)', () => {
    const result = mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-media.json'), numericEpic, byIdentifier);
    expect(result.rows).toEqual([
      [
        '2015-08-27T23:42:24Z',
        'Distribute Document Set on Media',
        '',
        'Export',
        'Read/View/Print',
        'e3cdfc81a0d24bd',
        'Pieter',
        '',
        'van de Heuvel',
        'Van Egmondkade 23',
        '',
        'Amsterdam',
        '1024 RJ',
        '',
        'NLD',
        '',
        '',
        '',
        '601847123',
        '95',
        'Grieve',
        'Grahame',
      ],
    ]);
    expect(byIdentifier.asked).toContain('Patient?identifier=urn:oid:2.16.840.1.113883.4.2|e3cdfc81a0d24bd');
  });

  it('example-disclosure: the two references to Patient/example give one row; login from a UPN-like who.identifier', () => {
    const looseUpn = builtinMapping('healthcare', { options: { loginRegex: '^[^@\\s]+@[^@\\s]+$' } });
    const result = mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-disclosure.json'), looseUpn, byIdentifier);
    expect(result.rows).toEqual([
      [
        '2013-09-22T00:08:00Z',
        'HIPAA disclosure',
        'custodian.net',
        'Export',
        'Read/View/Print',
        '12345',
        'Peter',
        'James',
        'Chalmers',
        '534 Erewhon St',
        '',
        'PleasantVille',
        '3999',
        'Vic',
        '',
        '',
        // purposeOfEvent HMARKT is not break-the-glass: both BTG cells stay empty.
        '',
        '',
        'SomeIdiot@nowhere',
        'notMe',
        'SomeIdiot@nowhere',
        // No Practitioner behind the requestor: agent.name split by the flagged heuristic.
        'caught',
        'That',
      ],
    ]);
  });

  it('example-error: with the failure skip off, the event still has no patient', () => {
    const result = mapEvent(auditEvent('hl7-r4', 'AuditEvent-example-error.json'), builtinMappingWithSkip({ failureOutcome: false }), lookup);
    expect(result).toEqual({ rows: [], skipped: 'no-patient', rejects: [], warnings: [] });
  });

  it('events without a patient are rejected (not skipped) when the no-patient skip is off', () => {
    const mapping = builtinMappingWithSkip({ noPatient: false });
    for (const name of ['AuditEvent-example.json', 'AuditEvent-example-login.json', 'AuditEvent-example-search.json']) {
      const event = auditEvent('hl7-r4', name);
      expect(mapEvent(event, mapping, lookup)).toEqual({ rows: [], rejects: [{ eventId: event.id, reason: 'missing-patient' }], warnings: [] });
    }
  });
});

function builtinMappingWithSkip(skip: Record<string, boolean>): CompiledMapping {
  return compileEpic((spec) => ({ ...spec, skip: { ...(spec['skip'] as object), ...skip } }));
}

function compileEpic(change: (spec: Record<string, unknown>) => Record<string, unknown>): CompiledMapping {
  return compileSpec(change(builtinSpec('epic')));
}
