/**
 * Helpers for the end-to-end push tests, on top of support.ts (the emulators and file builders shared by every push
 * test): a "world" with one registered app and job and a real state store, and a delivery check that proves "every
 * row delivered, in order, and any block received twice was flagged".
 */
import { rmSync } from 'node:fs';
import { expect } from 'vitest';
import { destinationKey, type NormalizedFile, type RangeRecord } from '../../src/purview/index.js';
import type { AcceptedBlock } from '../../src/sandbox/purview-ingest.js';
import type { StateStore } from '../../src/sync/state/index.js';
import type { TokenSource } from '../../src/token-cache.js';
import { InstantClock } from '../support/manual-clock.js';
import { chunk, type Emulators, HEADER, openStore, startEmulators, tempDir } from './support.js';

export { HEADER, makeRows, prepareFile } from './support.js';

export interface PushWorld extends ReturnType<Emulators['newApp']> {
  readonly entra: Emulators['entra'];
  readonly ingest: Emulators['ingest'];
  readonly caPem: string;
  readonly dir: string;
  readonly store: StateStore;
  newTokenSource(clock?: InstantClock): TokenSource;
  /** The ledger key of a job of this world's tenant at the emulator. */
  destination(jobId?: string): string;
  /** What the ledger records for a file pushed to a job. */
  ranges(file: NormalizedFile, jobId?: string): RangeRecord[];
  close(): Promise<void>;
}

export async function startPushWorld(): Promise<PushWorld> {
  const emulators = await startEmulators();
  const app = emulators.newApp();
  const dir = tempDir('bridge-push-e2e-');
  const store = openStore(dir);
  const destination = (jobId = app.jobId): string => destinationKey({ ingestionBase: emulators.ingest.baseUrl, jobId });
  return {
    ...app,
    entra: emulators.entra,
    ingest: emulators.ingest,
    caPem: emulators.tls.certPem,
    dir,
    store,
    destination,
    newTokenSource: (clock = new InstantClock(Date.now())) => emulators.tokenSource(app, clock),
    ranges: (file, jobId) => store.rangesOf({ destination: destination(jobId), source: `file:${file.sha256}` }).sort((a, b) => a.first - b.first),
    async close() {
      store.close();
      await emulators.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Every block arrived with the header and exactly its rows; blocks first arrived in order; a block that arrived more
 * than once is among `flagged` (possiblyDuplicated). Blocks are recognised by their content, not by trust in the client.
 */
export function expectDelivered(
  accepted: ReadonlyArray<AcceptedBlock>,
  rows: readonly string[],
  blockRows: number,
  flagged: readonly number[],
  header = HEADER,
): void {
  const expected = chunk(rows, blockRows);
  const arrivals = accepted.map((block) => {
    expect(block.header).toBe(header);
    const index = expected.findIndex((blockRowsExpected) => blockRowsExpected[0] === block.rows[0]);
    expect(index, `an accepted block starts with an unexpected row ${String(block.rows[0])}`).toBeGreaterThanOrEqual(0);
    expect(block.rows).toEqual(expected[index]);
    return index;
  });
  const firstArrivals = arrivals.filter((index, position) => arrivals.indexOf(index) === position);
  expect(firstArrivals).toEqual(expected.map((_, i) => i));
  const duplicated = [...new Set(arrivals.filter((index, position) => arrivals.indexOf(index) !== position))];
  for (const index of duplicated) expect(flagged, `block ${index} arrived twice but was not flagged`).toContain(index);
}
