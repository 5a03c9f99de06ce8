/**
 * What Purview should hold after syncs: the rows of given events, mapped with the connector's own mapping against the
 * generated Patients/Practitioners (not through the pipeline), and a check that every expected row arrived exactly
 * once — or more than once only where the bridge flagged its event as possibly duplicated.
 */
import type { AuditEvent, Patient, Practitioner } from 'fhir/r4.js';
import { expect } from 'vitest';
import { destinationOf, findConnector, loadConnectorMapping } from '../../src/composition/index.js';
import type { Config } from '../../src/config/index.js';
import { createSerializer, mapEvent } from '../../src/mapping/index.js';
import { eventClaimKey } from '../../src/purview/index.js';
import { referenceKey } from '../../src/reference-keys.js';
import type { GeneratedDataset } from '../../src/sandbox/generator.js';
import { claimDay, type StateStore } from '../../src/sync/state/index.js';

export interface ExpectedRows {
  /** Connector line → the keys of the events that produce it. */
  readonly owners: Map<string, Set<string>>;
  readonly lines: string[];
}

export function expectedRows(config: Config, dataset: GeneratedDataset, events: Iterable<AuditEvent>, connector = 'sandbox'): ExpectedRows {
  const mapping = loadConnectorMapping(findConnector(config, connector));
  const serializer = createSerializer(mapping);
  const byKey = new Map<string, Patient | Practitioner>();
  for (const p of dataset.patients()) byKey.set(referenceKey('Patient', p.id ?? ''), p);
  for (const p of dataset.practitioners()) byKey.set(referenceKey('Practitioner', p.id ?? ''), p);
  const owners = new Map<string, Set<string>>();
  const lines: string[] = [];
  for (const event of events) {
    for (const row of mapEvent(event, mapping, { get: (key) => byKey.get(key) }).rows) {
      const line = serializer.line(row);
      lines.push(line);
      const set = owners.get(line) ?? new Set<string>();
      set.add(eventClaimKey(event));
      owners.set(line, set);
    }
  }
  return { owners, lines };
}

/** Event keys of blocks the bridge flagged possibly duplicated (a re-send after an unknown outcome). */
export function flaggedEvents(store: StateStore, config: Config, connector = 'sandbox'): Set<string> {
  return store.flaggedEventKeys({ destination: destinationOf(findConnector(config, connector)), source: connector });
}

/**
 * Every expected row accepted at least once; a row accepted more than once belongs to a flagged event; nothing
 * accepted that was not expected.
 */
export function expectExactlyOnceOrFlagged(accepted: readonly string[], expected: ExpectedRows, flagged: ReadonlySet<string>): { duplicates: number } {
  const counts = new Map<string, number>();
  for (const line of accepted) counts.set(line, (counts.get(line) ?? 0) + 1);
  const expectedCounts = new Map<string, number>();
  for (const line of expected.lines) expectedCounts.set(line, (expectedCounts.get(line) ?? 0) + 1);
  let duplicates = 0;
  for (const [line, want] of expectedCounts) {
    const got = counts.get(line) ?? 0;
    expect(got, `row of event(s) ${[...(expected.owners.get(line) ?? [])].join(', ')} arrived ${got} time(s)`).toBeGreaterThanOrEqual(want);
    if (got > want) {
      duplicates += got - want;
      const owners = [...(expected.owners.get(line) ?? [])];
      expect(
        owners.some((key) => flagged.has(key)),
        `row of ${owners.join(', ')} arrived ${got} times but was never flagged`,
      ).toBe(true);
    }
  }
  const unexpected = [...counts.keys()].filter((line) => !expectedCounts.has(line));
  expect(unexpected, 'rows Purview got that no event produces').toEqual([]);
  return { duplicates };
}

export { claimDay };
