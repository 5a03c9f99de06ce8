/**
 * A block Purview refuses with 400 after an attempt of unknown outcome is still one an operator can give up; its events,
 * once given up, are not sent by the next push of the spool, and an event the spool holds twice is given up once.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { destinationKey, EventSpoolWriter, type PushEvent, pushEventSpool, type SpoolEvent } from '../../src/purview/index.js';
import type { StateStore } from '../../src/sync/state/index.js';
import { type Emulators, emulatorsAndStore, HEADER, makeRows, tempDir } from './support.js';

let emu: Emulators;
let store: StateStore;
const dir = tempDir('bridge-given-up-push-');

emulatorsAndStore(dir, (started, opened) => {
  emu = started;
  store = opened;
});

it('records a 400 that followed an unknown outcome, gives the block up, and a second copy of a given-up event is given up once', async () => {
  const app = emu.newApp();
  const [a, b1, b2, c, d] = makeRows(5, 'gu');
  const spoolPath = join(dir, 'run.txt');
  const indexPath = join(dir, 'run.idx');
  const writer = new EventSpoolWriter(spoolPath, indexPath, HEADER);
  // b twice: a page shift during the pull can put one event in the spool twice.
  writer.append([
    { key: 'a|1', recordedMs: 1, lines: [a as string] },
    { key: 'b|1', recordedMs: 2, lines: [b1 as string, b2 as string] },
    { key: 'c|1', recordedMs: 3, lines: [c as string] },
    { key: 'b|1', recordedMs: 2, lines: [b1 as string, b2 as string] },
    { key: 'd|1', recordedMs: 4, lines: [d as string] },
  ]);
  writer.finish();
  const destination = destinationKey({ ingestionBase: emu.ingest.baseUrl, jobId: app.jobId });
  const target = { destination, source: 'conn' };
  const push = (events: PushEvent[] = [], onGivenUp?: (event: SpoolEvent) => void) =>
    pushEventSpool({
      spoolPath,
      indexPath,
      source: 'conn',
      blockRows: 2,
      ingestionBase: emu.ingest.baseUrl,
      jobId: app.jobId,
      destination,
      tokenSource: emu.tokenSource(app, systemClock),
      ledger: store,
      clock: systemClock,
      logger: silentLogger(),
      caPem: emu.tls.certPem,
      retry: { maxAttempts: 3, maxTotalMs: 60_000, baseDelayMs: 1, maxDelayMs: 1 },
      random: () => 0,
      onEvent: (event) => events.push(event),
      ...(onGivenUp ? { onGivenUp } : {}),
    });

  // b's block: a 500 after its whole body (the outcome unknown, so it stays flagged), then a 400 for b's value.
  emu.ingest.refuseRowsMatching(/Lookup gu1\t/);
  emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 500 });
  await expect(push()).rejects.toThrow(/BRG_ERR_PURVIEW_REJECTED|rejected/);
  expect(store.refusedBlock(target)).toMatchObject({ events: 1, rows: 2, status: 400 });

  expect(store.acquireLease('connector:conn', { id: 'op', host: 'h', pid: 1, command: 'bridge state give-up', since: '' }, 60_000, () => false)).toMatchObject({
    acquired: true,
  });
  const refused = store.refusedBlock(target);
  expect(store.giveUpRefused(target, { name: 'connector:conn', holderId: 'op' }, 'INC-7', refused?.blockId ?? -1)).toBe(true);
  store.releaseLease('connector:conn', 'op');

  const events: PushEvent[] = [];
  const given: string[] = [];
  const report = await push(events, (event) => given.push(event.key));
  expect(given).toEqual(['b|1']);
  expect(report).toMatchObject({ rowsGivenUp: 2, duplicateRows: 2, rowsAlreadyDelivered: 1, rowsSent: 2 });
  expect(events.filter((e) => e.type === 'rows_given_up').reduce((n, e) => n + (e.type === 'rows_given_up' ? e.rows : 0), 0)).toBe(2);
  const rows = emu.ingest.accepted(app.jobId).flatMap((block) => block.rows);
  expect(rows).toEqual([a, c, d]);
});
