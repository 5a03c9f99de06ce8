/** Lookup keys as FHIR token search matches identifiers: `system|value`, and a bare value against any system. */
import { describe, expect, it } from 'vitest';
import { identifierKey, identifierKeysOf } from '../src/reference-keys.js';

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
