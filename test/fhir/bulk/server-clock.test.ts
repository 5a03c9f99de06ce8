/**
 * A FHIR server whose clock went back after an export moved the watermark: its next export's transactionTime is before
 * the `_since` it was asked for. The watermark never moves back, so exports asking from it would skip, for good, what the
 * server stamped since its clock went back. The source warns, and asks from where the server's corrected clock puts the
 * watermark's export.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { expect, it } from 'vitest';
import { captureLogger } from '../../server/support.js';
import { MemoryCheckpoints, startBulkFixture } from './support.js';

const HOUR = 3_600_000;

it("asks again from where the server's corrected clock puts the last export when its clock went back: nothing it stamped meanwhile is lost", async () => {
  // The bridge's clock is right; the server's runs four days ahead until NTP steps it back.
  const start = Date.parse('2026-11-05T12:00:00.000Z');
  let bridgeNow = start;
  let serverAhead = 4 * 24 * HOUR;
  const bridgeClock = { now: () => bridgeNow, sleep: async () => undefined };
  const f = await startBulkFixture(
    { events: 5, patients: 2, practitioners: 2 },
    { clock: { now: () => bridgeNow + serverAhead, sleep: async () => undefined } },
  );
  const { logger, lines } = captureLogger();
  const store = new MemoryCheckpoints();
  const source = () => f.source({ store, logger, clock: bridgeClock });
  try {
    const first = source();
    await first.read();
    const t1 = first.source.coveredUntil() as string;
    expect(t1).toBe(new Date(start + serverAhead).toISOString());
    // Half an hour later the server's clock is set right, and it records an access stamped with the right time.
    serverAhead = 0;
    bridgeNow += HOUR / 2;
    const late: AuditEvent = {
      ...structuredClone(f.data.events[0] as AuditEvent),
      id: 'stamped-after-the-step',
      meta: { versionId: '1', lastUpdated: new Date(bridgeNow).toISOString() },
    };
    await f.fx.backend.load([late]);
    bridgeNow += HOUR / 2;
    const window = () => ({ since: new Date(Date.parse(t1) - 900_000).toISOString(), until: new Date(bridgeNow).toISOString(), dedupeBefore: t1 });
    // The next run asks from the watermark: the export ends before it, and says so.
    const second = source();
    expect(await second.read(window())).toEqual([]);
    const t2 = second.source.coveredUntil() as string;
    expect(t2).toBe(new Date(start + HOUR).toISOString());
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, since: t1, transactionTime: t2, msg: expect.stringContaining('its clock went back') }));
    // The run after (the watermark still t1) asks from the first export's time by the server's clock now, less the overlap.
    bridgeNow += HOUR;
    const third = source();
    const events = await third.read(window());
    const asked = new Date(start - 15 * 60_000).toISOString();
    expect(f.fx.server.bulk.log.kickoffs.map((k) => k.since)).toEqual([undefined, t1, asked]);
    expect(events.map((e) => e.id)).toContain('stamped-after-the-step');
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, watermark: t1, since: asked }));
    // Still behind the watermark an hour later: the next export asks from where that one ended (less the overlap), not
    // from the same point again, so the exports do not grow until the server's clock passes the watermark.
    const t3 = third.source.coveredUntil() as string;
    bridgeNow += HOUR;
    await source().read(window());
    expect(f.fx.server.bulk.log.kickoffs.at(-1)?.since).toBe(new Date(Date.parse(t3) - 15 * 60_000).toISOString());
  } finally {
    await f.close();
  }
});
