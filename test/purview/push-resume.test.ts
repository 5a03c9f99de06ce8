/**
 * Resume within one ledger, keyed by destination and the file's content + row numbers: a rerun sends exactly the rows
 * Purview has not acknowledged, whatever block size either run used, wherever the file lives; another job is another
 * destination and gets every row. The real kill -9 case is crash.test.ts.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { destinationKey, type NormalizedFile, normalizeFlatFile, type PushEvent, type PushOptions, pushRowFile } from '../../src/purview/index.js';
import type { StateStore } from '../../src/sync/state/index.js';
import { chunk, type Emulators, emulatorsAndStore, makeRows, prepareFile, tempDir, writeSpool } from './support.js';

const dir = tempDir('bridge-resume-');
let emu: Emulators;
let store: StateStore;

emulatorsAndStore(dir, (started, opened) => {
  emu = started;
  store = opened;
});

type App = ReturnType<Emulators['newApp']>;

function options(app: App, file: NormalizedFile, overrides: Partial<PushOptions> = {}): PushOptions & { file: NormalizedFile } {
  return {
    file,
    blockRows: 10,
    ingestionBase: emu.ingest.baseUrl,
    jobId: app.jobId,
    destination: destinationKey({ ingestionBase: emu.ingest.baseUrl, jobId: app.jobId }),
    tokenSource: emu.tokenSource(app, systemClock),
    ledger: store,
    clock: systemClock,
    logger: silentLogger(),
    caPem: emu.tls.certPem,
    ...overrides,
  };
}

/** Stops the push gracefully once `blocks` blocks were acknowledged. */
async function pushUntil(app: App, file: NormalizedFile, blocks: number, overrides: Partial<PushOptions> = {}): Promise<BridgeError> {
  const stop = new AbortController();
  let acked = 0;
  const error = await pushRowFile(
    options(app, file, {
      ...overrides,
      stopAfterBlock: stop.signal,
      onEvent: (e) => e.type === 'block_acked' && ++acked === blocks && stop.abort(),
    }),
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BridgeError);
  return error as BridgeError;
}

function acceptedRows(app: App): string[] {
  return emu.ingest.accepted(app.jobId).flatMap((b) => b.rows);
}

describe('resume within one ledger', () => {
  it('a graceful stop after block 0, then a rerun of the same content from another path sends the rest once', async () => {
    const app = emu.newApp();
    const rows = makeRows(30);
    const file = await prepareFile(dir, rows);
    const stopped = await pushUntil(app, file, 1);
    expect(stopped.code).toBe('BRG_ERR_ABORTED');
    expect(stopped.message).toBe('Stopped on request after 1 block(s); the next run sends what Purview has not acknowledged.');

    const events: PushEvent[] = [];
    const copy = join(dir, 'copy.txt');
    copyFileSync(writeSpool(dir, rows), copy);
    const again = await normalizeFlatFile(copy, join(dir, 'copy-spool.txt'), 'epic');
    expect(again.sha256).toBe(file.sha256);
    const report = await pushRowFile(options(app, again, { onEvent: (e) => events.push(e) }));
    expect(report).toMatchObject({ blocks: 2, rowsSent: 20, rowsAlreadyDelivered: 10, rowsAcked: 30, possiblyDuplicated: [] });
    expect(events[0]).toEqual({ type: 'rows_already_delivered', rows: 10 });
    expect(emu.ingest.accepted(app.jobId).map((b) => b.rows)).toEqual(chunk(rows, 10));
  });

  // Issue #14.1: the v1 ledger keyed blocks by index and skipped "block 0 already acknowledged" after a size change.
  const sizes: Array<[number, number, number]> = [
    [7, 10, 1],
    [10, 7, 1],
    [5, 100_000, 3],
    [6, 4, 2],
    [3, 3, 2],
  ];
  for (const [before, after, blocksFirst] of sizes) {
    it(`stopped with ${before}-row blocks and resumed with ${after}-row blocks: every row exactly once`, async () => {
      const app = emu.newApp();
      const rows = makeRows(20);
      const file = await prepareFile(dir, rows);
      await pushUntil(app, file, blocksFirst, { blockRows: before });
      const first = acceptedRows(app).length;
      expect(first).toBe(Math.min(20, before * blocksFirst));
      const report = await pushRowFile(options(app, file, { blockRows: after }));
      expect(report).toMatchObject({ rowsSent: 20 - first, rowsAlreadyDelivered: first, rowsAcked: 20, possiblyDuplicated: [] });
      expect(acceptedRows(app)).toEqual(rows);
      if (first < 20)
        expect(
          emu.ingest
            .accepted(app.jobId)
            .slice(blocksFirst)
            .every((b) => b.rows.length <= after),
        ).toBe(true);
    });
  }

  it('rows sent without a recorded answer are sent again and flagged, with a new block size too', async () => {
    const app = emu.newApp();
    const rows = makeRows(20);
    const file = await prepareFile(dir, rows);
    const target = { destination: options(app, file).destination, source: `file:${file.sha256}` };
    const sent = store.openRangeBlock(target, [{ first: 10, end: 20 }], 0); // an earlier push sent rows 10-19 and died
    store.markAttempt(sent.id);
    const report = await pushRowFile(options(app, file, { blockRows: 15 }));
    expect(report).toMatchObject({ blocks: 2, rowsSent: 20, possiblyDuplicated: [0, 1], rowsPossiblyDuplicated: 10 });
    // Rows 10–19 of the file, split over the two blocks: only those re-sent, not the rows new in block 0.
    expect(report.possiblyDuplicatedRanges).toEqual([{ first: 10, end: 20 }]);
    expect(emu.ingest.accepted(app.jobId).map((b) => b.rows.length)).toEqual([15, 5]);
    expect(acceptedRows(app)).toEqual(rows);
  });

  // Issue #14.2: the v1 ledger ignored the destination: "0 sent now, 3 already delivered" to a new job.
  it('a file pushed to one job is pushed in full to another job, tenant or ingestion host', async () => {
    const first = emu.newApp();
    const second = emu.newApp();
    const rows = makeRows(12);
    const file = await prepareFile(dir, rows);
    await pushRowFile(options(first, file));
    const report = await pushRowFile(options(second, file));
    expect(report).toMatchObject({ rowsSent: 12, rowsAlreadyDelivered: 0 });
    expect(acceptedRows(second)).toEqual(rows);
    const again = await pushRowFile(options(second, file));
    expect(again).toMatchObject({ rowsSent: 0, rowsAlreadyDelivered: 12 });
  });

  it('keys destinations by the job alone, case-insensitively: never by the app, the spelling of the tenant or the ingestion host', () => {
    const base = { ingestionBase: 'https://Webhook.Ingestion.Office.com/', jobId: 'J-1' };
    expect(destinationKey(base)).toBe('j-1');
    expect(destinationKey({ ...base, jobId: 'J-2' })).not.toBe(destinationKey(base));
    // The job id alone names the job on the wire; the tenant (its GUID or its domain) only asks for the token, and the
    // host (an alias, a private endpoint, the preset against an explicit base) only reaches it.
    expect(destinationKey({ ...base, tenantId: 'contoso.onmicrosoft.com' } as typeof base)).toBe(destinationKey({ ...base, tenantId: 'T-1' } as typeof base));
    expect(destinationKey({ ...base, ingestionBase: 'https://purview-ingest.hospital.internal' })).toBe(destinationKey(base));
  });
});
