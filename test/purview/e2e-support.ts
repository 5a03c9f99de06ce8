/**
 * Helpers for P2's end-to-end push tests, on top of support.ts (the emulators and spool builders shared by every push
 * test): a "world" with one registered app and job, spools whose SHA-256 is known (the ledger key), and a delivery
 * check that proves "every row delivered, in order, and any block received twice was flagged".
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { expect } from 'vitest';
import type { AcceptedBlock } from '../../src/sandbox/purview-ingest.js';
import type { TokenSource } from '../../src/token-cache.js';
import { InstantClock } from '../support/manual-clock.js';
import { HEADER, chunk, startEmulators, tempDir, writeSpool as writeSpoolFile, type Emulators } from './support.js';

export { HEADER, makeRows } from './support.js';

export interface PushWorld extends ReturnType<Emulators['newApp']> {
  readonly entra: Emulators['entra'];
  readonly ingest: Emulators['ingest'];
  readonly caPem: string;
  readonly dir: string;
  newTokenSource(clock?: InstantClock): TokenSource;
  close(): Promise<void>;
}

export async function startPushWorld(): Promise<PushWorld> {
  const emulators = await startEmulators();
  const app = emulators.newApp();
  const dir = tempDir('bridge-push-e2e-');
  return {
    ...app, entra: emulators.entra, ingest: emulators.ingest, caPem: emulators.tls.certPem, dir,
    newTokenSource: (clock = new InstantClock(Date.now())) => emulators.tokenSource(app, clock),
    async close() {
      await emulators.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A spool written the way the pipeline writes it (support.ts), with its SHA-256, the ledger key. */
export function writeSpool(dir: string, rows: readonly string[], header = HEADER): { path: string; sha256: string } {
  const path = writeSpoolFile(dir, rows, header);
  return { path, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') };
}

/**
 * Every block arrived with the header and exactly its rows; blocks first arrived in order; a block that arrived more
 * than once is among `flagged` (possiblyDuplicated). Blocks are recognised by their content, not by trust in the client.
 */
export function expectDelivered(accepted: ReadonlyArray<AcceptedBlock>, rows: readonly string[], blockRows: number, flagged: readonly number[], header = HEADER): void {
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
