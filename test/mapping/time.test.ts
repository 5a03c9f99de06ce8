/**
 * Event time (docs/mapping.md §4.1) and its formats (docs/mapping.md §8.1): UTC keeping the fractional seconds exactly
 * as given, the source offset, and wall-clock time in an IANA zone (across DST changes and non-hour offsets).
 */
import type { AuditEvent } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { mapEvent } from '../../src/mapping/index.js';
import { chooseEventTime, formatInstant, type ParsedInstant, parseInstant, parseTimeFormat, type TimeFormat } from '../../src/mapping/time.js';
import { Rng } from '../../src/sandbox/generator-random.js';
import { auditEvent, builtinMapping, hl7Resources, lookupOf } from './support.js';

function format(text: string, timeFormat: string): string {
  const instant = parseInstant(text) as ParsedInstant;
  expect(instant, text).toBeDefined();
  return formatInstant(instant, parseTimeFormat(timeFormat) as TimeFormat);
}

describe('parseInstant', () => {
  it('gives the same instant as Date.parse for runs of times that share an hour, a day or nothing (the hour memo)', () => {
    const rng = new Rng(20261206);
    const two = (n: number): string => String(n).padStart(2, '0');
    let ms = Date.UTC(2024, 2, 9, 22);
    for (let index = 0; index < 5000; index += 1) {
      // Mostly small steps, sometimes a jump back or forward of days: the memo must never answer for another hour.
      ms += rng.next() < 0.9 ? Math.floor(rng.next() * 600_000) : Math.floor((rng.next() - 0.5) * 5 * 86_400_000);
      const offset = [0, -300, -360, 60, 345, 840, -720][Math.floor(rng.next() * 7)] as number;
      const local = new Date(ms + offset * 60_000).toISOString().slice(0, 19);
      const zone = offset === 0 ? 'Z' : `${offset < 0 ? '-' : '+'}${two(Math.floor(Math.abs(offset) / 60))}:${two(Math.abs(offset) % 60)}`;
      const millis = String(ms % 1000).padStart(3, '0');
      const text = `${local}.${millis}${zone}`;
      expect(parseInstant(text)?.epochMs, text).toBe(Date.parse(text));
    }
  });
});

describe('time formats', () => {
  it('iso-utc converts the offset and keeps the fraction verbatim (no Date rounding)', () => {
    expect(format('2012-10-25T22:04:27+11:00', 'iso-utc')).toBe('2012-10-25T11:04:27Z');
    expect(format('2024-03-19T06:45:00.123456789-05:00', 'iso-utc')).toBe('2024-03-19T11:45:00.123456789Z');
    expect(format('2023-12-31T23:30:00.5-01:00', 'iso-utc')).toBe('2024-01-01T00:30:00.5Z');
    expect(format('2024-02-29T00:15:00.000+05:45', 'iso-utc')).toBe('2024-02-28T18:30:00.000Z');
    expect(format('2024-03-19T06:45:00.999999Z', 'iso-utc')).toBe('2024-03-19T06:45:00.999999Z');
  });

  it('iso-offset keeps the source text', () => {
    expect(format('2012-10-25T22:04:27+11:00', 'iso-offset')).toBe('2012-10-25T22:04:27+11:00');
    expect(format('2024-03-19T06:45:00.1234-05:00', 'iso-offset')).toBe('2024-03-19T06:45:00.1234-05:00');
  });

  it('local:<zone> gives wall-clock time without an offset', () => {
    expect(format('2012-10-25T22:04:27+11:00', 'local:Australia/Sydney')).toBe('2012-10-25T22:04:27');
    expect(format('2024-03-19T06:45:00.123456789-05:00', 'local:America/New_York')).toBe('2024-03-19T07:45:00.123456789');
    expect(format('2024-01-01T00:00:00Z', 'local:Asia/Kathmandu')).toBe('2024-01-01T05:45:00');
    expect(format('2024-07-01T12:00:00Z', 'local:UTC')).toBe('2024-07-01T12:00:00');
  });

  it('local:<zone> follows a DST change to the second', () => {
    expect(format('2024-03-31T00:59:59.75Z', 'local:Europe/Oslo')).toBe('2024-03-31T01:59:59.75');
    expect(format('2024-03-31T01:00:00Z', 'local:Europe/Oslo')).toBe('2024-03-31T03:00:00');
    expect(format('2024-10-27T00:59:59Z', 'local:Europe/Oslo')).toBe('2024-10-27T02:59:59');
    expect(format('2024-10-27T01:00:00Z', 'local:Europe/Oslo')).toBe('2024-10-27T02:00:00');
  });

  it('reads the last day of every month, 29 February of a leap year, and the ±14:00 offsets', () => {
    for (const text of ['2024-02-29T10:00:00Z', '2000-02-29T10:00:00Z', '2026-01-31T23:59:59Z', '2026-12-31T00:00:00+14:00', '2026-06-30T00:00:00-12:00']) {
      expect(parseInstant(text)?.epochMs, text).toBe(Date.parse(text));
    }
    expect(parseInstant('1900-02-29T10:00:00Z')).toBeUndefined();
  });

  it('rejects what is not a FHIR dateTime with seconds and a zone', () => {
    for (const text of [
      '2012-10-25',
      '2012-10-25T22:04+11:00',
      '2012-10-25T22:04:27',
      '2012-13-01T00:00:00Z',
      '2012-10-25T22:04:27.Z',
      '2012-10-25T22:04:27+1100',
      // A non-digit anywhere in the date or time, control characters included.
      '20x2-10-25T22:04:27Z',
      '2012-1\t-25T22:04:27Z',
      '2012-10-2 T22:04:27Z',
      '2012-10-25T2\n:04:27Z',
      '2012-10-25T22:0x:27Z',
      '2012-10-25T22:04:2-Z',
      // A day the month lacks (Date.UTC would roll it into the next month), and an offset past FHIR's ±14:00.
      '2026-02-29T10:00:00Z',
      '2026-04-31T10:00:00Z',
      '2026-02-30T10:00:00-05:00',
      '2026-11-03T10:00:00+15:00',
      '2026-11-03T10:00:00-14:30',
    ]) {
      expect(parseInstant(text), text).toBeUndefined();
    }
    expect(parseTimeFormat('local:Not/AZone')).toBeUndefined();
    expect(parseTimeFormat('iso')).toBeUndefined();
  });
});

describe('choosing the event time', () => {
  const base = auditEvent('hl7-r4', 'AuditEvent-example-rest.json');

  it('period.start when it has a time, else recorded', () => {
    expect(chooseEventTime({ ...base, period: { start: '2013-06-20T23:40:00.5+02:00' } })?.text).toBe('2013-06-20T23:40:00.5+02:00');
    expect(chooseEventTime({ ...base, period: { start: '2013-06-20' } })?.text).toBe('2013-06-20T23:42:24Z');
    expect(chooseEventTime({ ...base, recorded: 'garbage' })).toBeUndefined();
  });

  it('in rows, per configured format; a missing time rejects the row', () => {
    const event: AuditEvent = { ...base, recorded: '2012-10-25T22:04:27.0405+11:00' };
    const lookup = lookupOf(hl7Resources());
    const cell = (timeFormat: string): string | undefined =>
      mapEvent(event, builtinMapping('epic', { timeFormat, options: { loginRegex: '^[0-9]+$' } }), lookup).rows[0]?.[0];
    expect(cell('iso-utc')).toBe('2012-10-25T11:04:27.0405Z');
    expect(cell('iso-offset')).toBe('2012-10-25T22:04:27.0405+11:00');
    expect(cell('local:America/Chicago')).toBe('2012-10-25T06:04:27.0405');
    for (const recorded of ['', '2012-1\t-25T22:04:27Z']) {
      const undated = mapEvent({ ...base, recorded }, builtinMapping('epic', { options: { loginRegex: '^[0-9]+$' } }), lookup);
      expect(undated.rejects, JSON.stringify(recorded)).toEqual([
        { eventId: 'example-rest', patientRef: 'Patient/example', reason: 'missing-event-time', column: 'ACCESS_LOG.ACCESS_TIME' },
      ]);
    }
  });
});
