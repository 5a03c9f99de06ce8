import { describe, expect, it } from 'vitest';
import { createServerClock } from '../../src/fhir/server-clock.js';
import { ManualClock } from '../support/manual-clock.js';

describe('the FHIR server clock read from Date headers', () => {
  it('reads an HTTP-date as late as it allows, carries it forward by the local clock, and ignores what is no HTTP-date or came from a cache', async () => {
    const local = new ManualClock('2026-12-07T11:40:00.000Z');
    const server = createServerClock(local);
    expect(server.now()).toBeUndefined();
    server.observe(undefined);
    server.observe('yesterday');
    server.observe('2026-12-07T11:00:00Z');
    // Date.parse alone reads "12 GMT" as December 2001.
    server.observe('12 GMT');
    // An answer a cache kept says when it was made, not the time now.
    server.observe('Mon, 07 Dec 2026 10:00:00 GMT', '3600');
    expect(server.now()).toBeUndefined();
    // Twenty minutes behind this host; the header drops the fraction, so up to 999 ms later.
    server.observe('Mon, 07 Dec 2026 11:20:00 GMT');
    expect(new Date(server.now() ?? 0).toISOString()).toBe('2026-12-07T11:20:00.999Z');
    await local.advance(60_000);
    expect(new Date(server.now() ?? 0).toISOString()).toBe('2026-12-07T11:21:00.999Z');
    // The latest answer counts; a repeated header (an array) is read by its first value.
    server.observe(['Mon, 07 Dec 2026 11:41:05 GMT', 'garbage']);
    expect(new Date(server.now() ?? 0).toISOString()).toBe('2026-12-07T11:41:05.999Z');
  });
});
