/**
 * docs/mapping.md §5.1: `period.end` is inclusive at its own precision. An end written to the second (as Epic writes
 * instants, in its local offset) covers that whole second, and one with a fraction the span of its last digit: an
 * access later in that second (or that tenth) still shows the address that ends there.
 */
import type { Address, AuditEvent, Patient } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { mapEvent } from '../../src/mapping/index.js';
import { isValidAt, upperBound } from '../../src/mapping/validity.js';
import { builtinMapping, lookupOf } from './support.js';

const OLD_CITY = 'Burlington';
const NEW_CITY = 'Austin';

/** Moved at the end of the repeated 01:30 of the US fall back (EST, the second pass). */
function movedAt(end: string, start: string): Patient {
  const address = (city: string, period: Address['period']): Address => ({ use: 'home', line: ['1 Main St'], city, postalCode: '05401', period });
  return {
    resourceType: 'Patient',
    id: 'moved',
    identifier: [{ type: { text: 'EPI' }, system: 'urn:oid:1.2.840.114350.1.13.999.2.7.5.737384.14', value: '000123' }],
    name: [{ use: 'official', family: 'Davis', given: ['Nancy'] }],
    address: [address(OLD_CITY, { end }), address(NEW_CITY, { start })],
  };
}

function cityAt(patient: Patient, recorded: string): string | undefined {
  const mapping = builtinMapping('epic');
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    id: 'ae-dst',
    recorded,
    action: 'R',
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110', display: 'Patient Record' },
    source: { observer: { display: 'Epic' } },
    agent: [{ requestor: true, who: { identifier: { system: 'urn:oid:1.2.840.114350.1.13.999.3.7.2.697780', value: 'E1000' } }, altId: 'NWHITE' }],
    entity: [{ what: { reference: 'Patient/moved' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }],
  };
  const result = mapEvent(event, mapping, lookupOf([patient]));
  const column = mapping.columns.findIndex((entry) => entry.name === 'PATIENT.CITY');
  return result.rows[0]?.[column];
}

describe('period.end at its own precision (docs/mapping.md §5.1)', () => {
  it('keeps an address that ends at a second valid for the rest of that second, whatever the offset it is written in', () => {
    const patient = movedAt('2026-11-01T01:30:00-06:00', '2026-11-01T01:30:01-06:00');
    expect(cityAt(patient, '2026-11-01T01:30:00.400-06:00')).toBe(OLD_CITY);
    // The same instant written in UTC and in the other offset of the fall back.
    expect(cityAt(patient, '2026-11-01T07:30:00.999Z')).toBe(OLD_CITY);
    expect(cityAt(patient, '2026-11-01T02:30:00.5-05:00')).toBe(OLD_CITY);
    expect(cityAt(patient, '2026-11-01T01:30:01-06:00')).toBe(NEW_CITY);
  });

  it('ends a bound with a fraction after the span of its last digit', () => {
    expect(upperBound('2026-11-01T01:30:00-05:00')).toBe(Date.parse('2026-11-01T06:30:01Z'));
    expect(upperBound('2026-11-01T01:30:00.5-05:00')).toBe(Date.parse('2026-11-01T06:30:00.600Z'));
    expect(upperBound('2026-11-01T01:30:00.25-05:00')).toBe(Date.parse('2026-11-01T06:30:00.260Z'));
    expect(upperBound('2026-11-01T01:30:00.250Z')).toBe(Date.parse('2026-11-01T01:30:00.251Z'));
    // Past milliseconds the event's own time is truncated to them too: the next millisecond.
    expect(upperBound('2026-11-01T01:30:00.2501-05:00')).toBe(Date.parse('2026-11-01T06:30:00.251Z'));
    expect(isValidAt({ end: '2026-11-01T01:30:00.5-05:00' }, Date.parse('2026-11-01T06:30:00.599Z'))).toBe(true);
    expect(isValidAt({ end: '2026-11-01T01:30:00.5-05:00' }, Date.parse('2026-11-01T06:30:00.600Z'))).toBe(false);
  });
});
