import type { Patient } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { StringInterner } from '../../src/fhir/intern.js';

/** A fresh parse, like each Bundle entry: equal strings, separate copies. */
const patient = (id: string, family: string): Patient =>
  JSON.parse(
    JSON.stringify({
      resourceType: 'Patient',
      id,
      identifier: [
        {
          use: 'usual',
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }], text: 'EPI' },
          system: 'urn:oid:1.2.3',
          value: `MRN-${id}`,
        },
      ],
      generalPractitioner: [{ reference: 'Practitioner/gp-1', display: 'Dr Ola Nordmann' }],
      name: [{ use: 'official', family, given: ['Ana'], text: `Ana ${family}` }],
      address: [{ use: 'home', type: 'both', city: 'Verona', state: 'WI', country: 'US', line: ['1 Main St'] }],
    }),
  ) as Patient;

describe('StringInterner', () => {
  it('makes vocabulary values resolve to one table entry and leaves names, identifiers and free text as they are', () => {
    const interner = new StringInterner();
    const a = interner.internAll(patient('a', 'Jensen'));
    const b = interner.internAll(patient('b', 'Jensen'));
    expect(b).toEqual(patient('b', 'Jensen')); // content unchanged
    // Vocabulary: system, code, use, type, state, country, resourceType, a Coding's display and a concept's text ("EPI").
    // Not a Reference's display: that is a person's name.
    const vocabulary = [
      'Patient',
      'usual',
      'http://terminology.hl7.org/CodeSystem/v2-0203',
      'MR',
      'Medical record number',
      'EPI',
      'urn:oid:1.2.3',
      'official',
      'home',
      'both',
      'WI',
      'US',
    ];
    expect(interner.size).toBe(vocabulary.length);
    // Exactly these: ids, identifier values, names, city and address lines (person data, high cardinality) would each add an entry.
    expect(a.name?.[0]?.family).toBe('Jensen');
  });

  it('stops walking past a nesting depth no FHIR resource reaches, instead of overflowing the stack', () => {
    let deep: Record<string, unknown> = { system: 'urn:deepest' };
    for (let i = 0; i < 100_000; i += 1) deep = { extension: [deep] };
    const interner = new StringInterner();
    expect(() => interner.internAll(deep)).not.toThrow();
    expect(interner.size).toBe(0);
  });

  it('stops adding once the table is full and still returns every resource intact', () => {
    const interner = new StringInterner(3);
    const resource = interner.internAll(patient('c', 'Hansen'));
    expect(interner.size).toBe(3);
    expect(resource).toEqual(patient('c', 'Hansen'));
  });
});
