/**
 * Two consecutive incremental syncs with events arriving in between — some new, some late (recorded inside the
 * overlap before the first run's watermark): every event is pushed exactly once across both runs.
 */
import type { AuditEvent, Patient, Practitioner } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findConnector, loadConnectorMapping } from '../../src/composition/index.js';
import { createSerializer, mapEvent } from '../../src/mapping/index.js';
import { referenceKey } from '../../src/reference-keys.js';
import { ManualClock } from '../support/manual-clock.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 13, events: 240, patients: 40, practitioners: 6 } });
});
afterAll(async () => h?.close());

const iso = (ms: number): string => new Date(ms).toISOString();

/** A copy of a generated event under a new id at a new time: a new access by the same user to the same patient. */
function arrival(template: AuditEvent, id: string, recordedMs: number): AuditEvent {
  return {
    ...structuredClone(template),
    id,
    meta: { versionId: '1', lastUpdated: iso(recordedMs) },
    recorded: iso(recordedMs),
    period: { start: iso(recordedMs - 500), end: iso(recordedMs) },
  };
}

function linesFor(events: readonly AuditEvent[]): string[] {
  const mapping = loadConnectorMapping(findConnector(h.config, 'sandbox'));
  const serializer = createSerializer(mapping);
  const byKey = new Map<string, Patient | Practitioner>();
  for (const p of h.sandbox.dataset.patients()) byKey.set(referenceKey('Patient', p.id ?? ''), p);
  for (const p of h.sandbox.dataset.practitioners()) byKey.set(referenceKey('Practitioner', p.id ?? ''), p);
  return events.flatMap((event) => mapEvent(event, mapping, { get: (key) => byKey.get(key) }).rows.map((row) => serializer.line(row)));
}

describe('incremental syncs', () => {
  it('push every event exactly once across runs, including late events inside the overlap', async () => {
    const { start, end } = h.sandbox.dataset.options;
    const t1 = Date.parse(start) + (Date.parse(end) - Date.parse(start)) / 2;
    const first = await h.sync({ since: start, until: iso(t1) });
    expect(h.withStore((s) => s.getWatermark('sandbox'))).toBe(iso(t1));

    const all = [...h.sandbox.dataset.events()];
    const template = all.find((e) => e.outcome === '0' && (e.entity ?? []).some((x) => x.what?.reference?.startsWith('Patient/'))) as AuditEvent;
    const late = [arrival(template, 'late-1', t1 - 5 * 60_000), arrival(template, 'late-2', t1 - 60_000)];
    const fresh = [arrival(template, 'new-1', t1 + 60_000)];
    await h.sandbox.store?.load([...late, ...fresh]);

    const t2 = t1 + 2 * 3_600_000;
    const pages: Array<{ events: number; duplicates: number }> = [];
    const detach = h.events.on('page', (page) => void pages.push(page));
    const second = await h.sync({ since: undefined, until: iso(t2) });
    detach();
    // Progress and metrics add up to the run's counts, the dropped duplicates included.
    expect(pages.reduce((sum, page) => sum + page.events, 0)).toBe(second.counts.events);
    expect(pages.reduce((sum, page) => sum + page.duplicates, 0)).toBe(second.counts.duplicates);
    expect(second.since).toBe(iso(t1 - 15 * 60_000));
    const inOverlap = all.filter((e) => Date.parse(e.recorded) >= t1 - 15 * 60_000 && Date.parse(e.recorded) < t1);
    expect(second.counts.duplicates).toBe(inOverlap.length);

    const expected = linesFor([...all.filter((e) => Date.parse(e.recorded) < t2), ...late, ...fresh]);
    const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(accepted.length).toBe(first.counts.rowsAcked + second.counts.rowsAcked);
    expect([...accepted].sort()).toEqual([...expected].sort());
    expect(new Set(accepted).size).toBe(accepted.length);
  });
});

/**
 * A generated event recorded to the second at `ms` (as Epic writes it), naming a patient the EHR does not have: its row
 * is rejected, so a run that reads it counts a reject.
 */
function rejectedAt(harness: SandboxHarness, id: string, ms: number): AuditEvent {
  const template = [...harness.sandbox.dataset.events()].find((e) => e.outcome === '0') as AuditEvent;
  const second = iso(ms).replace('.000Z', 'Z');
  return {
    ...structuredClone(template),
    id,
    meta: { versionId: '1', lastUpdated: iso(ms) },
    recorded: second,
    period: { start: second },
    entity: [{ what: { reference: 'Patient/not-in-the-ehr' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }],
  };
}

/** Six hours of generated events end here; a whole second a minute after them is the boundary the tests read across. */
const DATA_END = Date.UTC(2026, 10, 2);
const boundary = DATA_END + 60_000;
const OVERLAP = 15 * 60_000;

/** A sandbox of those events whose clock stands `afterBoundaryMs` past the boundary. */
async function harnessPastBoundary(seed: number, afterBoundaryMs: number): Promise<{ c: SandboxHarness; clock: ManualClock }> {
  const clock = new ManualClock(boundary + afterBoundaryMs);
  const data = { seed, events: 60, patients: 10, practitioners: 3, end: iso(DATA_END), start: iso(DATA_END - 6 * 3_600_000) };
  return { c: await startHarness({ data, clock }), clock };
}

describe('incremental syncs ending inside a second', () => {
  /** The sandbox's config settles nothing (fhir.settleMinutes 0): a window ends now. */
  const SETTLE = 0;
  let c: SandboxHarness;
  let clock: ManualClock;
  beforeAll(async () => {
    // The second run's window starts 456 ms into the boundary second.
    ({ c, clock } = await harnessPastBoundary(17, OVERLAP + 456 + SETTLE));
  });
  afterAll(async () => c?.close());

  it('read an event recorded to that second once: its reject is not counted again, nor taken for a late event', async () => {
    await c.sandbox.store?.load([rejectedAt(c, 'boundary-second', boundary)]);
    const first = await c.sync({ until: undefined });
    expect(first.counts.rejects).toBeGreaterThanOrEqual(1);
    await clock.advance(5 * 60_000);
    const second = await c.sync({ since: undefined, until: undefined });
    expect(second.since).toBe(iso(boundary));
    expect(second.counts.rejects).toBe(0);
    expect(c.logLines.filter((line) => line.includes('lateEvents'))).toEqual([]);
  });
});

describe('a run given an --until inside a second', () => {
  let c: SandboxHarness;
  beforeAll(async () => {
    // The given --until is OVERLAP + 456 ms after the boundary, before the clock.
    ({ c } = await harnessPastBoundary(19, OVERLAP + 10 * 60_000));
  });
  afterAll(async () => c?.close());

  it('ends on its whole second as a scheduled window does: the next run reads that second once', async () => {
    await c.sandbox.store?.load([rejectedAt(c, 'given-until-second', boundary)]);
    const first = await c.sync({ until: iso(boundary + OVERLAP + 456) });
    expect(first.until).toBe(iso(boundary + OVERLAP));
    expect(first.counts.rejects).toBeGreaterThanOrEqual(1);
    const second = await c.sync({ since: undefined, until: undefined });
    expect(second.since).toBe(iso(boundary));
    expect(second.counts.rejects).toBe(0);
    expect(c.logLines.filter((line) => line.includes('lateEvents'))).toEqual([]);
  });
});
