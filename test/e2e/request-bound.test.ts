/**
 * The pull issue's request bound through the whole sync: for E events over U patients and P practitioners in pages of
 * S, the FHIR server sees at most ⌈E/S⌉ + ⌈U/50⌉ + ⌈P/50⌉ + 5 requests. Groups are kept small here (many prefetch
 * passes) so a partial `_id=` batch per group would break the bound; every expected row must still come out once.
 * Users without a Practitioner (staff without a provider record, named by their EMP identifier) add what they cost:
 * for I of them, one search of its own each, since a list answer without an identifier does not prove the server has
 * none (it may honour only part of a list), plus the list searches: one per 50 new ones in a prefetch pass that meets
 * two or more (identifiers are not held for a later pass), so at most ⌊I/2⌋ and at most passes + ⌈I/50⌉.
 */
import type { Patient, Practitioner } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { findConnector, loadConnectorMapping } from '../../src/composition/index.js';
import { createSerializer, mapEvent } from '../../src/mapping/index.js';
import { keyOf, type ResourceLookup, referenceKey } from '../../src/reference-keys.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

/** Three users in ten without a Practitioner, so they turn up in many prefetch passes. */
const DATA = { seed: 11, events: 6_000, patients: 900, practitioners: 130, nonProviderRate: 0.3 };
const PAGE_SIZE = 100;
let h: SandboxHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function start(prefetchEvents: number): Promise<SandboxHarness> {
  return startHarness({
    data: DATA,
    backend: 'generated', // streams from the generator: this test is about the bridge's requests, not the server's speed
    flags: {
      'connectors.0.fhir.pageSize': PAGE_SIZE,
      'connectors.0.fhir.prefetchEvents': prefetchEvents,
      'connectors.0.purview.blockRows': 2_000,
      'connectors.0.fhir.requestsPerSecond': 1_000,
    },
  });
}

/** The rows the generator's own resources give, sorted (deferred events leave a group later than their neighbours). */
function expectedSortedRows(harness: SandboxHarness): string[] {
  const mapping = loadConnectorMapping(findConnector(harness.config, 'sandbox'));
  const serializer = createSerializer(mapping);
  const byKey = new Map<string, Patient | Practitioner>();
  for (const p of harness.sandbox.dataset.patients()) byKey.set(referenceKey('Patient', p.id ?? ''), p);
  for (const p of harness.sandbox.dataset.practitioners()) byKey.set(referenceKey('Practitioner', p.id ?? ''), p);
  const lookup: ResourceLookup = { get: (key) => byKey.get(key) };
  return [...harness.sandbox.dataset.events()].flatMap((event) => mapEvent(event, mapping, lookup).rows.map((row) => serializer.line(row))).sort();
}

/** Distinct patients, practitioners and identifier-only users the events name (the U, P and I of the bound). */
function referenced(harness: SandboxHarness): { patients: number; practitioners: number; staff: number } {
  const keys = new Set<string>();
  const staff = new Set<string>();
  for (const event of harness.sandbox.dataset.events()) {
    for (const agent of event.agent) {
      if (agent.who?.reference) keys.add(keyOf(agent.who.reference) ?? '');
      else if (agent.who?.identifier) staff.add(`${agent.who.identifier.system}|${agent.who.identifier.value}`);
    }
    for (const entity of event.entity ?? []) if (entity.what?.reference) keys.add(keyOf(entity.what.reference) ?? '');
  }
  const count = (type: string): number => [...keys].filter((key) => key.startsWith(`${type}/`)).length;
  return { patients: count('Patient'), practitioners: count('Practitioner'), staff: staff.size };
}

const deliveredSortedRows = (harness: SandboxHarness): string[] =>
  harness.sandbox.ingest
    .accepted(harness.sandbox.ids.jobId)
    .flatMap((block) => block.rows)
    .sort();

describe('FHIR request count of a whole sync', () => {
  it('stays within ⌈E/S⌉ + ⌈U/50⌉ + ⌈P/50⌉ + 5 over many prefetch groups and delivers every row once', async () => {
    h = await start(500);
    const summary = await h.sync();
    const { patients, practitioners, staff } = referenced(h);
    const passes = Math.ceil(DATA.events / 500) + 1;
    const staffLists = Math.min(Math.floor(staff / 2), passes + Math.ceil(staff / 50));
    const bound = Math.ceil(DATA.events / PAGE_SIZE) + Math.ceil(patients / 50) + Math.ceil(practitioners / 50) + 5 + staff + staffLists;

    expect(patients).toBeGreaterThan(500); // enough to spread new patients over most groups
    expect(staff).toBeGreaterThan(20);
    // Each staff identifier is asked for on its own exactly once (cached as nobody's after), in list searches at most
    // once per pass.
    const identifierSearches = h.sandbox.fhir.requests
      .filter((request) => request.path.endsWith('/Practitioner'))
      .map((request) => new URLSearchParams(request.query).get('identifier'))
      .filter((identifier): identifier is string => identifier !== null);
    const alone = identifierSearches.filter((identifier) => !identifier.includes(','));
    expect(alone).toHaveLength(staff);
    expect(new Set(alone).size).toBe(staff);
    expect(identifierSearches.length - alone.length).toBeGreaterThan(1);
    expect(identifierSearches.length - alone.length).toBeLessThanOrEqual(staffLists);
    expect(summary.counts.events).toBe(DATA.events);
    expect(h.sandbox.fhir.requests.length).toBeLessThanOrEqual(bound);
    expect(h.sandbox.fhir.requests.every((request) => request.status === 200)).toBe(true);
    expect(deliveredSortedRows(h)).toEqual(expectedSortedRows(h));

    // The next run over the window (a backfill: every event read again, none sent twice) does not search for the staff
    // users again: the ledger of unknown users is kept in the state (fhir.unknownUserCacheTtlMs).
    const before = h.sandbox.fhir.requests.length;
    const again = await h.sync();
    expect(again.counts.events).toBe(DATA.events);
    const staffAgain = h.sandbox.fhir.requests
      .slice(before)
      .filter((request) => request.path.endsWith('/Practitioner') && new URLSearchParams(request.query).has('identifier'));
    expect(staffAgain).toEqual([]);
    expect(deliveredSortedRows(h)).toEqual(expectedSortedRows(h));
  });

  it('cuts a page larger than a prefetch pass into passes: the smallest cache the config allows loses no patient of the page', async () => {
    // Pages of 200 events, passes of 25, a cache of 100 (4 × 25, the least allowed): a pass over a whole page fetched
    // 200 patients into a cache of 100 before mapping them, so half the page's rows were rejected as missing a name.
    h = await startHarness({
      data: { seed: 13, events: 1_200, patients: 1_000, practitioners: 40 },
      backend: 'generated',
      flags: {
        'connectors.0.fhir.pageSize': 200,
        'connectors.0.fhir.prefetchEvents': 25,
        'connectors.0.fhir.referenceCacheSize': 100,
        'connectors.0.purview.blockRows': 2_000,
        'connectors.0.fhir.requestsPerSecond': 1_000,
      },
    });
    const summary = await h.sync();
    expect(summary.counts.events).toBe(1_200);
    expect(summary.rejectReasons).not.toHaveProperty('missing-patient-name');
    expect(deliveredSortedRows(h)).toEqual(expectedSortedRows(h));
  });

  it('fetches the held partial batches early when too many events wait for them, still delivering every row once', async () => {
    h = await start(40);
    const summary = await h.sync();
    expect(summary.counts.events).toBe(DATA.events);
    expect(deliveredSortedRows(h)).toEqual(expectedSortedRows(h));
    // With groups of 40 events the waiting cap (10) is hit: more reference requests than whole batches alone.
    const referenceRequests = h.sandbox.fhir.requests.filter((request) => /^\/.*\/(Patient|Practitioner)$/.test(request.path)).length;
    const { patients, practitioners } = referenced(h);
    expect(referenceRequests).toBeGreaterThan(Math.ceil(patients / 50) + Math.ceil(practitioners / 50));
  });
});
