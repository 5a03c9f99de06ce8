/** FHIR instants as numbers: offsets honoured, an instant without one read as UTC on every machine. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instantMs } from '../../src/fhir/index.js';

describe('instantMs', () => {
  // In this machine's own zone (UTC here and in CI) the check below could not fail: run it in a zone with an offset.
  let zone: string | undefined;
  beforeAll(() => {
    zone = process.env['TZ'];
    process.env['TZ'] = 'America/Chicago';
  });
  afterAll(() => {
    if (zone === undefined) delete process.env['TZ'];
    else process.env['TZ'] = zone;
  });

  it("honours offsets, reads an instant without one as UTC (not this machine's zone), and refuses nonsense", () => {
    expect(Date.parse('2026-11-01T10:00:00')).not.toBe(Date.parse('2026-11-01T10:00:00Z'));
    expect(instantMs('2026-11-01T23:30:00-05:00')).toBe(Date.parse('2026-11-02T04:30:00Z'));
    expect(instantMs('2026-11-01T10:00:00.123+0100')).toBe(Date.parse('2026-11-01T09:00:00.123Z'));
    expect(instantMs('2026-11-01T10:00:00')).toBe(Date.parse('2026-11-01T10:00:00Z'));
    expect(instantMs('2026-11-01')).toBe(Date.parse('2026-11-01T00:00:00Z'));
    expect([instantMs(undefined), instantMs('yesterday')]).toEqual([undefined, undefined]);
    expect(instantMs('2026-11-01T10:00')).toBe(Date.parse('2026-11-01T10:00:00Z'));
  });

  it('is no instant for shapes Date.parse would read in the local zone, so no machine files them under its own day', () => {
    // Each of these is a local time to Date.parse: the claim's day would depend on the machine's zone.
    for (const text of ['2026-11-01 20:00:00', '2026-11-01 20:00:00Z ', 'Nov 1 2026 20:00', '11/01/2026 20:00:00', '2026-11-01T20:00:00 CST', '2026/11/01']) {
      expect(instantMs(text), text).toBeUndefined();
    }
  });
});
