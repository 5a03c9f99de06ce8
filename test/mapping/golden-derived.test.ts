/**
 * Golden tests for the Patient and Practitioner fixtures, through events derived from AuditEvent-example-rest.json
 * (cloned, with only the references and purposes changed): text-only CJK names, the maiden name that ended, work
 * e-mail logins, break-the-glass, fan-out over several patients, and the requestor skip rules.
 */
import type { AuditEvent, AuditEventAgent, FhirResource, Patient } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { mapEvent } from '../../src/mapping/index.js';
import { identifierKey } from '../../src/reference-keys.js';
import { auditEvent, builtinMapping, hl7Resources, lookupOf, readFixture } from './support.js';

const AR = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const numeric = { loginRegex: '^[0-9]+$' };

/** example-rest with its patient entity and requestor replaced. */
function restEvent(change: { patients?: string[]; requestor?: Partial<AuditEventAgent>; recorded?: string } = {}): AuditEvent {
  const event = structuredClone(auditEvent('hl7-r4', 'AuditEvent-example-rest.json'));
  if (change.patients) event.entity = change.patients.map((reference) => ({ what: { reference } }));
  if (change.requestor) event.agent[0] = { ...(event.agent[0] as AuditEventAgent), ...change.requestor };
  if (change.recorded) event.recorded = change.recorded;
  return event;
}

describe('Patient-ch-example and Practitioner-f001: CJK text-only name, work e-mail login, break-the-glass', () => {
  const event = restEvent({
    patients: ['Patient/ch-example'],
    requestor: {
      who: { reference: 'Practitioner/f001' },
      purposeOfUse: [
        { coding: [{ system: AR, code: 'BTG', display: 'break the glass' }], text: 'Patient unconscious in ED' },
        { coding: [{ system: AR, code: 'ETREAT', display: 'Emergency Treatment' }] },
      ],
    },
  });

  it('epic row', () => {
    const result = mapEvent(event, builtinMapping('epic'), lookupOf(hl7Resources()));
    expect(result.rows).toEqual([
      [
        '2013-06-20T23:42:24Z',
        'vread Patient',
        'Workstation1.ehr.familyclinic.com',
        'Restful Operation',
        'Read/View/Print',
        '3112219680806371X',
        // "张无忌" is text only: the whole text goes to the last name, the first name stays empty (never split).
        '',
        '',
        '张无忌',
        '马当路190号',
        '',
        '上海市',
        '200000',
        '',
        '',
        '',
        // The BTG purpose's sibling names the category; the BTG concept's own text is the explanation.
        'Emergency Treatment',
        'Patient unconscious in ED',
        // altId "601847123" is not a login; the Practitioner's work e-mail is.
        'E.M.vandenbroek@bmc.nl',
        // No requestor identifier and no configured user-id system: the Practitioner's id, flagged.
        'f001',
        'van den broek',
        'Eric',
      ],
    ]);
    expect(result.warnings).toEqual(['name-text-only:PATIENT.PAT_LAST_NAME', 'user-id-fallback:CLARITY_EMP.USER_ID', 'empty-mandatory:PATIENT.PAT_FIRST_NAME']);
  });

  it('healthcare row', () => {
    expect(mapEvent(event, builtinMapping('healthcare'), lookupOf(hl7Resources())).rows).toEqual([
      [
        '2013-06-20T23:42:24Z',
        'vread Patient',
        'Workstation1.ehr.familyclinic.com',
        'Restful Operation',
        'Read/View/Print',
        '3112219680806371X',
        '',
        '',
        '张无忌',
        '马当路190号',
        '',
        '上海市',
        '200000',
        '',
        '',
        '',
        'Emergency Treatment',
        'Patient unconscious in ED',
        'E.M.vandenbroek@bmc.nl',
        '601847123',
        'f001',
        'van den broek',
        'Eric',
      ],
    ]);
  });

  it('strict mode rejects the row for its empty mandatory first name', () => {
    expect(mapEvent(event, builtinMapping('epic', { strict: true }), lookupOf(hl7Resources())).rejects).toEqual([
      { eventId: 'example-rest', patientRef: 'Patient/ch-example', reason: 'empty-mandatory', column: 'PATIENT.PAT_FIRST_NAME' },
    ]);
  });
});

describe('Practitioner-example: login from a configured identifier system; DICOM emergency override', () => {
  it('a Security Alert / Emergency Override Started event without a stated reason', () => {
    const event = restEvent({ patients: ['Patient/example'], requestor: { who: { reference: 'Practitioner/example' } } });
    event.type = { system: DCM, code: '110113', display: 'Security Alert' };
    event.subtype = [{ system: DCM, code: '110127', display: 'Emergency Override Started' }];
    event.action = 'E';
    const site = builtinMapping('epic', {
      options: { loginSystems: ['http://www.acme.org/practitioners'], userIdSystems: ['http://www.acme.org/practitioners'] },
    });
    expect(mapEvent(event, site, lookupOf(hl7Resources())).rows).toEqual([
      [
        '2013-06-20T23:42:24Z',
        'Emergency Override Started',
        'Workstation1.ehr.familyclinic.com',
        'Security Alert',
        'Execute',
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
        // docs/mapping.md §6.2, §9.3: the one permitted stand-in, for a BTG that names no reason.
        'Emergency Override',
        '',
        '23',
        '23',
        'Careful',
        'Adam',
      ],
    ]);
  });
});

describe('Patient-example: the name valid at the event time', () => {
  const example = readFixture<Patient>('hl7-r4', 'Patient-example.json');
  const maidenOnly: Patient = { ...example, id: 'maiden-only', name: (example.name ?? []).filter((name) => name.use === 'maiden') };
  const lookup = lookupOf([example, maidenOnly]);
  const mapping = builtinMapping('epic', { options: numeric });
  const names = (recorded: string, patient: string): unknown => {
    const result = mapEvent(restEvent({ patients: [patient], recorded }), mapping, lookup);
    return result.rows.length > 0 ? result.rows[0]?.slice(6, 9) : result.rejects;
  };

  it('official beats the maiden name while both are valid', () => {
    expect(names('2001-06-01T12:00:00Z', 'Patient/example')).toEqual(['Peter', 'James', 'Chalmers']);
  });

  it('the maiden name (period.end "2002") is valid through the last instant of 2002 and not after', () => {
    expect(names('2002-12-31T23:59:59Z', 'Patient/maiden-only')).toEqual(['Peter', 'James', 'Windsor']);
    expect(names('2003-01-01T00:00:00Z', 'Patient/maiden-only')).toEqual([
      { eventId: 'example-rest', patientRef: 'Patient/maiden-only', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
    ]);
  });

  it('events that go back and forth across a period bound each get the name valid at their own time (the view cache switches)', () => {
    const maiden = ['Peter', 'James', 'Windsor'];
    const missing = [{ eventId: 'example-rest', patientRef: 'Patient/maiden-only', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' }];
    for (let round = 0; round < 3; round += 1) {
      expect(names('2002-12-31T23:59:59Z', 'Patient/maiden-only'), `round ${round}`).toEqual(maiden);
      expect(names('2003-01-01T00:00:00Z', 'Patient/maiden-only'), `round ${round}`).toEqual(missing);
      expect(names('2002-12-31T23:59:59.999+00:00', 'Patient/maiden-only'), `round ${round}`).toEqual(maiden);
      expect(names('2003-01-01T00:59:59+01:00', 'Patient/maiden-only'), `round ${round}`).toEqual(maiden);
      // The bound itself, written in another offset: 01:00+01:00 is 00:00Z, the first instant after 2002.
      expect(names('2003-01-01T01:00:00+01:00', 'Patient/maiden-only'), `round ${round}`).toEqual(missing);
    }
  });

  it('the home address (period.start 1974-12-25) is not used for an earlier event, and the MR identifier neither', () => {
    const result = mapEvent(restEvent({ patients: ['Patient/example'], recorded: '1974-12-24T12:00:00Z' }), mapping, lookup);
    expect(result.rows[0]?.slice(5, 15)).toEqual(['', 'Peter', 'James', 'Chalmers', '', '', '', '', '', '']);
    expect(result.warnings).toContain('empty-mandatory:PATIENT.ZIP');
  });
});

describe('patients and requestors', () => {
  const lookup = lookupOf(hl7Resources());
  const mapping = builtinMapping('epic', { options: numeric });

  it('fans out: one row per distinct patient, in entity order', () => {
    const event = restEvent({ patients: ['Patient/f001', 'Patient/example', 'Patient/example/_history/1'] });
    expect(mapEvent(event, mapping, lookup).rows.map((row) => row[8])).toEqual(['van de Heuvel', 'Chalmers']);
  });

  it('one patient named twice, by reference and by its MRN identifier, makes one row', () => {
    const event = restEvent({ patients: ['Patient/example'] });
    const mrn = { use: 'usual' as const, system: 'urn:oid:1.2.36.146.595.217.0.1', value: '12345' };
    event.entity = [...(event.entity ?? []), { what: { identifier: mrn, type: 'Patient' } }];
    const byIdentifier = lookupOf(hl7Resources(), { [identifierKey('Patient', mrn.system, mrn.value)]: lookup.get('Patient/example') as Patient });
    const result = mapEvent(event, mapping, byIdentifier);
    expect(result.rows.map((row) => row[8])).toEqual(['Chalmers']);
    expect(result.rejects).toEqual([]);
  });

  it('an entity in the patient role that names a Group is no patient: its display never becomes a name', () => {
    const event = restEvent();
    const role = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' };
    event.entity = [{ what: { reference: 'Group/g1', display: 'Ward 4 census' }, role }];
    expect(mapEvent(event, mapping, lookup)).toMatchObject({ rows: [], skipped: 'no-patient' });
    event.entity = [...event.entity, { what: { reference: 'Patient/example' }, role }];
    expect(mapEvent(event, mapping, lookup).rows.map((row) => row[8])).toEqual(['Chalmers']);
  });

  it('a display-only patient keeps the display as an unsplit name', () => {
    const event = restEvent();
    event.entity = [{ what: { display: 'Peter Chalmers' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }];
    const result = mapEvent(event, mapping, lookup);
    expect(result.rows[0]?.slice(5, 10)).toEqual(['', '', '', 'Peter Chalmers', '']);
    expect(result.warnings).toContain('unresolved-patient');
  });

  it('skips an event requested by the patient (a portal user)', () => {
    const event = restEvent({ requestor: { who: { reference: 'Patient/example' }, type: undefined } });
    expect(mapEvent(event, mapping, lookup)).toEqual({ rows: [], skipped: 'patient-requestor', rejects: [], warnings: [] });
  });

  it('skips an event whose only requestor is a device', () => {
    const event = restEvent({ requestor: { who: { reference: 'Device/interface-engine' }, type: undefined } });
    expect(mapEvent(event, mapping, lookup)).toEqual({ rows: [], skipped: 'non-human-requestor', rejects: [], warnings: [] });
  });

  it('attributes to a human agent when nothing is flagged as requestor', () => {
    const event = restEvent({ requestor: { requestor: false } });
    expect(mapEvent(event, mapping, lookup).rows[0]?.[18]).toBe('601847123');
  });

  it('warns when several agents claim to be the requestor, and uses the first', () => {
    const event = restEvent();
    event.agent = [...event.agent, { requestor: true, altId: '777', who: { reference: 'Practitioner/example' } } as AuditEventAgent];
    const result = mapEvent(event, mapping, lookup);
    expect(result.rows[0]?.[18]).toBe('601847123');
    expect(result.warnings).toContain('multiple-requestors');
  });
});

describe('reference lookups', () => {
  it('asks the lookup with normalised keys only (absolute and versioned references)', () => {
    const lookup = lookupOf(hl7Resources() as FhirResource[]);
    mapEvent(restEvent({ patients: ['https://ehr.example.org/fhir/Patient/example/_history/3'] }), builtinMapping('epic'), lookup);
    expect(lookup.asked).toEqual(['Practitioner?identifier=|95', 'Patient/example']);
  });
});
