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
  });
});
