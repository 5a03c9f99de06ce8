/** Lookup keys as FHIR token search matches identifiers: `system|value`, and a bare value against any system. */
import { describe, expect, it } from 'vitest';
import { followedIdentifiers, identifierKey, identifierKeysOf } from '../src/reference-keys.js';

describe('identifierKeysOf', () => {
  it('gives system|value and the bare value of each identifier, and skips identifiers without a value', () => {
    const keys = identifierKeysOf({
      resourceType: 'Practitioner',
      identifier: [{ system: 'urn:oid:1.2.3', value: 'EMP1' }, { value: 'jdoe' }, { system: 'urn:oid:9', value: '' }, { system: 'urn:oid:9' }],
    });
    expect(keys).toEqual([
      identifierKey('Practitioner', 'urn:oid:1.2.3', 'EMP1'),
      identifierKey('Practitioner', undefined, 'EMP1'),
      identifierKey('Practitioner', undefined, 'jdoe'),
    ]);
    expect(identifierKeysOf({ resourceType: 'Patient' })).toEqual([]);
  });
});

describe('followedIdentifiers', () => {
  const OWN = 'https://ehr.example.org/fhir/R4';
  const role = (practitioner: Record<string, unknown>) => ({ resourceType: 'PractitionerRole', id: 'r', practitioner });
  const emp = { system: 'urn:oid:1.2.3', value: 'EMP1' };

  it("gives a role's practitioner named by identifier alone, or by another server's reference with an identifier", () => {
    expect(followedIdentifiers(role({ identifier: emp }), OWN)).toEqual([{ type: 'Practitioner', ...emp }]);
    expect(followedIdentifiers(role({ identifier: { value: 'jdoe' } }), OWN)).toEqual([{ type: 'Practitioner', value: 'jdoe' }]);
    expect(followedIdentifiers(role({ reference: 'https://other.example/fhir/Practitioner/9', identifier: emp }), OWN)).toEqual([
      { type: 'Practitioner', ...emp },
    ]);
  });

  it('gives nothing for our own literal reference (followedKeys has it), a contained one, no identifier value, or another type', () => {
    expect(followedIdentifiers(role({ reference: 'Practitioner/pr-1', identifier: emp }), OWN)).toEqual([]);
    expect(followedIdentifiers(role({ reference: '#pr', identifier: emp }), OWN)).toEqual([]);
    expect(followedIdentifiers(role({ identifier: { system: 'urn:oid:1.2.3' } }), OWN)).toEqual([]);
    expect(followedIdentifiers({ resourceType: 'Encounter', practitioner: { identifier: emp } }, OWN)).toEqual([]);
    expect(followedIdentifiers(undefined, OWN)).toEqual([]);
  });
});
