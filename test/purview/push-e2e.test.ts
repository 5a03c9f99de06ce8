import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryLedger, pushSpoolFile, type BlockLedger, type PushEvent, type PushOptions } from '../../src/purview/index.js';
import type { IngestFault } from '../../src/sandbox/purview-ingest.js';
import { InstantClock } from '../support/manual-clock.js';
import { expectDelivered, makeRows, startPushWorld, writeSpool, type PushWorld } from './e2e-support.js';

let world: PushWorld;
beforeAll(async () => {
  world = await startPushWorld();
});
afterAll(() => world.close());

function push(spoolPath: string, overrides: Partial<PushOptions> = {}) {
  const events: PushEvent[] = [];
  const clock = new InstantClock(Date.now());
  const options: PushOptions = {
    spoolPath, blockRows: 4, ingestionBase: world.ingest.baseUrl, jobId: world.jobId, tokenSource: world.newTokenSource(clock),
    ledger: createMemoryLedger(), clock, logger: silentLogger(), caPem: world.caPem, random: () => 0.5,
    onEvent: (event) => events.push(event), ...overrides,
  };
  return { events, clock, options, run: () => pushSpoolFile(options) };
}

/** A fresh job per test keeps accepted() about that test only. */
function freshJob(): string {
  const jobId = crypto.randomUUID();
  world.ingest.registerJob(jobId, world.appId);
  return jobId;
}

describe('pushSpoolFile against the Entra and ingestion emulators', () => {
  it('delivers every row in order, the header on each block, with one token for all blocks', async () => {
    const rows = makeRows(10);
    const spool = writeSpool(world.dir, rows);
    const jobId = freshJob();
    const issuedBefore = world.entra.stats.issued;
    const { run, events } = push(spool.path, { jobId, newFileId: () => 'F' });
    const report = await run();
    expect(report).toEqual({ spoolSha256: spool.sha256, blocks: 3, blocksSent: 3, blocksSkipped: 0, rowsAcked: 10, possiblyDuplicated: [] });
    const accepted = world.ingest.accepted(jobId);
    expect(accepted.map((b) => b.filename)).toEqual(['tmp_F0001.txt', 'tmp_F0002.txt', 'tmp_F0003.txt']);
    expect(accepted.map((b) => b.delimiter)).toEqual(['tab', 'tab', 'tab']);
    expectDelivered(accepted, rows, 4, []);
    expect(accepted.flatMap((b) => b.rows)).toEqual(rows);
    expect(world.entra.stats.issued - issuedBefore).toBe(1);
    expect(events.filter((e) => e.type === 'block_acked').map((e) => [e.index, e.rows])).toEqual([[0, 4], [1, 4], [2, 2]]);
  });

  // [name, faults, blocks flagged possiblyDuplicated, blocks the emulator recorded]. A reset after the whole body went
  // out is "outcome unknown" to the client whether or not the server kept the block, so both resets are flagged.
  const transient: Array<[string, IngestFault[], number[], number]> = [
    ['500 with an empty body', [{ kind: 'status', status: 500 }], [], 3],
    ['503 twice', [{ kind: 'status', status: 503, body: 'busy' }, { kind: 'status', status: 503 }], [], 3],
    ['429 with Retry-After', [{ kind: 'status', status: 429, retryAfter: '7' }], [], 3],
    ['408', [{ kind: 'status', status: 408 }], [], 3],
    ['a reset before the block is accepted', [{ kind: 'reset-before-accept' }], [0], 3],
    ['accept, then reset before answering', [{ kind: 'accept-then-reset' }], [0], 4],
  ];
  for (const [name, faults, mustFlag, recorded] of transient) {
    it(`survives ${name}: every row accepted, duplicates flagged`, async () => {
      const rows = makeRows(9);
      const spool = writeSpool(world.dir, rows);
      const jobId = freshJob();
      world.ingest.injectFaults(...faults);
      const { run, events, clock } = push(spool.path, { jobId });
      const report = await run();
      expect(report.rowsAcked).toBe(9);
      expect(report.possiblyDuplicated).toEqual(mustFlag);
      expectDelivered(world.ingest.accepted(jobId), rows, 4, report.possiblyDuplicated);
      const retries = events.filter((e) => e.type === 'block_retry');
      expect(retries.map((e) => e.index)).toEqual(faults.map(() => 0));
      if (name.startsWith('429')) expect(clock.slept).toEqual([7000]);
      expect(world.ingest.accepted(jobId).length).toBe(recorded);
    });
  }

  it('treats a response slower than the timeout as unknown, never as success, and flags the re-send', async () => {
    const rows = makeRows(6);
    const spool = writeSpool(world.dir, rows);
    const jobId = freshJob();
    world.ingest.injectFaults({ kind: 'delay', ms: 1500 });
    const { run, events } = push(spool.path, { jobId, timeoutMs: 300 });
    const report = await run();
    expect(report.possiblyDuplicated).toEqual([0]);
    expect(events.find((e) => e.type === 'block_retry')).toMatchObject({ index: 0, attempt: 1 });
    expectDelivered(world.ingest.accepted(jobId), rows, 4, report.possiblyDuplicated);
  });

  it('gives up with BRG_ERR_PURVIEW_UNAVAILABLE after the retry budget, leaving the block unacknowledged', async () => {
    const spool = writeSpool(world.dir, makeRows(5));
    const jobId = freshJob();
    world.ingest.injectFaults({ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const ledger = createMemoryLedger();
    const { run } = push(spool.path, { jobId, ledger, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000, maxTotalMs: 60_000 } });
    const error = (await run().catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
    expect(error.message).toContain('Block 0 of 2');
    expect(ledger.get(spool.sha256, 0)?.state).toBe('sending');
    expect(world.ingest.accepted(jobId)).toEqual([]);
  });

  it('stops on 403 (job owned by another app) with a typed error that says what to fix; nothing acked', async () => {
    const spool = writeSpool(world.dir, makeRows(5));
    const jobId = crypto.randomUUID();
    world.ingest.registerJob(jobId, crypto.randomUUID());
    const ledger = createMemoryLedger();
    const { run, options } = push(spool.path, { jobId, ledger });
    const before = world.ingest.requests;
    const error = (await run().catch((e: unknown) => e)) as BridgeError;
    expect(error).toBeInstanceOf(BridgeError);
    expect(error.code).toBe('BRG_ERR_PURVIEW_FORBIDDEN');
    expect(error.message).toContain('jobId and corresponding appId do not match.');
    expect(error.message).toContain('Copy the job id from the connector created with this app id');
    expect(error.message).not.toContain(world.secret);
    expect(world.ingest.requests - before).toBe(1);
    expect(ledger.get(spool.sha256, 0)?.state).toBe('sending');
    expect(ledger.get(spool.sha256, 1)).toBeUndefined();
    expect(options.jobId).toBe(jobId);
  });

  it('stops on 400 with BRG_ERR_PURVIEW_REJECTED carrying the reason; later blocks are not sent', async () => {
    const rows = makeRows(9);
    const spool = writeSpool(world.dir, rows);
    const jobId = freshJob();
    world.ingest.injectFaults({ kind: 'status', status: 200 }, { kind: 'status', status: 400, body: 'Mandatory column missing' });
    const ledger = createMemoryLedger();
    const error = (await push(spool.path, { jobId, ledger }).run().catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect(error.message).toContain('block 1 of 3');
    expect(error.message).toContain('Mandatory column missing');
    expect(ledger.get(spool.sha256, 0)?.state).toBe('acked');
    expect(ledger.get(spool.sha256, 1)?.state).toBe('sending');
    expect(ledger.get(spool.sha256, 2)).toBeUndefined();
  });

  it('on 401 invalidates the token and retries once with a new one; a second 401 is BRG_ERR_PURVIEW_AUTH', async () => {
    const rows = makeRows(3);
    const spool = writeSpool(world.dir, rows);
    const jobId = freshJob();
    const issued = world.entra.stats.issued;
    world.ingest.injectFaults({ kind: 'status', status: 401 });
    const report = await push(spool.path, { jobId }).run();
    expect(report.rowsAcked).toBe(3);
    expect(world.entra.stats.issued - issued).toBe(2);
    expectDelivered(world.ingest.accepted(jobId), rows, 4, []);

    world.ingest.injectFaults({ kind: 'status', status: 401 }, { kind: 'status', status: 401 });
    const error = (await push(writeSpool(world.dir, makeRows(2)).path, { jobId: freshJob() }).run().catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_PURVIEW_AUTH');
  });
});

describe('resume', () => {
  it('skips blocks the ledger holds as acked and re-sends a block left "sending", flagged', async () => {
    const rows = makeRows(14);
    const spool = writeSpool(world.dir, rows);
    const jobId = freshJob();
    const ledger: BlockLedger = createMemoryLedger();
    ledger.markSending(spool.sha256, 0, 4);
    ledger.markAcked(spool.sha256, 0, 4, false);
    ledger.markSending(spool.sha256, 1, 4);
    ledger.markAcked(spool.sha256, 1, 4, false);
    ledger.markSending(spool.sha256, 2, 4);
    const { run, events } = push(spool.path, { jobId, ledger });
    const report = await run();
    expect(report).toMatchObject({ blocks: 4, blocksSent: 2, blocksSkipped: 2, rowsAcked: 14, possiblyDuplicated: [2] });
    expect(events.filter((e) => e.type === 'block_skipped').map((e) => e.index)).toEqual([0, 1]);
    expect(world.ingest.accepted(jobId).flatMap((b) => b.rows)).toEqual(rows.slice(8));
    expect(ledger.get(spool.sha256, 3)?.state).toBe('acked');
  });

  it('stopAfterBlock finishes the block in flight, throws BRG_ERR_ABORTED, and the rerun completes the file exactly', async () => {
    const rows = makeRows(14);
    const spool = writeSpool(world.dir, rows);
    const jobId = freshJob();
    const ledger = createMemoryLedger();
    const stop = new AbortController();
    const first = push(spool.path, { jobId, ledger, stopAfterBlock: stop.signal });
    const onEvent = first.options.onEvent;
    const error = (await pushSpoolFile({
      ...first.options,
      onEvent: (event) => {
        onEvent?.(event);
        if (event.type === 'block_sent' && event.index === 1) stop.abort();
      },
    }).catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_ABORTED');
    expect(world.ingest.accepted(jobId).flatMap((b) => b.rows)).toEqual(rows.slice(0, 8));
    expect(ledger.get(spool.sha256, 1)?.state).toBe('acked');
    const report = await push(spool.path, { jobId, ledger }).run();
    expect(report).toMatchObject({ blocksSent: 2, blocksSkipped: 2, rowsAcked: 14, possiblyDuplicated: [] });
    expectDelivered(world.ingest.accepted(jobId), rows, 4, []);
    expect(world.ingest.accepted(jobId).length).toBe(4);
  });

  it('an unchanged, completed spool sends nothing on rerun', async () => {
    const spool = writeSpool(world.dir, makeRows(5));
    const jobId = freshJob();
    const ledger = createMemoryLedger();
    await push(spool.path, { jobId, ledger }).run();
    const before = world.ingest.requests;
    const report = await push(spool.path, { jobId, ledger }).run();
    expect(report).toMatchObject({ blocksSent: 0, blocksSkipped: 2, rowsAcked: 5 });
    expect(world.ingest.requests).toBe(before);
  });
});
