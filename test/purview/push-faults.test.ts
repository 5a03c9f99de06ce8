import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { BridgeError } from '../../src/errors.js';
import type { RetryOptions } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import {
  destinationKey,
  EventSpoolWriter,
  type NormalizedFile,
  PurviewError,
  type PushEvent,
  type PushOptions,
  type PushReport,
  pushEventSpool,
  pushRowFile,
  type RangeRecord,
} from '../../src/purview/index.js';
import type { AcceptedBlock, IngestFault } from '../../src/sandbox/purview-ingest.js';
import { createSandboxCertificate } from '../../src/sandbox/tls.js';
import type { StateStore } from '../../src/sync/state/index.js';
import { rejectionOf } from '../support/error-of.js';
import { InstantClock, ManualClock } from '../support/manual-clock.js';
import { chunk, type Emulators, emulatorsAndStore, HEADER, makeRows, prepareFile, startEmulators, tempDir } from './support.js';

const RETRY: RetryOptions = { maxAttempts: 4, maxTotalMs: 600_000, baseDelayMs: 1_000, maxDelayMs: 120_000 };
const dir = tempDir('bridge-push-');
let emu: Emulators;
let store: StateStore;

emulatorsAndStore(dir, (started, opened) => {
  emu = started;
  store = opened;
});

interface Run {
  app: ReturnType<Emulators['newApp']>;
  rows: string[];
  file: NormalizedFile;
  events: PushEvent[];
  clock: InstantClock;
  options: PushOptions & { file: NormalizedFile };
  /** What the ledger records for the file at the app's job. */
  ranges(): Array<[RangeRecord['state'], number]>;
}

async function prepare(rowCount = 25, overrides: Partial<PushOptions> = {}): Promise<Run> {
  const app = emu.newApp();
  const rows = makeRows(rowCount);
  const file = await prepareFile(dir, rows);
  const events: PushEvent[] = [];
  const clock = new InstantClock();
  let boundary = 0;
  const destination = destinationKey({ ingestionBase: emu.ingest.baseUrl, jobId: app.jobId });
  const options: PushOptions & { file: NormalizedFile } = {
    file,
    blockRows: 10,
    ingestionBase: emu.ingest.baseUrl,
    jobId: app.jobId,
    destination,
    tokenSource: emu.tokenSource(app, clock),
    ledger: store,
    clock,
    logger: silentLogger(),
    retry: RETRY,
    random: () => 0.5,
    caPem: emu.tls.certPem,
    onEvent: (event) => events.push(event),
    newBoundary: () => `boundary-${boundary++}`,
    newFileId: () => 'c0ffee00-0000-4000-8000-000000000001',
    ...overrides,
  };
  const ranges = (): Array<[RangeRecord['state'], number]> =>
    store
      .rangesOf({ destination, source: `file:${file.sha256}` })
      .sort((a, b) => a.first - b.first)
      .map((r) => [r.state, r.end - r.first]);
  return { app, rows, file, events, clock, options, ranges };
}

/** Header on every block, block sizes, and the rows in order. */
function expectBlocks(accepted: readonly AcceptedBlock[], expected: string[][], filenames: string[]): void {
  expect(accepted.map((b) => b.header)).toEqual(expected.map(() => HEADER));
  expect(accepted.map((b) => b.delimiter)).toEqual(expected.map(() => 'tab'));
  expect(accepted.map((b) => b.rows.length)).toEqual(expected.map((rows) => rows.length));
  expect(accepted.map((b) => b.rows)).toEqual(expected);
  expect(accepted.map((b) => b.filename)).toEqual(filenames.map((n) => `tmp_c0ffee00-0000-4000-8000-000000000001${n}.txt`));
}

describe('transient faults on the first block', () => {
  const cases: Array<{ name: string; fault: IngestFault; duplicated: boolean; reason: RegExp; delayMs?: number }> = [
    // After the whole body went out, a 500 or a gateway's 502/504 may come from behind a Purview that stored the block.
    { name: '500 with an empty body', fault: { kind: 'status', status: 500 }, duplicated: true, reason: /^HTTP 500 Internal Server Error$/ },
    { name: '502 from a gateway', fault: { kind: 'status', status: 502 }, duplicated: true, reason: /^HTTP 502 Bad Gateway$/ },
    { name: '504 from a gateway', fault: { kind: 'status', status: 504 }, duplicated: true, reason: /^HTTP 504 Gateway Timeout$/ },
    // Azure Front Door answers 503 when its origin timed out, which may be after Purview stored the block.
    { name: '503', fault: { kind: 'status', status: 503, body: 'busy' }, duplicated: true, reason: /^HTTP 503 Service Unavailable$/ },
    {
      name: 'a 503 after the block was stored',
      fault: { kind: 'accept-then-status', status: 503 },
      duplicated: true,
      reason: /^HTTP 503 Service Unavailable$/,
    },
    {
      name: '429 with Retry-After',
      fault: { kind: 'status', status: 429, retryAfter: '7' },
      duplicated: false,
      reason: /^HTTP 429 Too Many Requests$/,
      delayMs: 7_000,
    },
    {
      // Longer than our own backoff ceiling (120 s): obeyed in full, not cut short to meet the same 429 again.
      name: '429 with Retry-After: 300',
      fault: { kind: 'status', status: 429, retryAfter: '300' },
      duplicated: false,
      reason: /^HTTP 429 Too Many Requests$/,
      delayMs: 300_000,
    },
    { name: 'accept, then reset', fault: { kind: 'accept-then-reset' }, duplicated: true, reason: /^(UND_ERR_SOCKET|ECONNRESET)/ },
    { name: 'reset before accepting', fault: { kind: 'reset-before-accept' }, duplicated: true, reason: /^(UND_ERR_SOCKET|ECONNRESET)/ },
    { name: 'slower than the client timeout', fault: { kind: 'delay', ms: 2_500 }, duplicated: true, reason: /^no answer within 400 ms$/ },
  ];

  for (const c of cases) {
    it(`survives ${c.name}`, async () => {
      const runId = `faults-${c.name}`;
      const run = await prepare(25, { timeoutMs: 400, runId });
      emu.ingest.injectFaults(c.fault);
      const report = await pushRowFile(run.options);
      emu.ingest.injectFaults();
      // The run's counts as the ledger keeps them (what a resumed or killed run reports): every row of a block whose
      // answer was lost, not only rows it re-sent.
      expect(store.deliveredOf(runId)).toEqual({
        blocks: 3,
        rows: 25,
        possiblyDuplicated: c.duplicated ? 1 : 0,
        rowsPossiblyDuplicated: c.duplicated ? 10 : 0,
      });

      const blocks = chunk(run.rows, 10);
      const accepted = emu.ingest.accepted(run.app.jobId);
      // The block accepted before the reset is there twice, flagged; otherwise every row exactly once.
      const storedTwice = c.fault.kind === 'accept-then-reset' || c.fault.kind === 'accept-then-status';
      const expected = storedTwice ? [blocks[0] as string[], ...blocks] : blocks;
      expectBlocks(accepted, expected, storedTwice ? ['0001', '0001', '0002', '0003'] : ['0001', '0002', '0003']);
      expect(report).toEqual({
        blocks: 3,
        rowsSent: 25,
        rowsAlreadyDelivered: 0,
        rowsAcked: 25,
        duplicateRows: 0,
        rowsGivenUp: 0,
        possiblyDuplicated: c.duplicated ? [0] : [],
        rowsPossiblyDuplicated: c.duplicated ? 10 : 0,
        // Where they are in the file: the first block's rows.
        possiblyDuplicatedRanges: c.duplicated ? [{ first: 0, end: 10 }] : [],
      });
      const retries = run.events.filter((e) => e.type === 'block_retry');
      expect(retries).toHaveLength(1);
      expect(retries[0]).toMatchObject({ index: 0, attempt: 1, reason: expect.stringMatching(c.reason) });
      if (c.delayMs !== undefined) expect(retries[0]).toMatchObject({ delayMs: c.delayMs });
      expect(
        run.events.filter((e) => e.type === 'block_acked').map((e) => e.type === 'block_acked' && [e.index, e.rows, e.status, e.possiblyDuplicated]),
      ).toEqual([
        [0, 10, 200, c.duplicated],
        [1, 10, 200, false],
        [2, 5, 200, false],
      ]);
      expect(run.ranges()).toEqual([
        ['acked', 10],
        ['acked', 10],
        ['acked', 5],
      ]);
    });
  }

  it('gives up after the retry budget with a typed error, leaving the block unacknowledged', async () => {
    const run = await prepare(25);
    emu.ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'status' as const, status: 503 })));
    const error = await rejectionOf(pushRowFile(run.options));
    expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
    expect(error.message).toBe(
      `Block 0 of this push (job ${run.app.jobId}) was not acknowledged after 4 attempt(s); last: HTTP 503 Service Unavailable. ` +
        "Run again later: rows Purview acknowledged are not sent again, and this block's rows are sent again and flagged possibly duplicated.",
    );
    expect(emu.ingest.accepted(run.app.jobId)).toEqual([]);
    expect(run.ranges()).toEqual([['unknown', 10]]);
    expect(run.clock.slept).toEqual([500, 1_000, 2_000]); // full jitter at 0.5 of 1 s, 2 s, 4 s
  });
});

describe('a gateway refusing before the body went out', () => {
  it('is no possible duplicate: a 503 answered at the headers, the body never whole, is retried unflagged, and after the last attempt resent unflagged', async () => {
    // 30 MB in one block: far more than the sockets' buffers hold, so the refusal comes while the body is still going out.
    const wide = 'x'.repeat(1000);
    const rows = makeRows(30_000).map((row) => row.replace('\tPatient Lookup ', `\tPatient Lookup ${wide} `));
    const run = await prepare(0, { blockRows: 100_000, timeoutMs: 60_000 });
    const file = await prepareFile(dir, rows);
    const options = { ...run.options, file };
    emu.ingest.injectFaults({ kind: 'status-before-body', status: 503 });
    const report = await pushRowFile(options);
    emu.ingest.injectFaults();
    expect(report).toMatchObject({ blocks: 1, rowsAcked: 30_000, possiblyDuplicated: [], rowsPossiblyDuplicated: 0 });
    expect(emu.ingest.accepted(run.app.jobId).map((b) => b.rows.length)).toEqual([30_000]);

    // Every attempt refused so: the block is recorded as not received, and the next push sends it unflagged.
    const again = await prepare(0, { blockRows: 100_000, timeoutMs: 60_000 });
    const second = { ...again.options, file: await prepareFile(dir, rows) };
    emu.ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'status-before-body' as const, status: 503 })));
    const error = await rejectionOf(pushRowFile(second));
    emu.ingest.injectFaults();
    expect(error.message).toContain("this block's rows are sent again (Purview took none of them this time)");
    const resent = await pushRowFile(second);
    expect(resent).toMatchObject({ rowsAcked: 30_000, possiblyDuplicated: [], rowsPossiblyDuplicated: 0 });
    expect(emu.ingest.accepted(again.app.jobId).map((b) => b.rows.length)).toEqual([30_000]);
  });
});

describe('an answer that is no receipt of the block', () => {
  const wideRows = (): string[] => makeRows(30_000).map((row) => row.replace('\tPatient Lookup ', `\tPatient Lookup ${'x'.repeat(1000)} `));

  it('a 2xx before the body went out whole (a proxy answering at the headers) acknowledges nothing: the block goes again', async () => {
    const run = await prepare(0, { blockRows: 100_000, timeoutMs: 60_000 });
    const file = await prepareFile(dir, wideRows());
    emu.ingest.injectFaults({ kind: 'status-before-body', status: 200 });
    const report = await pushRowFile({ ...run.options, file });
    emu.ingest.injectFaults();
    expect(report).toMatchObject({ blocks: 1, rowsAcked: 30_000, possiblyDuplicated: [], rowsPossiblyDuplicated: 0 });
    expect(run.events.filter((event) => event.type === 'block_sent')).toHaveLength(2);
    expect(emu.ingest.accepted(run.app.jobId).map((b) => b.rows.length)).toEqual([30_000]);

    // Every attempt answered so: nothing acknowledged, and the rows stay to send, unflagged.
    const again = await prepare(0, { blockRows: 100_000, timeoutMs: 60_000 });
    const second = { ...again.options, file: await prepareFile(dir, wideRows()) };
    emu.ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'status-before-body' as const, status: 200 })));
    const error = await rejectionOf(pushRowFile(second));
    emu.ingest.injectFaults();
    expect(error.message).toContain('HTTP 200 answered before the block was sent whole');
    expect(error.message).toContain("this block's rows are sent again (Purview took none of them this time)");
    expect(await pushRowFile(second)).toMatchObject({ rowsAcked: 30_000, possiblyDuplicated: [], rowsPossiblyDuplicated: 0 });
  });

  it('a 3xx (nothing follows redirects) is a final answer: the block is refused, and the next push sends it unflagged', async () => {
    const run = await prepare(25);
    emu.ingest.injectFaults({ kind: 'status', status: 307 });
    const error = await rejectionOf(pushRowFile(run.options));
    emu.ingest.injectFaults();
    expect(error.message).toContain('307');
    expect(run.ranges()[0]?.[0]).not.toBe('unknown');
    const report = await pushRowFile(run.options);
    expect(report).toMatchObject({ rowsAcked: 25, possiblyDuplicated: [], rowsPossiblyDuplicated: 0 });
    expect(emu.ingest.accepted(run.app.jobId).flatMap((b) => b.rows)).toHaveLength(25);
  });
});

describe('the retry budget spent on 429s', () => {
  it("says the block's rows are sent again unflagged: Purview answered every attempt and took none of them", async () => {
    const run = await prepare(25);
    emu.ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'status' as const, status: 429, retryAfter: '1' })));
    const error = await rejectionOf(pushRowFile(run.options));
    expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
    expect(error.message).toMatch(
      /after 4 attempt\(s\); last: HTTP 429 Too Many Requests\. Run again later: rows Purview acknowledged are not sent again, and this block's rows are sent again \(Purview took none of them this time\)\.$/,
    );
    expect(emu.ingest.accepted(run.app.jobId)).toEqual([]);
  });
});

describe('permanent answers', () => {
  it('403 for a job of another app: typed error saying what to fix, nothing acknowledged, no retry', async () => {
    const run = await prepare(25);
    const other = emu.newApp();
    const before = emu.ingest.requests;
    const error = await rejectionOf(pushRowFile({ ...run.options, jobId: other.jobId }));
    expect(error.code).toBe('BRG_ERR_PURVIEW_FORBIDDEN');
    expect(error.message).toBe(
      `Purview refused block 0 of this push (data row(s) 1–10 of the file, job ${other.jobId}) with 403 "jobId and corresponding appId do not match.": the job id does not belong to this Entra app in this tenant. ` +
        "Copy the job id from the connector created with this app id (Purview portal → Data connectors), or use that connector's app id, " +
        'and check purview.tenantId (a multi-tenant app has the same app id in every tenant). bridge push: --job-id, --app-id, --tenant-id.',
    );
    expect(emu.ingest.requests - before).toBe(1);
    expect(emu.ingest.accepted(other.jobId)).toEqual([]);
    expect(run.ranges().some(([state]) => state === 'acked')).toBe(false);
  });

  it('a certificate this machine does not trust (a private CA missing from caFile): one attempt, an error naming the settings, nothing acknowledged', async () => {
    const run = await prepare(25, { caPem: (await createSandboxCertificate()).certPem });
    const before = emu.ingest.requests;
    const error = await rejectionOf(pushRowFile(run.options));
    expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
    expect(error.message).toMatch(
      /^Block 0 of this push \(job \S+\) was not sent: the ingestion host's certificate is not accepted here \(DEPTH_ZERO_SELF_SIGNED_CERT\), which no retry changes/,
    );
    expect(error.message).toContain('add that CA to network.caFile (bridge push --ca-file)');
    expect(run.events.filter((event) => event.type === 'block_sent')).toHaveLength(1);
    expect(emu.ingest.requests - before).toBe(0);
    expect(run.ranges().some(([state]) => state === 'acked')).toBe(false);
  });

  it('400 with a reason: typed error, no retry', async () => {
    const run = await prepare(25);
    emu.ingest.injectFaults({ kind: 'status', status: 400, body: 'The file could not be validated.' });
    const error = await rejectionOf(pushRowFile(run.options));
    expect(error.code).toBe('BRG_ERR_PURVIEW_REJECTED');
    // Which rows: an operator finds the block Purview refused in the file.
    expect(error.message).toContain(
      `Purview rejected block 0 of this push (data row(s) 1–10 of the file, job ${run.app.jobId}) with 400 "The file could not be validated."`,
    );
    // One typed upstream error carrying the status and Purview's words.
    expect(error).toBeInstanceOf(PurviewError);
    expect(error).toMatchObject({ status: 400, reason: 'The file could not be validated.', blockIndex: 0 });
    expect(run.events.filter((e) => e.type === 'block_retry')).toEqual([]);
    // Purview said it did not take the block: its rows are as never sent (not flagged when sent again).
    expect(run.ranges()).toEqual([['unsent', 10]]);
  });

  it('400 whose body echoes a row of the block: no cell reaches the error, not even the first one before a cell break', async () => {
    const run = await prepare(25);
    const row = run.rows[3] as string;
    emu.ingest.injectFaults({ kind: 'status', status: 400, body: `Invalid row 4: ${row}` });
    const error = await rejectionOf(pushRowFile(run.options));
    expect(error.code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect(error).toMatchObject({ status: 400, reason: '', blockIndex: 0 });
    expect(error.message).toContain(`with 400; nothing was acknowledged for it.`);
    for (const cell of row.split('\t').filter((cell) => cell.length > 3)) expect(error.message).not.toContain(cell);
  });

  it("400 naming a patient of the block (quoted or not): status and phrase only; words without a block's value are kept", async () => {
    const name = 'Åse Øvrebø';
    const comment = 'Pt called from 5075551234 asking about labs';
    const street = '12 Elm Street';
    const cases: Array<[string, string]> = [
      [`{"message":"Invalid value '${name}' for column PATIENT.PAT_FIRST_NAME"}`, ''],
      [`{"message":"Invalid value ${name} for column PATIENT.PAT_FIRST_NAME"}`, ''],
      [`Invalid value ${name.toUpperCase()} for column PATIENT.PAT_FIRST_NAME.`, ''],
      // A cell holding a phone number: whole in what Purview sent, though no longer once numbers are scrubbed.
      [`{"message":"Invalid value ${comment} for column PATIENT.PAT_LAST_NAME"}`, ''],
      // Cut short, or reworded around a word of the cell.
      ['{"message":"Value exceeds 40 characters: Pt called from 50755"}', ''],
      ['{"message":"Elm Street 12 is not a valid address"}', ''],
      ['{"message":"Invalid value for column PATIENT.PAT_FIRST_NAME"}', 'Invalid value for column PATIENT.PAT_FIRST_NAME'],
      // Everyday words a code list's cell shares ("Patient Record Viewed", the event's name) keep nothing out.
      ['{"message":"Each record must have 9 fields"}', 'Each record must have 9 fields'],
    ];
    for (const [body, reason] of cases) {
      const run = await prepare(25);
      const cells = (run.rows[3] as string).split('\t');
      cells[2] = name; // PATIENT.PAT_FIRST_NAME of the block's fourth row
      cells[1] = 'Patient Record Viewed'; // ACCESS_LOG_METRIC.METRIC_NAME: a code list's value
      cells[3] = comment; // PATIENT.PAT_LAST_NAME (the test schema's columns)
      cells[4] = street; // PATIENT.ADD_LINE_1
      const rows = run.rows.map((row, i) => (i === 3 ? cells.join('\t') : row));
      const file = await prepareFile(dir, rows);
      emu.ingest.injectFaults({ kind: 'status', status: 400, body });
      const error = await rejectionOf(pushRowFile({ ...run.options, file }));
      expect(error, body).toMatchObject({ code: 'BRG_ERR_PURVIEW_REJECTED', status: 400, reason });
      const shown = JSON.stringify({ message: error.message, details: error.details });
      for (const part of ['Åse', 'Øvrebø', 'ÅSE', 'asking about labs', 'Elm Street']) expect(shown, body).not.toContain(part);
      if (reason) expect(error.message).toContain(`with 400 "${reason}"`);
    }
  });

  it("the emulator's own 400: a second file whose header differs from the job's", async () => {
    const run = await prepare(5);
    await pushRowFile(run.options);
    const otherHeader = await prepareFile(
      dir,
      makeRows(3).map((row) => `${row}\textra`),
      `${HEADER}\tCLARITY_EMP.USER_ID`,
    );
    const error = await rejectionOf(pushRowFile({ ...run.options, file: otherHeader }));
    expect(error.code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect(error.message).toContain(`with 400 "the header line differs from the job's earlier blocks"`);
  });

  it('401 is retried once with a fresh token, then is an auth error', async () => {
    const run = await prepare(5);
    const issued = emu.entra.stats.issued;
    emu.ingest.injectFaults({ kind: 'status', status: 401 }, { kind: 'status', status: 401 });
    const error = await rejectionOf(pushRowFile(run.options));
    expect(error.code).toBe('BRG_ERR_PURVIEW_AUTH');
    expect(emu.entra.stats.issued - issued).toBe(2);
    expect(run.events.filter((e) => e.type === 'block_retry').map((e) => e.type === 'block_retry' && [e.reason, e.delayMs])).toEqual([
      ['HTTP 401: retrying once with a new token', 0],
    ]);
  });

  it('a single 401 is healed by the refreshed token', async () => {
    const run = await prepare(5);
    const issued = emu.entra.stats.issued;
    emu.ingest.injectFaults({ kind: 'status', status: 401 });
    expect((await pushRowFile(run.options)).rowsAcked).toBe(5);
    expect(emu.entra.stats.issued - issued).toBe(2);
  });
});

describe('a block too large for the service', () => {
  it('413 tells to lower purview.blockRows / --block-rows; a smaller block size then delivers every row once', async () => {
    const small = await startEmulators({ maxBodyBytes: 64 * 1024 });
    try {
      const app = small.newApp();
      const rows = makeRows(2_000); // about 180 KB in one block of the default 100,000 rows
      const file = await prepareFile(dir, rows);
      const clock = new InstantClock();
      const options: PushOptions & { file: NormalizedFile } = {
        file,
        ingestionBase: small.ingest.baseUrl,
        jobId: app.jobId,
        destination: destinationKey({ ingestionBase: small.ingest.baseUrl, jobId: app.jobId }),
        tokenSource: small.tokenSource(app, clock),
        ledger: store,
        clock,
        logger: silentLogger(),
        retry: RETRY,
        caPem: small.tls.certPem,
      };
      const error = await rejectionOf(pushRowFile(options));
      expect(error).toMatchObject({ code: 'BRG_ERR_PURVIEW_REJECTED', status: 413 });
      expect(error.message).toContain('Lower purview.blockRows (bridge push --block-rows)');
      expect(error.message).not.toContain('purview.cloud');
      expect(small.ingest.requests).toBe(1);
      const report = await pushRowFile({ ...options, blockRows: 500 });
      expect(report).toMatchObject({ rowsAcked: 2_000, blocks: 4, rowsPossiblyDuplicated: 0 });
      expect(small.ingest.accepted(app.jobId).flatMap((block) => block.rows)).toEqual(rows);
    } finally {
      await small.close();
    }
  });
});

describe('uploads over the per-file limits', () => {
  it('splits into uploads that are each a connector file of their own, with one token for every block', async () => {
    const ids = ['aaaaaaaa-0000-4000-8000-000000000001', 'bbbbbbbb-0000-4000-8000-000000000002'];
    const issued = emu.entra.stats.issued;
    const run = await prepare(25, { limits: { maxRowsPerUpload: 15 }, newFileId: () => ids.shift() ?? 'extra' });
    const report = await pushRowFile(run.options);
    const accepted = emu.ingest.accepted(run.app.jobId);
    expect(accepted.map((b) => [b.filename, b.header, b.rows])).toEqual([
      ['tmp_aaaaaaaa-0000-4000-8000-0000000000010001.txt', HEADER, run.rows.slice(0, 10)],
      ['tmp_bbbbbbbb-0000-4000-8000-0000000000020001.txt', HEADER, run.rows.slice(10, 20)],
      ['tmp_bbbbbbbb-0000-4000-8000-0000000000020002.txt', HEADER, run.rows.slice(20, 25)],
    ]);
    expect(report).toMatchObject({ blocks: 3, rowsSent: 25, rowsAcked: 25 });
    expect(emu.entra.stats.issued - issued).toBe(1);
  });
});

describe('every attempt that went out not received, the retries ended by something else', () => {
  /** Entra refusing the app's secret (rotated, or revoked): permanent, not retried. */
  const SECRET_REVOKED = { status: 400, error: 'invalid_client', aadsts: 7000215, description: 'Invalid client secret provided.' };

  /**
   * The run's rows pushed as a flat file (ranges of its content) or as the pipeline's event spool (one event a row,
   * claimed by openEventBlock), with the same options; each push of a run is a "next run" of the one before.
   */
  function pushOf(run: Run, kind: 'file' | 'events'): (extra?: Partial<PushOptions>) => Promise<PushReport> {
    if (kind === 'file') return (extra = {}) => pushRowFile({ ...run.options, ...extra });
    const name = randomUUID();
    const spoolPath = join(dir, `events-${name}.txt`);
    const indexPath = join(dir, `events-${name}.idx`);
    const writer = new EventSpoolWriter(spoolPath, indexPath, HEADER);
    writer.append(run.rows.map((row, i) => ({ key: `ev-${name}-${i}|1`, recordedMs: Date.parse('2026-11-01T00:00:00Z') + i, lines: [row] })));
    writer.finish();
    return (extra = {}) => pushEventSpool({ ...run.options, ...extra, spoolPath, indexPath, source: `conn-${name}` });
  }

  it.each(['file', 'events'] as const)('a stop asked for during the last block ends the push delivered, not stopped (%s)', async (kind) => {
    const run = await prepare(25);
    const stop = new AbortController();
    let sent = 0;
    // Three blocks of 10, 10 and 5: the stop comes while the last one is on its way.
    const report = await pushOf(
      run,
      kind,
    )({
      stopAfterBlock: stop.signal,
      onEvent: (event) => {
        if (event.type === 'block_sent' && ++sent === 3) stop.abort();
      },
    });
    expect(report).toMatchObject({ blocks: 3, rowsSent: 25, rowsAcked: 25 });
    // Asked for during an earlier block, the push stops after it, the rest held back for the next push.
    const early = await prepare(25);
    const halt = new AbortController();
    const stopped = await rejectionOf(
      pushOf(
        early,
        kind,
      )({
        stopAfterBlock: halt.signal,
        onEvent: (event) => {
          if (event.type === 'block_sent') halt.abort();
        },
      }),
    );
    expect(stopped.code).toBe('BRG_ERR_ABORTED');
    expect(emu.ingest.accepted(early.app.jobId).flatMap((block) => block.rows)).toHaveLength(10);
  });

  /** The push's failure under these ingest faults (cleared after), and how many requests reached the emulator. */
  async function failureUnder(push: () => Promise<PushReport>, ...faults: IngestFault[]): Promise<{ error: BridgeError; requests: number }> {
    const before = emu.ingest.requests;
    emu.ingest.injectFaults(...faults);
    try {
      return { error: await rejectionOf(push()), requests: emu.ingest.requests - before };
    } finally {
      emu.ingest.injectFaults();
    }
  }

  /** The next push sends the failed block's rows once, unflagged (or flagged, when its outcome was unknown). */
  async function expectNextPush(run: Run, push: () => Promise<PushReport>, flagged: boolean): Promise<void> {
    const report = await push();
    expect(report).toMatchObject({
      blocks: 3,
      rowsSent: 25,
      rowsAcked: 25,
      possiblyDuplicated: flagged ? [0] : [],
      rowsPossiblyDuplicated: flagged ? 10 : 0,
    });
    expect(emu.ingest.accepted(run.app.jobId).flatMap((block) => block.rows)).toEqual(run.rows);
  }

  for (const kind of ['file', 'events'] as const) {
    it(`${kind}: a 401, then no new token: Purview took none of the block, and the next push sends its rows unflagged`, async () => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      await run.options.tokenSource.getToken(); // the token Purview then refuses
      const requests = emu.ingest.requests;
      emu.ingest.injectFaults({ kind: 'status', status: 401 });
      emu.entra.injectFaults(SECRET_REVOKED);
      try {
        const error = await rejectionOf(push());
        expect(error.code).toBe('BRG_ERR_PURVIEW_AUTH');
        expect(error.message).toContain('invalid_client');
      } finally {
        emu.ingest.injectFaults();
        emu.entra.injectFaults();
      }
      expect(emu.ingest.requests - requests).toBe(1);
      if (kind === 'file') expect(run.ranges()).toEqual([['unsent', 10]]);
      await expectNextPush(run, push, false);
    });

    it(`${kind}: a 429 whose Retry-After wait is cut by an abort: Purview took none of the block, and the next push sends its rows unflagged`, async () => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      const controller = new AbortController();
      const clock = new ManualClock('2026-11-01T00:00:00Z');
      emu.ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '300' });
      try {
        const pushing = push({ clock, signal: controller.signal });
        // Parked in the 300 s wait the 429 asked for.
        await vi.waitFor(() => expect(clock.pending).toBe(1), { timeout: 10_000 });
        controller.abort();
        await expect(pushing).rejects.toMatchObject({ name: 'AbortError' });
      } finally {
        emu.ingest.injectFaults();
      }
      expect(run.events.filter((e) => e.type === 'block_retry')).toEqual([expect.objectContaining({ attempt: 1, delayMs: 300_000 })]);
      if (kind === 'file') expect(run.ranges()).toEqual([['unsent', 10]]);
      await expectNextPush(run, push, false);
    });

    // A Retry-After the budget cannot wait out was cut to the 120 s backoff ceiling, and the block (up to 100,000 rows)
    // sent again before the server's time, into the throttle it had announced.
    it(`${kind}: a 429 whose Retry-After outlasts the retry budget ends the retries at once: Purview took none of the block, and the next push sends its rows unflagged`, async () => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      const { error, requests } = await failureUnder(push, { kind: 'status', status: 429, retryAfter: '3600' });
      expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
      expect(error.message).toBe(
        `Block 0 of this push (job ${run.app.jobId}) was not acknowledged after 1 attempt(s); last: HTTP 429 Too Many Requests. ` +
          "Run again later: rows Purview acknowledged are not sent again, and this block's rows are sent again (Purview took none of them this time).",
      );
      expect(requests).toBe(1);
      expect(run.clock.slept).toEqual([]);
      expect(run.events.filter((e) => e.type === 'block_retry')).toEqual([]);
      if (kind === 'file') expect(run.ranges()).toEqual([['unsent', 10]]);
      await expectNextPush(run, push, false);
    });

    it(`${kind} (control): after a 503 that may have stored the block, a 429 whose Retry-After outlasts the budget left ends the retries at once, the block still unknown`, async () => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      // 600 s from the 429 ends 0.5 s past the 600 s budget: the 503's backoff came first.
      const { error, requests } = await failureUnder(push, { kind: 'status', status: 503 }, { kind: 'status', status: 429, retryAfter: '600' });
      expect(error.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
      expect(error.message).toBe(
        `Block 0 of this push (job ${run.app.jobId}) was not acknowledged after 2 attempt(s); last: HTTP 429 Too Many Requests. ` +
          "Run again later: rows Purview acknowledged are not sent again, and this block's rows are sent again and flagged possibly duplicated.",
      );
      expect(requests).toBe(2);
      expect(run.clock.slept).toEqual([500]);
      if (kind === 'file') expect(run.ranges()).toEqual([['unknown', 10]]);
      await expectNextPush(run, push, true);
    });

    it(`${kind} (control): an attempt whose whole body went out without an answer stays unknown through a later 401 and a failed token`, async () => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      await run.options.tokenSource.getToken();
      emu.ingest.injectFaults({ kind: 'reset-before-accept' }, { kind: 'status', status: 401 });
      emu.entra.injectFaults(SECRET_REVOKED);
      try {
        expect((await rejectionOf(push())).code).toBe('BRG_ERR_PURVIEW_AUTH');
      } finally {
        emu.ingest.injectFaults();
        emu.entra.injectFaults();
      }
      expect(run.events.filter((e) => e.type === 'block_sent')).toHaveLength(2);
      if (kind === 'file') expect(run.ranges()).toEqual([['unknown', 10]]);
      await expectNextPush(run, push, true);
    });

    it(`${kind} (control): an attempt aborted in flight after a 429 stays unknown: its body may have gone out`, async () => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      const controller = new AbortController();
      emu.ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '1' }, { kind: 'delay', ms: 2_000 });
      try {
        const pushing = push({
          signal: controller.signal,
          onEvent: (event) => {
            run.events.push(event);
            if (event.type === 'block_sent' && event.attempt === 2) setTimeout(() => controller.abort(), 200);
          },
        });
        await expect(pushing).rejects.toMatchObject({ name: 'AbortError' });
      } finally {
        emu.ingest.injectFaults();
      }
      if (kind === 'file') expect(run.ranges()).toEqual([['unknown', 10]]);
      await expectNextPush(run, push, true);
    });
  }

  it("events: the first token never came, so no attempt went out: the next push sends the block's events unflagged", async () => {
    const run = await prepare(25);
    const push = pushOf(run, 'events');
    const requests = emu.ingest.requests;
    emu.entra.injectFaults(SECRET_REVOKED);
    try {
      expect((await rejectionOf(push())).code).toBe('BRG_ERR_PURVIEW_AUTH');
    } finally {
      emu.entra.injectFaults();
    }
    expect(emu.ingest.requests).toBe(requests);
    await expectNextPush(run, push, false);
  });

  it.each(['file', 'events'] as const)(
    'a listener of block_sent that throws (the run log on a full disk) stops the push before the request: the next push sends the block unflagged (%s)',
    async (kind) => {
      const run = await prepare(25);
      const push = pushOf(run, kind);
      const requests = emu.ingest.requests;
      const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      const error = await push({
        onEvent: (event) => {
          if (event.type === 'block_sent') throw full;
        },
      }).catch((e: unknown) => e);
      expect(error).toBe(full);
      expect(emu.ingest.requests).toBe(requests);
      if (kind === 'file') expect(run.ranges()).toEqual([['unsent', 10]]);
      await expectNextPush(run, push, false);
    },
  );
});
