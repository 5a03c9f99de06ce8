/**
 * Golden tests over the HL7 Norway AuditEvent IG instances (test/fixtures/hl7norway): contained Practitioner,
 * PractitionerRole, Organization, Encounter and Patient; the patient through an extension; text-only practitioner
 * names; the patient number in Identifier.id (never read); non-ASCII department names.
 */
import { describe, expect, it } from 'vitest';
import { type CompiledMapping, collectReferences, mapEvent } from '../../src/mapping/index.js';
import { auditEvent, builtinMapping, builtinSpec, compileSpec, fixtureFiles, lookupOf } from './support.js';

const INSTANCES = ['AuditEvent-NOBasisAuditeventInstance1.json', 'AuditEvent-NOBasisAuditeventInstance2.json', 'AuditEvent-NOBasisAuditeventInstance3.json'];
const nothing = lookupOf([]);

/** A site that keeps the login in the HPR number system and accepts rows without patient names (to see the rest). */
function hprSite(schema: 'epic' | 'healthcare', options: Record<string, unknown> = {}): CompiledMapping {
  const spec = builtinSpec(schema);
  return compileSpec({
    ...spec,
    options: { ...spec.options, loginSystems: ['urn:oid:2.16.578.1.12.4.1.4.4'], ...options },
    columns: spec.columns.map((column) => (column['critical'] === 'patient-name' ? { ...column, critical: undefined } : column)),
  });
}

describe('HL7 Norway instances with the built-in mappings', () => {
  it('covers every file in the folder', () => {
    expect(fixtureFiles('hl7norway')).toEqual(INSTANCES);
  });

  for (const schema of ['epic', 'healthcare'] as const) {
    const mapping = builtinMapping(schema);
    INSTANCES.forEach((name, index) => {
      it(`${schema}: ${name} is rejected: the contained patient has no name`, () => {
        const result = mapEvent(auditEvent('hl7norway', name), mapping, nothing);
        expect(result.rows).toEqual([]);
        expect(result.skipped).toBeUndefined();
        expect(result.rejects).toEqual([
          {
            eventId: `NOBasisAuditeventInstance${index + 1}`,
            patientRef: `#PatientInstance${index + 1}`,
            reason: 'missing-patient-name',
            column: schema === 'epic' ? 'PATIENT.PAT_FIRST_NAME' : 'Patient First Name',
          },
        ]);
        // The national id sits in Identifier.id: reported, never used as the MRN.
        expect(result.warnings).toContain(schema === 'epic' ? 'identifier-value-in-id:PATIENT.PAT_MRN_ID' : 'identifier-value-in-id:Patient Reg Id');
      });
    });
  }

  it('asks the pull for nothing: every reference is contained', () => {
    for (const name of INSTANCES) {
      expect(collectReferences(auditEvent('hl7norway', name), builtinMapping('epic'))).toEqual({ keys: [], identifiers: [] });
    }
  });
});

describe('HL7 Norway instances at a site with HPR-number logins', () => {
  it('Instance1 (epic): department from the contained Encounter.serviceProvider, employee via PractitionerRole', () => {
    const result = mapEvent(auditEvent('hl7norway', INSTANCES[0] as string), hprSite('epic'), nothing);
    expect(result.rows).toEqual([
      [
        '2024-03-19T06:45:00.000Z',
        'Patient Record',
        '',
        'Patient Record',
        'Read/View/Print',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        'Øye dagkir/pol 1. etasje',
        // purposeOfEvent TREAT + a local code: not break-the-glass.
        '',
        '',
        '9144897',
        '',
        // Text-only practitioner name: kept whole in the last name, never split.
        'August September',
        '',
      ],
    ]);
    expect(result.warnings).toEqual([
      'identifier-value-in-id:PATIENT.PAT_MRN_ID',
      'name-text-only:employee_last_name',
      'empty-mandatory:PATIENT.PAT_FIRST_NAME',
      'empty-mandatory:PATIENT.PAT_LAST_NAME',
      'empty-mandatory:PATIENT.ADD_LINE_1',
      'empty-mandatory:PATIENT.CITY',
      'empty-mandatory:PATIENT.ZIP',
    ]);
  });

  it('Instance2 (healthcare): no encounter department, so the PractitionerRole organization', () => {
    const result = mapEvent(auditEvent('hl7norway', INSTANCES[1] as string), hprSite('healthcare'), nothing);
    expect(result.rows).toEqual([
      [
        '2024-03-19T06:45:00.000Z',
        'Patient Record',
        '',
        'Patient Record',
        'Read/View/Print',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        'Norsk Helsenett SF Fagersta Testlegekontor',
        '',
        '',
        '9144897',
        '',
        '',
        'August September',
        '',
      ],
    ]);
  });

  it('Instance3 (epic and healthcare): another practitioner and organization', () => {
    expect(mapEvent(auditEvent('hl7norway', INSTANCES[2] as string), hprSite('epic'), nothing).rows).toEqual([
      [
        '2024-03-19T06:45:00.000Z',
        'Patient Record',
        '',
        'Patient Record',
        'Read/View/Print',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        'OSLO KOMMUNE HELSEETATEN',
        '',
        '',
        '9144900',
        '',
        'Rita Lin',
        '',
      ],
    ]);
    expect(mapEvent(auditEvent('hl7norway', INSTANCES[2] as string), hprSite('healthcare'), nothing).rows).toEqual([
      [
        '2024-03-19T06:45:00.000Z',
        'Patient Record',
        '',
        'Patient Record',
        'Read/View/Print',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        'OSLO KOMMUNE HELSEETATEN',
        '',
        '',
        '9144900',
        '',
        '',
        'Rita Lin',
        '',
      ],
    ]);
  });

  it('department source order is configurable: user-side first gives the PractitionerRole organization', () => {
    const userFirst = hprSite('epic', { departmentSources: ['practitioner-role-organization', 'encounter-service-provider'] });
    const row = mapEvent(auditEvent('hl7norway', INSTANCES[0] as string), userFirst, nothing).rows[0];
    expect(row?.[15]).toBe('Anestesiologi Seksjon RH');
  });

  it('the Norway patient extension is configurable: without it, the events have no patient', () => {
    const noExtension = hprSite('epic', { patientExtensionUrls: [] });
    expect(mapEvent(auditEvent('hl7norway', INSTANCES[0] as string), noExtension, nothing)).toEqual({
      rows: [],
      skipped: 'no-patient',
      rejects: [],
      warnings: [],
    });
  });
});
