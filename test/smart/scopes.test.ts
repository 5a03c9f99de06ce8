/** Lenient granted-scope comparison: Epic's prefix-less echo, v1/v2 equivalence, wildcards and real shortfalls. */
import { describe, expect, it } from 'vitest';
import { scopesNotGranted } from '../../src/smart/index.js';

const REQUESTED = 'system/AuditEvent.read system/Patient.read system/Practitioner.read';

describe('scopesNotGranted', () => {
  it.each([
    ['Epic style without system/', 'AuditEvent.read Patient.read Practitioner.read', []],
    ['exactly as requested', REQUESTED, []],
    ['v2 .rs for v1 .read', 'system/AuditEvent.rs system/Patient.rs system/Practitioner.cruds', []],
    ['a resource wildcard', 'system/*.read', []],
    ['no scope in the response (RFC 6749 §5.1: as requested)', undefined, []],
    ['one resource missing', 'AuditEvent.read Patient.read', ['system/Practitioner.read']],
    ['search without read', 'system/AuditEvent.s Patient.read Practitioner.read', ['system/AuditEvent.read']],
    ['a different context', 'patient/AuditEvent.read Patient.read Practitioner.read', ['system/AuditEvent.read']],
    ['v2 read and search granted apart (their union)', 'system/AuditEvent.r system/AuditEvent.s Patient.r *.s Practitioner.read', []],
    ['read and search split across contexts', 'patient/AuditEvent.r system/AuditEvent.s Patient.read Practitioner.read', ['system/AuditEvent.read']],
    [
      'a v2 grant restricted to some events (the server filters the rest)',
      'system/AuditEvent.rs?type=http://dicom.nema.org/resources/ontology/DCM|110110 Patient.read Practitioner.read',
      ['system/AuditEvent.read'],
    ],
    ['restricted grants beside a whole one', 'system/AuditEvent.rs?type=x system/AuditEvent.rs system/Patient.rs?category=y *.read', []],
    ['nothing', '', ['system/AuditEvent.read', 'system/Patient.read', 'system/Practitioner.read']],
  ] as const)('%s', (_name, granted, missing) => {
    expect(scopesNotGranted(REQUESTED, granted)).toEqual(missing);
  });

  it('compares non-resource scopes exactly and v2 requests against v1 grants', () => {
    expect(scopesNotGranted('openid fhirUser system/Patient.rs', 'openid Patient.read')).toEqual(['fhirUser']);
    expect(scopesNotGranted('system/Patient.cruds', 'Patient.read')).toEqual(['system/Patient.cruds']);
    expect(scopesNotGranted('system/Observation.rs?category=vital-signs', 'system/Observation.rs?category=vital-signs')).toEqual([]);
  });
});
