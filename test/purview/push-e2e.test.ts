/** The push of a file against the Entra and ingestion emulators, with the real SQLite ledger. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { type NormalizedFile, type PushEvent, type PushOptions, pushRowFile } from '../../src/purview/index.js';
import type { IngestFault } from '../../src/sandbox/purview-ingest.js';
import { InstantClock } from '../support/manual-clock.js';
import { expectDelivered, makeRows, type PushWorld, prepareFile, startPushWorld } from './e2e-support.js';

let world: PushWorld;
beforeAll(async () => {
  world = await startPushWorld();
});
afterAll(() => world.close());

function push(file: NormalizedFile, overrides: Partial<PushOptions> = {}) {
  const events: PushEvent[] = [];
  const clock = new InstantClock(Date.now());
  const jobId = overrides.jobId ?? world.jobId;
  const options: PushOptions & { file: NormalizedFile } = {
    file,
    blockRows: 4,
    ingestionBase: world.ingest.baseUrl,
    jobId,
    destination: world.destination(jobId),
    tokenSource: world.newTokenSource(clock),
    ledger: world.store,
    clock,
    logger: silentLogger(),
    caPem: world.caPem,
    random: () => 0.5,
    onEvent: (event) => events.push(event),
    ...overrides,
  };
  return { events, clock, options, run: () => pushRowFile(options) };
}

const rowsOf = (count: number): Promise<{ rows: string[]; file: NormalizedFile }> => {
  const rows = makeRows(count, `${crypto.randomUUID().slice(0, 8)}-`);
  return prepareFile(world.dir, rows).then((file) => ({ rows, file }));
};

/** A fresh job per test keeps accepted() about that test only. */
function freshJob(): string {
  const jobId = crypto.randomUUID();
  // Epic, the schema of every file these tests push (makeRows under HEADER).
  world.ingest.registerJob(jobId, world, 'epic');
  return jobId;
}

describe('pushRowFile against the Entra and ingestion emulators', () => {
  it('delivers every row in order, the header on each block, with one token for all blocks', async () => {
    const { rows, file } = await rowsOf(10);
    const jobId = freshJob();
    const issuedBefore = world.entra.stats.issued;
    const { run, events } = push(file, { jobId, newFileId: () => 'F' });
    const report = await run();
    expect(report).toEqual({
      blocks: 3,
      rowsSent: 10,
      rowsAlreadyDelivered: 0,
      rowsAcked: 10,
      duplicateRows: 0,
      rowsGivenUp: 0,
      possiblyDuplicated: [],
      rowsPossiblyDuplicated: 0,
      possiblyDuplicatedRanges: [],
    });
    expect(world.ranges(file, jobId)).toEqual([
      { first: 0, end: 4, state: 'acked' },
      { first: 4, end: 8, state: 'acked' },
      { first: 8, end: 10, state: 'acked' },
    ]);
    const accepted = world.ingest.accepted(jobId);
    expect(accepted.map((b) => b.filename)).toEqual(['tmp_F0001.txt', 'tmp_F0002.txt', 'tmp_F0003.txt']);
    expect(accepted.map((b) => b.delimiter)).toEqual(['tab', 'tab', 'tab']);
    expectDelivered(accepted, rows, 4, []);
    expect(accepted.flatMap((b) => b.rows)).toEqual(rows);
    expect(world.entra.stats.issued - issuedBefore).toBe(1);
    expect(events.filter((e) => e.type === 'block_acked').map((e) => [e.index, e.rows])).toEqual([
      [0, 4],
      [1, 4],
      [2, 2],
    ]);
  });

  // [name, faults, blocks flagged possiblyDuplicated, blocks the emulator recorded]. A reset after the whole body went
  // out is "outcome unknown" to the client whether or not the server kept the block, so both resets are flagged; so is
  // a 500 or 503 after the whole body (it may come from behind a Purview that stored the block).
  const transient: Array<[string, IngestFault[], number[], number]> = [
    ['500 with an empty body', [{ kind: 'status', status: 500 }], [0], 3],
    [
      '503 twice',
      [
        { kind: 'status', status: 503, body: 'busy' },
        { kind: 'status', status: 503 },
      ],
      [0],
      3,
    ],
    ['429 with Retry-After', [{ kind: 'status', status: 429, retryAfter: '7' }], [], 3],
    ['408', [{ kind: 'status', status: 408 }], [], 3],
    ['a reset before the block is accepted', [{ kind: 'reset-before-accept' }], [0], 3],
    ['accept, then reset before answering', [{ kind: 'accept-then-reset' }], [0], 4],
  ];
  for (const [name, faults, mustFlag, recorded] of transient) {
    it(`survives ${name}: every row accepted, duplicates flagged`, async () => {
      const { rows, file } = await rowsOf(9);
      const jobId = freshJob();
      world.ingest.injectFaults(...faults);
      const { run, events, clock } = push(file, { jobId });
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
    const { rows, file } = await rowsOf(6);
    const jobId = freshJob();
    world.ingest.injectFaults({ kind: 'delay', ms: 1500 });
    const { run, events } = push(file, { jobId, timeoutMs: 300 });
    const report = await run();
    expect(report.possiblyDuplicated).toEqual([0]);
    expect(report.rowsPossiblyDuplicated).toBe(4);
    expect(events.find((e) => e.type === 'block_retry')).toMatchObject({ index: 0, attempt: 1 });
    expectDelivered(world.ingest.accepted(jobId), rows, 4, report.possiblyDuplicated);
  });

  it('gives up with BRG_ERR_PURVIEW_UNAVAILABLE after the retry budget, leaving the block unacknowledged', async () => {
    const { file } = await rowsOf(5);
    const jobId = freshJob();
    world.ingest.injectFaults({ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const { run } = push(file, { jobId, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000, maxTotalMs: 60_000 } });
    const error = (await run().catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
    expect(error.message).toContain('Block 0 of this push');
    expect(world.ranges(file, jobId)).toEqual([{ first: 0, end: 4, state: 'unknown' }]);
    expect(world.ingest.accepted(jobId)).toEqual([]);
  });

  it('stops on 403 (job owned by another app) with a typed error that says what to fix; nothing acked', async () => {
    const { file } = await rowsOf(5);
    const jobId = crypto.randomUUID();
    world.ingest.registerJob(jobId, { tenantId: world.tenantId, appId: crypto.randomUUID() });
    const { run, options } = push(file, { jobId });
    const before = world.ingest.requests;
    const error = (await run().catch((e: unknown) => e)) as BridgeError;
    expect(error).toBeInstanceOf(BridgeError);
    expect(error.code).toBe('BRG_ERR_PURVIEW_FORBIDDEN');
    expect(error.message).toContain('jobId and corresponding appId do not match.');
    expect(error.message).toContain('Copy the job id from the connector created with this app id');
    expect(error.message).not.toContain(world.secret);
    expect(world.ingest.requests - before).toBe(1);
    // A definite refusal: the rows count as never sent, so the run after the fix sends them unflagged.
    expect(world.ranges(file, jobId)).toEqual([{ first: 0, end: 4, state: 'unsent' }]);
    expect(options.jobId).toBe(jobId);
  });

  it('stops on 400 with BRG_ERR_PURVIEW_REJECTED carrying the reason; later blocks are not sent', async () => {
    const { file } = await rowsOf(9);
    const jobId = freshJob();
    world.ingest.injectFaults({ kind: 'status', status: 200 }, { kind: 'status', status: 400, body: 'Mandatory column missing' });
    const error = (await push(file, { jobId })
      .run()
      .catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect(error.message).toContain('block 1 of this push');
    expect(error.message).toContain('Mandatory column missing');
    expect(world.ranges(file, jobId)).toEqual([
      { first: 0, end: 4, state: 'acked' },
      { first: 4, end: 8, state: 'unsent' },
    ]);
  });

  it('on 401 invalidates the token and retries once with a new one; a second 401 is BRG_ERR_PURVIEW_AUTH', async () => {
    const { rows, file } = await rowsOf(3);
    const jobId = freshJob();
    const issued = world.entra.stats.issued;
    world.ingest.injectFaults({ kind: 'status', status: 401 });
    const report = await push(file, { jobId }).run();
    expect(report.rowsAcked).toBe(3);
    expect(world.entra.stats.issued - issued).toBe(2);
    expectDelivered(world.ingest.accepted(jobId), rows, 4, []);

    world.ingest.injectFaults({ kind: 'status', status: 401 }, { kind: 'status', status: 401 });
    const error = (await push((await rowsOf(2)).file, { jobId: freshJob() })
      .run()
      .catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_PURVIEW_AUTH');
  });
});

describe('resume', () => {
  it('skips rows the ledger holds as acknowledged and re-sends rows left "sent, answer unknown", flagged', async () => {
    const { rows, file } = await rowsOf(14);
    const jobId = freshJob();
    const target = { destination: world.destination(jobId), source: `file:${file.sha256}` };
    // An earlier push: rows 0-7 acknowledged (blocks of 4), rows 8-11 sent and no answer seen.
    for (const [first, end, acked] of [
      [0, 4, true],
      [4, 8, true],
      [8, 12, false],
    ] as const) {
      const block = world.store.openRangeBlock(target, [{ first, end }], 0);
      world.store.markAttempt(block.id);
      if (acked) world.store.markAcked(block.id, 0);
    }
    const { run, events } = push(file, { jobId });
    const report = await run();
    expect(report).toMatchObject({ blocks: 2, rowsSent: 6, rowsAlreadyDelivered: 8, rowsAcked: 14, possiblyDuplicated: [0], rowsPossiblyDuplicated: 4 });
    expect(events.filter((e) => e.type === 'rows_already_delivered')).toEqual([{ type: 'rows_already_delivered', rows: 8 }]);
    expect(world.ingest.accepted(jobId).flatMap((b) => b.rows)).toEqual(rows.slice(8));
  });

  it('a block claimed but never sent (attempts 0) is sent plainly, not flagged', async () => {
    const { rows, file } = await rowsOf(6);
    const jobId = freshJob();
    world.store.openRangeBlock({ destination: world.destination(jobId), source: `file:${file.sha256}` }, [{ first: 0, end: 4 }], 0);
    const report = await push(file, { jobId }).run();
    expect(report).toMatchObject({ rowsSent: 6, possiblyDuplicated: [] });
    expectDelivered(world.ingest.accepted(jobId), rows, 4, []);
  });

  it('stopAfterBlock finishes the block in flight, throws BRG_ERR_ABORTED, and the rerun completes the file exactly', async () => {
    const { rows, file } = await rowsOf(14);
    const jobId = freshJob();
    const stop = new AbortController();
    const first = push(file, { jobId, stopAfterBlock: stop.signal });
    const onEvent = first.options.onEvent;
    const error = (await pushRowFile({
      ...first.options,
      onEvent: (event) => {
        onEvent?.(event);
        if (event.type === 'block_sent' && event.index === 1) stop.abort();
      },
    }).catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_ABORTED');
    expect(world.ingest.accepted(jobId).flatMap((b) => b.rows)).toEqual(rows.slice(0, 8));
    const report = await push(file, { jobId }).run();
    expect(report).toMatchObject({ blocks: 2, rowsSent: 6, rowsAlreadyDelivered: 8, rowsAcked: 14, possiblyDuplicated: [] });
    expectDelivered(world.ingest.accepted(jobId), rows, 4, []);
    expect(world.ingest.accepted(jobId).length).toBe(4);
  });

  it('an unchanged, completed file sends nothing on rerun', async () => {
    const { file } = await rowsOf(5);
    const jobId = freshJob();
    await push(file, { jobId }).run();
    const before = world.ingest.requests;
    const report = await push(file, { jobId }).run();
    expect(report).toMatchObject({ blocks: 0, rowsSent: 0, rowsAlreadyDelivered: 5, rowsAcked: 5 });
    expect(world.ingest.requests).toBe(before);
  });
});
