/**
 * The flat-file source (issue #19) through runSync, against the real SQLite state and the Purview emulators: which
 * files a run takes (settled, matching, oldest first), what it refuses and where it puts them, what it sends (each row
 * once: a file dropped twice or re-run after a failed archive sends nothing again), and what the state says after.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../src/clock.js';
import type { ConnectorSchema } from '../../src/connector-file/index.js';
import type { BridgeError } from '../../src/errors.js';
import { uuidSource } from '../../src/ids.js';
import { silentLogger } from '../../src/log.js';
import { builtinMappingPath, loadMapping } from '../../src/mapping/index.js';
import { destinationKey } from '../../src/purview/index.js';
import { createMetrics } from '../../src/server/metrics.js';
import type { FileDropDeps, FileDropSummary } from '../../src/sync/file-drop.js';
import { archiveFile, type DropFile, listReady, statFile } from '../../src/sync/file-drop-folder.js';
import { wholeFileRefusalsOf } from '../../src/sync/file-drop-steps.js';
import { type DeliveredFile, grownSinceDelivered, watchDelivered } from '../../src/sync/file-drop-watch.js';
import { openStateStore, runSync, type StateStore, type SyncDeps, SyncEvents, type SyncRequest, ZERO_COUNTS } from '../../src/sync/index.js';
import { type DropDirs, drop, dropDirs, EPIC_COLUMNS, EPIC_HEADER, epicRows, fileText, headerOf } from '../connector-file/drop-support.js';
import { type Emulators, startEmulators, tempDir } from '../purview/support.js';

let emu: Emulators;
/** The emulators of most worlds (a world may bring its own, with other limits). */
let shared: Emulators;
const root = tempDir('bridge-file-drop-');
beforeAll(async () => {
  emu = await startEmulators();
  shared = emu;
});
afterAll(async () => {
  await emu?.close();
  // A failed assertion may have left a directory immutable (makeReadOnly below).
  try {
    if (process.getuid?.() === 0) execFileSync('chattr', ['-R', '-i', root], { stdio: 'ignore' });
  } catch {
    // nothing was left immutable, or chattr is missing
  }
  rmSync(root, { recursive: true, force: true });
});

const NOW = Date.parse('2026-11-02T03:00:00Z');
const MINUTE = 60_000;

interface World {
  readonly dirs: DropDirs;
  readonly store: StateStore;
  readonly events: SyncEvents;
  readonly app: ReturnType<Emulators['newApp']>;
  clock: { t: number };
  /** `over`: source settings changed for this run (a setting changed between runs). */
  run(request?: Partial<SyncRequest>, blockRows?: number, over?: Partial<FileDropDeps>): Promise<FileDropSummary>;
  accepted(): string[];
  close(): void;
}

function world(
  options: {
    settleMs?: number;
    pattern?: string;
    encoding?: string;
    maxLineBytes?: number;
    freeBytes?: () => number;
    emulators?: Emulators;
    schema?: ConnectorSchema;
  } = {},
): World {
  const emu = options.emulators ?? shared;
  const dirs = dropDirs('world-', root);
  const stateDir = join(dirs.root, 'state');
  const clockState = { t: NOW };
  const clock: Clock = { now: () => clockState.t, sleep: systemClock.sleep };
  const store = openStateStore(stateDir, systemClock);
  const events = new SyncEvents();
  const schema = options.schema ?? 'epic';
  const app = emu.newApp(schema);
  const fileDrop: FileDropDeps = {
    // The tests set file times by hand against a fixed clock: the change time they mean is the mtime they set.
    folder: {
      dir: dirs.dir,
      pattern: options.pattern ?? '*.txt',
      archiveDir: dirs.archiveDir,
      settleMs: options.settleMs ?? MINUTE,
      changedAt: (f) => f.mtimeMs,
    },
    schema,
    encoding: options.encoding ?? 'utf-8',
    ...(options.maxLineBytes ? { maxLineBytes: options.maxLineBytes } : {}),
    ...(options.freeBytes ? { freeBytes: options.freeBytes } : {}),
  };
  const deps = (blockRows: number, over: Partial<FileDropDeps> = {}): SyncDeps => ({
    connector: 'drop',
    store,
    clock,
    logger: silentLogger(),
    newId: uuidSource,
    events,
    stateDir,
    target: { destination: destinationKey({ ingestionBase: emu.ingest.baseUrl, jobId: app.jobId }), source: 'drop' },
    retainFiles: false,
    rejectsRetentionMs: 86_400_000,
    ledgerRetentionMs: 30 * 86_400_000,
    lease: { ttlMs: 60_000, identity: { host: 'test', pid: 1, command: 'test' }, isStale: () => false, every: () => () => undefined },
    window: { overlapMs: 0, settleMs: 0, initialLookbackMs: 0 },
    prefetchEvents: 100,
    mapping: loadMapping(builtinMappingPath(schema)),
    source: () => {
      throw new Error('a flat-file run reads no event source');
    },
    purview: () => ({ ingestionBase: emu.ingest.baseUrl, jobId: app.jobId, tokenSource: emu.tokenSource(app, systemClock), blockRows, caPem: emu.tls.certPem }),
    fileDrop: { ...fileDrop, ...over },
  });
  return {
    dirs,
    store,
    events,
    app,
    clock: clockState,
    run: async (request = {}, blockRows = 4, over = {}) => (await runSync(deps(blockRows, over), { trigger: 'cli', ...request })) as FileDropSummary,
    accepted: () => emu.ingest.accepted(app.jobId).flatMap((block) => block.rows),
    close: () => store.close(),
  };
}

const ls = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);

describe('flat-file source: what a run takes', () => {
  it('takes settled files oldest first, sends every row once, archives them to done/ and moves the watermark to the newest', async () => {
    const w = world();
    const a = epicRows(5, 'a');
    const b = epicRows(3, 'b');
    drop(w.dirs, 'b.txt', fileText(b), NOW - 10 * MINUTE);
    drop(w.dirs, 'a.txt', fileText(a, EPIC_HEADER, '\n'), NOW - 20 * MINUTE); // older, LF line ends
    drop(w.dirs, 'fresh.txt', fileText(epicRows(2, 'f')), NOW - 30_000); // still settling
    drop(w.dirs, 'notes.csv', 'not matched', NOW - 20 * MINUTE);
    const order: string[] = [];
    w.events.on('page', (e) => order.push(`page ${e.rows}`));
    w.events.on('spool_complete', (e) => order.push(`spool ${e.rows}`));
    w.events.on('block_acked', (e) => order.push(`block ${e.index}`));
    const summary = await w.run();
    expect(summary.files.map((f) => [f.file, f.outcome, f.rows])).toEqual([
      ['a.txt', 'delivered', 5],
      ['b.txt', 'delivered', 3],
    ]);
    expect(summary.drop).toMatchObject({ ready: 2, settling: 1, delivered: 2, rejected: 0 });
    expect(summary.counts).toMatchObject({ events: 8, rows: 8, rejects: 0, blocks: 3, rowsAcked: 8, rowsAlreadyDelivered: 0 });
    expect(order).toEqual(['page 5', 'page 3', 'spool 8', 'block 0', 'block 1', 'block 2']);
    // a.txt's five rows in blocks of 4 and 1, then b.txt's three: each file's blocks start with the header.
    expect(w.accepted()).toEqual([...a, ...b]);
    expect(emu.ingest.accepted(w.app.jobId).map((block) => block.header)).toEqual([EPIC_HEADER, EPIC_HEADER, EPIC_HEADER]);
    expect(ls(w.dirs.dir)).toEqual(['fresh.txt', 'notes.csv']);
    expect(ls(join(w.dirs.archiveDir, 'done'))).toEqual(['a.txt', 'b.txt']);
    expect(w.store.getWatermark('drop')).toBe(new Date(NOW - 10 * MINUTE).toISOString());
    const run = w.store.getRun(summary.runId);
    expect(run).toMatchObject({ state: 'completed', counts: { rows: 8, rowsAcked: 8 } });
    expect((run?.details as { files?: unknown[] } | undefined)?.files).toHaveLength(2);
    expect(ls(join(w.dirs.root, 'state', 'drop-spool'))).toEqual([]);

    // Once settled, the fresh file is taken by the next run; nothing else is sent again.
    w.clock.t = NOW + 5 * MINUTE;
    const next = await w.run();
    expect(next.files.map((f) => [f.file, f.outcome])).toEqual([['fresh.txt', 'delivered']]);
    expect(w.accepted()).toHaveLength(10);
    w.close();
  });

  it('a spool that cannot be removed once its file was pushed (held open) is a warning: the run completes, once', async () => {
    const w = world();
    const rows = epicRows(3, 'k');
    drop(w.dirs, 'k.txt', fileText(rows), NOW - 10 * MINUTE);
    const spools = join(w.dirs.root, 'state', 'drop-spool');
    // Once the only block is acknowledged, the spool becomes something rmSync cannot remove (as a file held open on Windows).
    w.events.on('block_acked', () => {
      for (const name of ls(spools)) {
        rmSync(join(spools, name));
        mkdirSync(join(spools, name));
        writeFileSync(join(spools, name, 'held'), '');
      }
    });
    const summary = await w.run({}, 100);
    expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([['k.txt', 'delivered']]);
    expect(w.store.getRun(summary.runId)).toMatchObject({ state: 'completed', counts: { rowsAcked: 3 } });
    expect(w.store.getRun(summary.runId)?.error).toBeUndefined();
    expect(w.accepted()).toEqual(rows);
    rmSync(spools, { recursive: true, force: true });
    w.close();
  });

  it('archives a file dropped twice (any name) without sending it again: "already delivered"', async () => {
    const w = world();
    const rows = epicRows(6, 'twice');
    drop(w.dirs, 'day.txt', fileText(rows), NOW - 10 * MINUTE);
    await w.run();
    drop(w.dirs, 'day.txt', fileText(rows), NOW - 9 * MINUTE); // the same name again
    drop(w.dirs, 'copy.txt', fileText(rows, EPIC_HEADER, '\n'), NOW - 8 * MINUTE); // same rows, LF: same normalised content
    const again = await w.run();
    expect(again.files.map((f) => [f.file, f.outcome, f.rowsSent, f.rowsAlreadyDelivered])).toEqual([
      ['day.txt', 'already-delivered', 0, 6],
      ['copy.txt', 'already-delivered', 0, 6],
    ]);
    expect(again.counts).toMatchObject({ blocks: 0, rowsAcked: 12, rowsAlreadyDelivered: 12 });
    expect(w.accepted()).toEqual(rows);
    const done = ls(join(w.dirs.archiveDir, 'done'));
    expect(done).toHaveLength(3);
    expect(done).toContain('day.txt');
    expect(done.filter((name) => name.startsWith('day.') && name !== 'day.txt')).toHaveLength(1);
    w.close();
  });

  it('feeds the same events as the other sources: metrics count its runs, rows and refusals', async () => {
    const w = world();
    const metrics = createMetrics();
    const detach = metrics.observe(w.events, 'drop');
    drop(w.dirs, 'a.txt', fileText(epicRows(5, 'm')), NOW - 10 * MINUTE);
    drop(w.dirs, 'b.txt', 'no header here\n', NOW - 10 * MINUTE);
    await w.run();
    detach();
    const text = await metrics.registry.metrics();
    expect(text).toContain('bridge_runs_total{connector="drop",outcome="completed"} 1');
    expect(text).toContain('bridge_events_pulled_total{connector="drop"} 5');
    expect(text).toContain('bridge_rows_pushed_total{connector="drop"} 5');
    expect(text).toContain('bridge_rows_rejected_total{connector="drop",reason="file-no-delimiter"} 1');
    expect(text).toMatch(/bridge_rows_total\{connector="drop",outcome="acknowledged"\} 5/);
    w.close();
  });

  it('matches the pattern (glob) and leaves dot files alone', async () => {
    const w = world({ pattern: 'access_log_*.csv', settleMs: 0 });
    drop(w.dirs, 'access_log_1.csv', fileText(epicRows(1, 'p')), NOW - MINUTE);
    drop(w.dirs, '.access_log_2.csv', fileText(epicRows(1, 'q')), NOW - MINUTE);
    drop(w.dirs, 'access_log_3.txt', fileText(epicRows(1, 'r')), NOW - MINUTE);
    const summary = await w.run();
    expect(summary.files.map((f) => f.file)).toEqual(['access_log_1.csv']);
    w.close();
  });

  it('refuses to start while a FHIR run of the connector is stopped mid-push (the source was switched): its spool stays for the finish', async () => {
    const w = world();
    drop(w.dirs, 'a.txt', fileText(epicRows(3, 'switch')), NOW - 10 * MINUTE);
    const spoolDir = join(w.dirs.root, 'state', 'spool');
    mkdirSync(spoolDir, { recursive: true });
    const spoolPath = join(spoolDir, 'fhir-run.txt');
    writeFileSync(spoolPath, 'rows of a FHIR window\n');
    w.store.createRun({
      id: 'fhir-run',
      connector: 'drop',
      state: 'running',
      trigger: 'cli',
      since: '2026-11-01T00:00:00.000Z',
      until: '2026-11-02T00:00:00.000Z',
      startedAt: '2026-11-02T00:00:00.000Z',
      counts: { ...ZERO_COUNTS },
      dryRun: false,
    });
    w.store.beginPush('fhir-run', { spoolPath }, []);
    const error = await w.run().catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_CONNECTOR_STATE');
    expect((error as BridgeError).message).toContain('has an unfinished push (run fhir-run');
    expect((error as BridgeError).message).toContain('Set its source back to what it was and run `bridge sync` once');
    expect(w.store.getRun('fhir-run')?.state).toBe('pushing');
    expect(existsSync(spoolPath)).toBe(true);
    expect(ls(w.dirs.dir)).toEqual(['a.txt']);
    expect(w.accepted()).toEqual([]);
    w.close();
  });

  it('refuses a window: a drop folder has none', async () => {
    const w = world();
    const error = await w.run({ since: '2026-11-01T00:00:00Z' }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((error as BridgeError).message).toContain('no time window');
    w.close();
  });

  it('a dry run checks every file, writes what would be sent, and moves or sends nothing', async () => {
    const w = world();
    const rows = epicRows(3, 'dry');
    drop(w.dirs, 'a.txt', fileText(rows), NOW - 10 * MINUTE);
    drop(w.dirs, 'bad.txt', 'nonsense\n', NOW - 10 * MINUTE);
    const out = join(w.dirs.root, 'dry.txt');
    const summary = await w.run({ dryRunOut: out });
    expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([
      ['a.txt', 'checked'],
      ['bad.txt', 'rejected'],
    ]);
    expect(readFileSync(out, 'utf8')).toBe(fileText(rows));
    expect(ls(w.dirs.dir)).toEqual(['a.txt', 'bad.txt']);
    expect(w.accepted()).toEqual([]);
    expect(w.store.getWatermark('drop')).toBeUndefined();
    w.close();
  });
});

describe('flat-file source: a file Purview refuses', () => {
  it('moves it to rejected/ saying which rows Purview took, and delivers the files after it (the connector does not stick)', async () => {
    const w = world();
    const a = epicRows(3, 'refa');
    const b = epicRows(6, 'refb');
    const c = epicRows(3, 'refc');
    drop(w.dirs, 'a.txt', fileText(a), NOW - 30 * MINUTE);
    drop(w.dirs, 'b.txt', fileText(b), NOW - 20 * MINUTE);
    drop(w.dirs, 'c.txt', fileText(c), NOW - 10 * MINUTE);
    // a's block and b's first are taken; b's second is refused (400).
    emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'Row 2 is malformed.' });
    const summary = await w.run();
    expect(summary.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([
      ['a.txt', 'delivered', ''],
      ['b.txt', 'rejected', 'purview-rejected'],
      ['c.txt', 'delivered', ''],
    ]);
    expect(w.accepted()).toEqual([...a, ...b.slice(0, 4), ...c]);
    expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual(['b.txt', 'b.txt.why.txt']);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'b.txt.why.txt'), 'utf8');
    expect(why).toContain('Reason: purview-rejected');
    expect(why).toContain('Row 2 is malformed.');
    expect(why).toContain('Purview acknowledged the first 4; the other 2 were not delivered.');
    expect(why).toContain('Drop a new file with the header line and only the rows after them, fixed.');
    expect(ls(w.dirs.dir)).toEqual([]);
    // 12 rows read: 10 delivered, b's last 2 refused; b's blocks count like the others'.
    expect(summary.counts).toMatchObject({ events: 12, rows: 10, rejects: 2, rowsAcked: 10, blocks: 4, blocksAcked: 3 });
    // The two rows dropped again as a new file go out, once; nothing else is sent again.
    drop(w.dirs, 'b-rest.txt', fileText(b.slice(4)), NOW - 5 * MINUTE);
    await w.run();
    expect(w.accepted()).toEqual([...a, ...b.slice(0, 4), ...c, ...b.slice(4)]);
    w.close();
  });
});

describe('flat-file source: a block too large for Purview (413)', () => {
  it('stops the run telling to lower the block size, and leaves every file in the folder for a run with a smaller one', async () => {
    const small = await startEmulators({ maxBodyBytes: 16 * 1024 });
    try {
      const w = world({ emulators: small });
      const a = epicRows(300, 'bigA'); // about 45 KB: one block of the default 100,000 rows is over the limit
      const b = epicRows(300, 'bigB');
      drop(w.dirs, 'a.txt', fileText(a), NOW - 20 * MINUTE);
      drop(w.dirs, 'b.txt', fileText(b), NOW - 10 * MINUTE);
      const error = (await w.run({}, 100_000).catch((e: unknown) => e)) as BridgeError;
      expect(error.code).toBe('BRG_ERR_PURVIEW_REJECTED');
      expect(error.message).toContain('with 413');
      expect(error.message).toContain('Lower purview.blockRows (bridge push --block-rows)');
      expect(ls(w.dirs.dir)).toEqual(['a.txt', 'b.txt']);
      expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual([]);
      expect(w.store.listRuns({ connector: 'drop', limit: 1 })[0]).toMatchObject({
        state: 'failed',
        error: { code: 'BRG_ERR_PURVIEW_REJECTED', message: expect.stringContaining('Lower purview.blockRows') },
      });
      // With a smaller block size every row goes out, once.
      const summary = await w.run({}, 50);
      expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([
        ['a.txt', 'delivered'],
        ['b.txt', 'delivered'],
      ]);
      expect(w.accepted()).toEqual([...a, ...b]);
      w.close();
    } finally {
      await small.close();
    }
  });
});

describe('flat-file source: a refused file replaced while it waited', () => {
  it('leaves the new file of that name in the folder for the next run instead of putting it in rejected/', async () => {
    const w = world();
    const path = drop(w.dirs, 'daily.txt', fileText(epicRows(2, 'old')), NOW - 10 * MINUTE);
    const next = epicRows(3, 'next');
    // Checked, then replaced (the export renames its next file over the name) while Purview refuses the old one.
    const detach = w.events.on('spool_complete', () => {
      writeFileSync(`${path}.tmp`, fileText(next));
      renameSync(`${path}.tmp`, path);
      utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    });
    emu.ingest.injectFaults({ kind: 'status', status: 400, body: 'Rejected.' });
    const first = await w.run();
    detach();
    expect(first.files.map((f) => [f.file, f.outcome])).toEqual([['daily.txt', 'vanished']]);
    expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual([]);
    await w.run();
    expect(w.accepted()).toEqual(next);
    w.close();
  });
});

describe('flat-file source: a job that refuses every file', () => {
  it('stops the run at the second file refused whole: the job, not the files, is wrong (the second stays in the folder)', async () => {
    const w = world();
    drop(w.dirs, 'a.txt', fileText(epicRows(2, 'allA')), NOW - 30 * MINUTE);
    drop(w.dirs, 'b.txt', fileText(epicRows(2, 'allB')), NOW - 20 * MINUTE);
    drop(w.dirs, 'c.txt', fileText(epicRows(2, 'allC')), NOW - 10 * MINUTE);
    emu.ingest.injectFaults(...Array.from({ length: 3 }, () => ({ kind: 'status' as const, status: 400, body: 'Column mapping does not match.' })));
    const error = await w.run().catch((e: unknown) => e);
    emu.ingest.injectFaults();
    expect((error as BridgeError).code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual(['a.txt', 'a.txt.why.txt']);
    expect(ls(w.dirs.dir)).toEqual(['b.txt', 'c.txt']);
    expect(w.accepted()).toEqual([]);
    w.close();
  });

  it('counts the refusals across runs: with one file a run, the second run stops and its file stays; one accepted file ends the streak', async () => {
    const w = world();
    const refuse = () => emu.ingest.injectFaults({ kind: 'status', status: 400, body: 'Column mapping does not match.' });
    drop(w.dirs, 'd1.txt', fileText(epicRows(2, 'day1')), NOW - 30 * MINUTE);
    refuse();
    const first = await w.run();
    expect(first.files.map((f) => [f.file, f.outcome])).toEqual([['d1.txt', 'rejected']]);
    // Kept for this job only: a connector moved to another job (the usual fix for a wrong one) starts afresh.
    const streakFor = (jobId: string): number =>
      wholeFileRefusalsOf({
        store: w.store,
        connector: 'drop',
        target: { destination: destinationKey({ ingestionBase: emu.ingest.baseUrl, jobId }), source: 'drop' },
      } as SyncDeps);
    expect([streakFor(w.app.jobId), streakFor('another-job')]).toEqual([1, 0]);
    drop(w.dirs, 'd2.txt', fileText(epicRows(2, 'day2')), NOW - 20 * MINUTE);
    refuse();
    const second = await w.run().catch((e: unknown) => e);
    emu.ingest.injectFaults();
    expect((second as BridgeError).code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect((second as BridgeError).message).toMatch(
      /^d2\.txt stays in the drop folder: Purview refused its first block, right after it refused another file whole/,
    );
    expect((second as BridgeError).message).toContain('move it aside by hand');
    expect(ls(w.dirs.dir)).toEqual(['d2.txt']);
    expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual(['d1.txt', 'd1.txt.why.txt']);
    // The job fixed: d2 goes out, and a later single refusal is the file's again (moved aside, the run completes).
    const third = await w.run();
    expect(third.files.map((f) => [f.file, f.outcome])).toEqual([['d2.txt', 'delivered']]);
    drop(w.dirs, 'd3.txt', fileText(epicRows(2, 'day3')), NOW - 10 * MINUTE);
    refuse();
    const fourth = await w.run();
    emu.ingest.injectFaults();
    expect(fourth.files.map((f) => [f.file, f.outcome])).toEqual([['d3.txt', 'rejected']]);
    expect(w.accepted()).toEqual(epicRows(2, 'day2'));
    w.close();
  });
});

describe('flat-file source: bad input, nothing lost', () => {
  it('moves each bad file to rejected/ with a .why.txt naming line and column, and delivers the good ones', async () => {
    const w = world();
    const good = epicRows(4, 'good');
    const base = epicRows(3, 'bad');
    const swapped = [...EPIC_COLUMNS];
    [swapped[3], swapped[4]] = [swapped[4] as string, swapped[3] as string];
    // Row 2 (line 3): field 8 holds a windows-1252 'é' (0xE9), not UTF-8.
    const cells = (base[1] as string).split('\t');
    const before = `${cells.slice(0, 7).join('\t')}\tMi`;
    const badUtf8 = Buffer.concat([
      Buffer.from(`${EPIC_HEADER}\r\n${base[0]}\r\n${before}`),
      Buffer.from([0xe9]),
      Buffer.from(`e\t${cells.slice(8).join('\t')}\r\n`),
    ]);
    const files: Array<[string, string | Buffer]> = [
      ['01-empty.txt', ''],
      ['02-header-only.txt', `${EPIC_HEADER}\r\n`],
      ['03-wrong-name.txt', fileText(base, EPIC_HEADER.replace('PATIENT.CITY', 'PATIENT.TOWN'))],
      ['04-wrong-order.txt', fileText(base, swapped.join('\t'))],
      ['05-mixed.txt', fileText([base[0] as string, (base[1] as string).replace(/\t/g, '|'), base[2] as string])],
      ['06-not-utf8.txt', badUtf8],
      ['07-too-many.txt', fileText([base[0] as string, `${base[1]}\tEXTRA-SECRET`, base[2] as string])],
      ['08-good.txt', fileText(good)],
    ];
    for (const [i, [name, content]] of files.entries()) drop(w.dirs, name, content, NOW - (20 - i) * MINUTE);
    const summary = await w.run();
    const outcome = Object.fromEntries(summary.files.map((f) => [f.file, f]));
    expect(summary.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([
      ['01-empty.txt', 'rejected', 'empty'],
      ['02-header-only.txt', 'rejected', 'header-only'],
      ['03-wrong-name.txt', 'rejected', 'wrong-header'],
      ['04-wrong-order.txt', 'rejected', 'wrong-header'],
      ['05-mixed.txt', 'rejected', 'field-count'],
      ['06-not-utf8.txt', 'rejected', 'not-utf8'],
      ['07-too-many.txt', 'rejected', 'field-count'],
      ['08-good.txt', 'delivered', ''],
    ]);
    expect(w.accepted()).toEqual(good);
    expect(ls(w.dirs.dir)).toEqual([]);
    expect(ls(join(w.dirs.archiveDir, 'done'))).toEqual(['08-good.txt']);
    expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual(files.slice(0, 7).flatMap(([name]) => [name, `${name}.why.txt`]));
    const why = (name: string): string => readFileSync(join(w.dirs.archiveDir, 'rejected', `${name}.why.txt`), 'utf8');
    expect(outcome['03-wrong-name.txt']).toMatchObject({ line: 1, column: EPIC_HEADER.indexOf('PATIENT.CITY') + 1 });
    expect(why('03-wrong-name.txt')).toContain('field 12 must be "PATIENT.CITY"; found a name that is no epic column');
    expect(why('04-wrong-order.txt')).toContain('field 4 must be "ZC_METRIC_GROUP.NAME"; found "ZC_ACCESS_ACTION.NAME", which belongs at field 5');
    expect(why('04-wrong-order.txt')).toContain('  ZC_METRIC_GROUP.NAME\n  ZC_ACCESS_ACTION.NAME');
    expect(why('05-mixed.txt')).toContain('line 3 has 1 field(s), the header has 22 (tab-separated).');
    expect(why('05-mixed.txt')).toContain('It looks pipe-separated');
    // The column counts characters (the 'Å' before it is one), the field is the header's 8th.
    const column = [...before].length + 1;
    expect(outcome['06-not-utf8.txt']).toMatchObject({ line: 3, column });
    expect(why('06-not-utf8.txt')).toContain(`line 3, column ${column} (field 8 "PATIENT.PAT_MIDDLE_NAME") is not valid UTF-8`);
    expect(why('06-not-utf8.txt')).toContain('source.encoding');
    expect(outcome['07-too-many.txt']).toMatchObject({ line: 3, column: [...(base[1] as string)].length + 2 });
    expect(why('07-too-many.txt')).toContain('Field 23 starts at column');
    expect(why('02-header-only.txt')).toContain('has a header and no rows');
    // Rows of refused files are counted as rejected; nothing of them was sent.
    expect(summary.counts).toMatchObject({ rows: 4, rowsAcked: 4, rejects: 3 + 3 + 3 + 2 + 3 });
    expect(summary.rejectReasons).toMatchObject({ 'file-empty': 0, 'file-header-only': 0, 'file-wrong-header': 6, 'file-field-count': 6, 'file-not-utf8': 2 });
    const rejects = readFileSync(join(w.dirs.root, 'state', 'rejects', `${summary.runId}.ndjson`), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string });
    expect(rejects.map((r) => r.file)).toEqual(files.slice(0, 7).map(([name]) => name));
    // No cell value in any message, log or record (the extra field's text, the names).
    const record = JSON.stringify(w.store.getRun(summary.runId));
    for (const text of [record, JSON.stringify(summary.files)]) {
      expect(text).not.toContain('EXTRA-SECRET');
      expect(text).not.toContain('Åse');
    }
    w.close();
  });

  it('refuses a comma file whose quoted cell the line ends before it closes (a line break in it, a row cut short): no row of it goes out', async () => {
    const w = world({ pattern: '*.csv', schema: 'healthcare' });
    const header = headerOf('healthcare', ',');
    const width = header.split(',').length;
    const row = (tag: string, last = `${tag}-last`): string => [...Array.from({ length: width - 1 }, (_, c) => `${tag}.${c}`), last].join(',');
    // Line 3 opens its last cell and ends; its fields count right, and the next row would be read into that cell.
    drop(w.dirs, '1-break.csv', fileText([row('a'), row('b', '"Smith,'), `Jo"${row('c').slice(row('c').indexOf(','))}`], header), NOW - 20 * MINUTE);
    // The export's last row cut in a quoted cell (no line end yet), its fields counting right.
    drop(w.dirs, '2-cut.csv', `${header}\r\n${row('d')}\r\n${row('e', '"Smith, J')}`, NOW - 19 * MINUTE);
    const good = [row('f', '"Smith, Jo"'), row('g', 'O"Neil')];
    drop(w.dirs, '3-good.csv', fileText(good, header), NOW - 18 * MINUTE);
    const summary = await w.run();
    expect(summary.files.map((f) => [f.file, f.outcome, f.reason ?? '', f.line ?? 0])).toEqual([
      ['1-break.csv', 'rejected', 'open-quote', 3],
      ['2-cut.csv', 'rejected', 'open-quote', 3],
      ['3-good.csv', 'delivered', '', 0],
    ]);
    const column = row('b', '').length + 1;
    expect(summary.files[0]).toMatchObject({ column });
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', '1-break.csv.why.txt'), 'utf8');
    expect(why).toContain(`line 3, column ${column} (field ${width} "Employee First Name") opens a quoted cell that the line ends before it closes`);
    expect(why).toContain('must close on its line');
    expect(why).not.toContain('Smith');
    expect(w.accepted()).toEqual(good);
    w.close();
  });

  it('converts the configured encoding (and a UTF-16 BOM over it) to UTF-8, and drops a UTF-8 BOM', async () => {
    const w = world({ encoding: 'windows-1252' });
    const rows = epicRows(2, 'enc');
    drop(w.dirs, '1-cp1252.txt', Buffer.from(fileText(rows), 'latin1'), NOW - 30 * MINUTE);
    const utf16 = epicRows(2, 'u16');
    drop(w.dirs, '2-utf16.txt', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(fileText(utf16), 'utf16le')]), NOW - 20 * MINUTE);
    const bom = epicRows(2, 'bom');
    drop(w.dirs, '3-utf8-bom.txt', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(fileText(bom))]), NOW - 10 * MINUTE);
    const summary = await w.run();
    expect(summary.files.map((f) => f.outcome)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(w.accepted()).toEqual([...rows, ...utf16, ...bom]);
    w.close();
  });

  it('names a UTF-16 file without a byte order mark (`bcp -w`) as such, and delivers it once the encoding is set', async () => {
    const w = world();
    const rows = epicRows(2, 'bcp');
    const path = drop(w.dirs, 'clarity.txt', Buffer.from(fileText(rows), 'utf16le'), NOW - 10 * MINUTE);
    const first = await w.run();
    expect(first.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['clarity.txt', 'rejected', 'utf16-without-bom']]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'clarity.txt.why.txt'), 'utf8');
    expect(why).toContain('looks like UTF-16 without a byte order mark');
    expect(why).toContain('connectors[].source.encoding to utf-16le');
    expect(w.accepted()).toEqual([]);
    renameSync(join(w.dirs.archiveDir, 'rejected', 'clarity.txt'), path);
    utimesSync(path, (NOW - 10 * MINUTE) / 1000, (NOW - 10 * MINUTE) / 1000);
    const next = await w.run({}, undefined, { encoding: 'utf-16le' });
    expect(next.files.map((f) => [f.file, f.outcome])).toEqual([['clarity.txt', 'delivered']]);
    expect(w.accepted()).toEqual(rows);
    w.close();
  });

  it('a file that disappears before it is read is reported and nothing of it is sent; one that disappears after its push is delivered', async () => {
    const w = world();
    drop(w.dirs, 'a.txt', fileText(epicRows(2, 'va')), NOW - 30 * MINUTE);
    drop(w.dirs, 'b.txt', fileText(epicRows(2, 'vb')), NOW - 20 * MINUTE);
    const c = epicRows(2, 'vc');
    drop(w.dirs, 'c.txt', fileText(c), NOW - 10 * MINUTE);
    const detach = w.events.on('page', () => rmSync(join(w.dirs.dir, 'b.txt'), { force: true })); // after a.txt is read
    const detach2 = w.events.on('spool_complete', () => rmSync(join(w.dirs.dir, 'c.txt'))); // checked, not yet pushed
    const summary = await w.run();
    detach();
    detach2();
    expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([
      ['b.txt', 'vanished'],
      ['a.txt', 'delivered'],
      ['c.txt', 'delivered'],
    ]);
    expect(summary.files[2]?.message).toContain('disappeared from the drop folder before it was archived');
    expect(w.accepted()).toEqual([...epicRows(2, 'va'), ...c]);
    w.close();
  });

  it('a backlog larger than the free space goes out over runs: copies only as many files as fit, the rest wait (no failure)', async () => {
    let free = Number.POSITIVE_INFINITY;
    const w = world({ freeBytes: () => free });
    const files = ['a', 'b', 'c'].map((name, i) => {
      const rows = epicRows(3, `space-${name}`);
      drop(w.dirs, `${name}.txt`, fileText(rows), NOW - (30 - i) * MINUTE);
      return rows;
    });
    // Room for the copy of one file at a time (a UTF-8 file is planned at 1.5× its size), beside the margin kept once.
    const one = statSync(join(w.dirs.dir, 'a.txt')).size;
    free = 16 * 1024 * 1024 + 2 * one;
    const spools = join(w.dirs.root, 'state', 'drop-spool');
    const copies: number[] = [];
    const detach = w.events.on('block_sent', () => copies.push(ls(spools).length));
    const first = await w.run();
    expect(first.files.map((f) => [f.file, f.outcome])).toEqual([['a.txt', 'delivered']]);
    expect(first.drop).toMatchObject({ ready: 3, delivered: 1, waiting: 2 });
    expect(w.store.getRun(first.runId)?.state).toBe('completed');
    await w.run();
    await w.run();
    detach();
    expect(w.accepted()).toEqual(files.flat());
    expect(Math.max(...copies)).toBe(1);
    expect(ls(w.dirs.dir)).toEqual([]);
    w.close();
  });

  it('a copy that fails for lack of space after the first file pushes what was checked; the rest wait, nothing fails', async () => {
    const w = world();
    const a = epicRows(2, 'nospace-a');
    const b = epicRows(2, 'nospace-b');
    drop(w.dirs, 'a.txt', fileText(a), NOW - 20 * MINUTE);
    drop(w.dirs, 'b.txt', fileText(b), NOW - 10 * MINUTE);
    const spools = join(w.dirs.root, 'state', 'drop-spool');
    let unlock: (() => void) | undefined;
    // After a.txt is copied the disk is "full": b.txt's copy cannot be written.
    const detach = w.events.on('page', () => {
      unlock ??= makeReadOnly(spools);
    });
    const first = await w.run().finally(() => unlock?.());
    detach();
    expect(first.files.map((f) => [f.file, f.outcome])).toEqual([['a.txt', 'delivered']]);
    expect(first.drop).toMatchObject({ delivered: 1, waiting: 1 });
    await w.run();
    expect(w.accepted()).toEqual([...a, ...b]);
    w.close();
  });

  it('a row longer than source.maxLineBytes is refused naming that setting (the drop folder has no --max-line-bytes)', async () => {
    const w = world({ maxLineBytes: 2048 });
    const rows = epicRows(2, 'long');
    const long = rows[1]?.replace('long', `long${'x'.repeat(3000)}`) ?? '';
    drop(w.dirs, 'long.txt', fileText([rows[0] ?? '', long]), NOW - 10 * MINUTE);
    const summary = await w.run();
    expect(summary.files[0]).toMatchObject({ outcome: 'rejected', reason: 'line-too-long' });
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'long.txt.why.txt'), 'utf8');
    expect(why).toContain('is longer than 2048 bytes without a line end');
    expect(why).toContain('raise connectors[].source.maxLineBytes');
    expect(w.accepted()).toEqual([]);
    w.close();
  });

  it('a file appended to after it was checked, before its push, is not sent: it waits for the next run, which sends it whole once', async () => {
    const w = world();
    const rows = epicRows(3, 'grown');
    const path = drop(w.dirs, 'grown.txt', fileText(rows), NOW - 10 * MINUTE);
    const late = epicRows(1, 'grown-late');
    const detach = w.events.on('spool_complete', () => writeFileSync(path, `${late[0]}\r\n`, { flag: 'a' }));
    const first = await w.run();
    detach();
    expect(first.files).toEqual([expect.objectContaining({ file: 'grown.txt', outcome: 'changed', rows: 0 })]);
    expect(first.counts).toMatchObject({ rows: 0, rowsAcked: 0 });
    expect(w.accepted()).toEqual([]);
    expect(ls(w.dirs.dir)).toEqual(['grown.txt']);
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const second = await w.run();
    expect(second.files.map((f) => [f.file, f.outcome])).toEqual([['grown.txt', 'delivered']]);
    expect(w.accepted()).toEqual([...rows, ...late]);
    w.close();
  });

  it('a file appended to while it was pushed is not archived as sent: rejected with what was delivered, and its rows are never doubled', async () => {
    const w = world();
    const rows = epicRows(3, 'grow');
    const path = drop(w.dirs, 'grow.txt', fileText(rows), NOW - 10 * MINUTE);
    const detach = w.events.on('block_acked', () => writeFileSync(path, `${epicRows(1, 'late')[0]}\r\n`, { flag: 'a' }));
    const summary = await w.run();
    detach();
    expect(summary.files[0]).toMatchObject({ outcome: 'rejected', reason: 'changed-after-send' });
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'grow.txt.why.txt'), 'utf8');
    expect(why).toContain('the 3 row(s) it had then are acknowledged');
    // Dropped again as it is, the grown file would be new content: the advice must not be "drop it again".
    expect(why).toContain('Do not drop this file again as it is: the 3 row(s) Purview acknowledged of it when it was read');
    expect(why).toContain('are in Purview already');
    expect(why).not.toContain('never sent twice');
    expect(w.accepted()).toEqual(rows);
    // Following the advice: the header and the rows after line 4, as a new file, arrive once.
    drop(w.dirs, 'grow-rest.txt', fileText(epicRows(1, 'late')), NOW - 10 * MINUTE);
    await w.run();
    expect(w.accepted()).toEqual([...rows, ...epicRows(1, 'late')]);
    w.close();
  });
});

/** A run in blocks of 2 stopped on request (bridge sync's first Ctrl-C) once its first block is acknowledged. */
async function stoppedGracefully(w: World): Promise<void> {
  const stop = new AbortController();
  const detach = w.events.on('block_acked', () => stop.abort());
  await w.run({ stopSignal: stop.signal }, 2).catch((e: unknown) => e);
  detach();
}

/** ISO-8859-2 bytes of text that is ASCII but for "Ł" (0xA3; "£" in windows-1252). */
function latin2(text: string): Buffer {
  return Buffer.from(
    [...text].map((c) => {
      if (c === 'Ł') return 0xa3;
      if (c.charCodeAt(0) >= 0x80) throw new Error(`no ISO-8859-2 byte here for ${c}`);
      return c.charCodeAt(0);
    }),
  );
}

/** A run in blocks of 2 stopped (as a kill would stop it) at its first `event`: a block sent, or a block acknowledged. */
async function stoppedAfter(w: World, event: 'block_sent' | 'block_acked'): Promise<void> {
  const stop = new AbortController();
  const detach = w.events.on(event, () => stop.abort());
  await w.run({ signal: stop.signal }, 2).catch((e: unknown) => e);
  detach();
}

describe('flat-file source: a push that stopped part-way', () => {
  it('a file stopped after its first block that then grows is refused with what Purview has; its rows are never doubled', async () => {
    const w = world();
    const rows = epicRows(6, 'part');
    const path = drop(w.dirs, 'part.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    writeFileSync(path, `${epicRows(1, 'part-late')[0]}\r\n`, { flag: 'a' });
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 3);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['part.txt', 'rejected', 'changed-after-send']]);
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'part.txt.why.txt'), 'utf8');
    expect(why).toContain('Purview acknowledged 2 of its row(s) then');
    w.close();
  });

  it('a file refused after a block that re-sent rows sent without an answer counts only those rows as possibly duplicated', async () => {
    const w = world();
    const rows = epicRows(8, 'resent');
    drop(w.dirs, 'resent.txt', fileText(rows), NOW - 10 * MINUTE);
    // Its first two rows go out, and the run is stopped before Purview answers: Purview may hold them.
    await stoppedAfter(w, 'block_sent');
    // Four-row blocks now: the first re-sends those two with two new rows and is acknowledged; Purview refuses the second.
    shared.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'bad rows' });
    const next = await w.run({}, 4);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['resent.txt', 'rejected', 'purview-rejected']]);
    expect(next.counts).toMatchObject({ possiblyDuplicated: 1, rowsPossiblyDuplicated: 2 });
    w.close();
  });

  it('a file stopped part-way that then changes into one the check refuses is refused as changed-after-send, with what Purview has', async () => {
    const w = world();
    const rows = epicRows(6, 'broke');
    const path = drop(w.dirs, 'broke.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    // The export rewrites it, and a row now has a field too few.
    const broken = [...rows.slice(0, 5), (rows[5] as string).split('\t').slice(1).join('\t')];
    writeFileSync(path, fileText(broken));
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 2);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['broke.txt', 'rejected', 'changed-after-send']]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'broke.txt.why.txt'), 'utf8');
    expect(why).toContain('Purview acknowledged 2 of its row(s) then');
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    w.close();
  });

  it('a file stopped part-way that is only touched, or dropped again with the same content, is resumed, not refused', async () => {
    const w = world();
    const rows = epicRows(6, 'touch');
    const path = drop(w.dirs, 'touch.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    // Dropped again with the same bytes: a new modification time, the same content.
    writeFileSync(path, fileText(rows));
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 4);
    expect(next.files).toEqual([expect.objectContaining({ file: 'touch.txt', outcome: 'delivered', rowsSent: 4, rowsAlreadyDelivered: 2 })]);
    expect(w.accepted()).toEqual(rows);
    w.close();
  });

  it('a file whose push stopped before any block went out (killed there) and that then grows is read as new, and sent whole once', async () => {
    const w = world();
    const rows = epicRows(4, 'early');
    const path = drop(w.dirs, 'early.txt', fileText(rows), NOW - 10 * MINUTE);
    // What a run killed between remembering the file and claiming its first block leaves: the file remembered, the
    // ledger holding nothing of that content.
    const { ino, size, mtimeMs } = statSync(path);
    w.store.setSourceState('drop', 'flat-file-sent-left', JSON.stringify([{ name: 'early.txt', ino, size, mtimeMs, sentRows: 0, sha256: 'f'.repeat(64) }]));
    const late = epicRows(1, 'early-late');
    writeFileSync(path, `${late[0]}\r\n`, { flag: 'a' });
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 2);
    expect(next.files.map((f) => [f.file, f.outcome])).toEqual([['early.txt', 'delivered']]);
    expect(w.accepted()).toEqual([...rows, ...late]);
    expect(w.store.getSourceState('drop', 'flat-file-sent-left')).toBeUndefined();
    w.close();
  });

  it('a file stopped while its first block was in flight, that then grows, is refused: those rows may be in Purview', async () => {
    const w = world();
    const rows = epicRows(4, 'flight');
    const path = drop(w.dirs, 'flight.txt', fileText(rows), NOW - 10 * MINUTE);
    emu.ingest.injectFaults({ kind: 'delay', ms: 2_000 });
    await stoppedAfter(w, 'block_sent');
    emu.ingest.injectFaults();
    writeFileSync(path, `${epicRows(1, 'flight-late')[0]}\r\n`, { flag: 'a' });
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 2);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['flight.txt', 'rejected', 'changed-after-send']]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'flight.txt.why.txt'), 'utf8');
    expect(why).toContain('Purview acknowledged 0 of its row(s) then, and 2 more were sent without an answer');
    w.close();
  });

  it('rows sent without an answer, then sent again and acknowledged, count once in what a grown file says Purview has', async () => {
    const w = world();
    const rows = epicRows(6, 'twice');
    const path = drop(w.dirs, 'twice.txt', fileText(rows), NOW - 10 * MINUTE);
    // Stopped while its first block is out (no answer); the rerun sends rows 1–4 and stops after two blocks.
    emu.ingest.injectFaults({ kind: 'delay', ms: 2_000 });
    await stoppedAfter(w, 'block_sent');
    emu.ingest.injectFaults();
    const stop = new AbortController();
    let acks = 0;
    const detach = w.events.on('block_acked', () => {
      acks += 1;
      if (acks === 2) stop.abort();
    });
    await w.run({ stopSignal: stop.signal }, 2).catch((e: unknown) => e);
    detach();
    expect(w.accepted()).toEqual(rows.slice(0, 4));
    writeFileSync(path, `${epicRows(1, 'twice-late')[0]}\r\n`, { flag: 'a' });
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 2);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['twice.txt', 'rejected', 'changed-after-send']]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'twice.txt.why.txt'), 'utf8');
    // Four rows are in Purview, none in doubt: rows 5–6 were never sent, and the advice must not count them as there.
    expect(why).toContain('Purview acknowledged 4 of its row(s) then; what changed since was not sent.');
    expect(why).toContain('the 4 row(s) Purview acknowledged of it');
    expect(why).not.toContain('without an answer');
    w.close();
  });

  it('a block Purview refuses that re-sends rows sent without an answer: the advice says those may be there', async () => {
    const w = world();
    const rows = epicRows(8, 'doubt');
    drop(w.dirs, 'doubt.txt', fileText(rows), NOW - 10 * MINUTE);
    // The first block is acknowledged; the second is stored but its answer lost, and the run stops at the retry.
    emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'accept-then-reset' });
    const stop = new AbortController();
    const detach = w.events.on('block_retry', () => stop.abort());
    await w.run({ signal: stop.signal }, 2).catch((e: unknown) => e);
    detach();
    emu.ingest.injectFaults();
    expect(w.accepted()).toEqual(rows.slice(0, 4));
    // With blocks of four, the rerun's block re-sends rows 3–4 with 5–6, and Purview refuses it (400).
    emu.ingest.injectFaults({ kind: 'status', status: 400, body: 'Row 3 is malformed.' });
    const next = await w.run({}, 4);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['doubt.txt', 'rejected', 'purview-rejected']]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'doubt.txt.why.txt'), 'utf8');
    expect(why).toContain(
      'Purview acknowledged the first 2; the next 2 were sent without an answer, so Purview may hold them; the other 4 were not delivered.',
    );
    expect(why).toContain('The 2 row(s) after the first 2 acknowledged were sent without an answer: Purview may hold them.');
    w.close();
  });

  it('a file partly sent, then refused by its check after a setting changed, says how many rows Purview has', async () => {
    const w = world();
    const rows = epicRows(8, 'half');
    const cells = (rows[6] as string).split('\t');
    cells[9] = 'x'.repeat(1500);
    rows[6] = cells.join('\t');
    drop(w.dirs, 'half.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    const next = await w.run({}, 2, { maxLineBytes: 1024 });
    expect(next.files).toEqual([expect.objectContaining({ file: 'half.txt', outcome: 'rejected', reason: 'line-too-long', rows: 6 })]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'half.txt.why.txt'), 'utf8');
    // The stop came while the second block was out: its rows may be in Purview, and the advice must not call them undelivered.
    expect(why).toContain(
      'Purview acknowledged the first 2; the next 2 were sent without an answer, so Purview may hold them; the other 4 were not delivered.',
    );
    expect(why).toContain('Do not drop this file again as it is');
    expect(why).toContain('The 2 row(s) after the first 2 acknowledged were sent without an answer: Purview may hold them.');
    expect(why).not.toContain('None of them was sent');
    w.close();
  });

  it('a file stopped part-way, untouched, then read with another encoding is refused (settings-changed-after-send): no row goes twice', async () => {
    const w = world({ encoding: 'windows-1252' });
    // A Central European export (ISO-8859-2, where 0xA3 is "Ł") read first as windows-1252 (0xA3 "£"): every byte is
    // taken, so nothing is refused, and the operator sees "£ukasz" in Purview.
    const rows = epicRows(6, 'l2').map((row) => row.replace('Åse-', 'Łukasz-'));
    const asCp1252 = rows.map((row) => row.replaceAll('Ł', '£'));
    const path = drop(w.dirs, 'latin2.txt', latin2(fileText(rows)), NOW - 10 * MINUTE);
    await stoppedGracefully(w);
    expect(w.accepted()).toEqual(asCp1252.slice(0, 2));
    // The encoding is set right; the file is not touched. Read anew it is other content, and every row would go again.
    const next = await w.run({}, 2, { encoding: 'iso-8859-2' });
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? '', f.rows])).toEqual([['latin2.txt', 'rejected', 'settings-changed-after-send', 4]]);
    expect(next.counts).toMatchObject({ rowsAcked: 0, rowsPossiblyDuplicated: 0, rejects: 4 });
    expect(w.accepted()).toEqual(asCp1252.slice(0, 2));
    expect(ls(w.dirs.dir)).toEqual([]);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'latin2.txt.why.txt'), 'utf8');
    expect(why).toContain('Reason: settings-changed-after-send');
    expect(why).toContain('connectors[].source.encoding changed since (windows-1252 then, iso-8859-2 now)');
    expect(why).toContain('Purview acknowledged 2 of its row(s) as read then');
    expect(why).toContain('set connectors[].source.encoding back to windows-1252 and move this file, unchanged, back into the drop folder');
    expect(why).toContain('drop a new file with the header line and only the rows after its first 2');
    expect(why).not.toContain('Łukasz');
    // Following the first advice: the setting put back and the file moved back, it is finished, each row once.
    renameSync(join(w.dirs.archiveDir, 'rejected', 'latin2.txt'), path);
    const last = await w.run({}, 2);
    expect(last.files).toEqual([expect.objectContaining({ file: 'latin2.txt', outcome: 'delivered', rowsSent: 4, rowsAlreadyDelivered: 2 })]);
    expect(w.accepted()).toEqual(asCp1252);
    w.close();
  });

  it('names no setting nor value to put back when it does not know them: an entry an earlier release saved has no encoding', async () => {
    const entryEdited = (w: World, edit: (entry: Record<string, unknown>) => void): void => {
      const list = JSON.parse(w.store.getSourceState('drop', 'flat-file-sent-left') ?? '[]') as Array<Record<string, unknown>>;
      expect(list).toHaveLength(1);
      for (const entry of list) edit(entry);
      w.store.setSourceState('drop', 'flat-file-sent-left', JSON.stringify(list));
    };
    const rows = epicRows(6, 'l2').map((row) => row.replace('Åse-', 'Łukasz-'));
    // Saved before the encoding was kept: read now under another one, the setting is not named, nor a value to put back.
    const older = world({ encoding: 'windows-1252' });
    drop(older.dirs, 'latin2.txt', latin2(fileText(rows)), NOW - 10 * MINUTE);
    await stoppedGracefully(older);
    entryEdited(older, (entry) => delete entry['encoding']);
    const next = await older.run({}, 2, { encoding: 'iso-8859-2' });
    expect(next.files.map((f) => [f.file, f.reason ?? ''])).toEqual([['latin2.txt', 'settings-changed-after-send']]);
    const why = readFileSync(join(older.dirs.archiveDir, 'rejected', 'latin2.txt.why.txt'), 'utf8');
    expect(why).toContain('a setting that changes how it is read changed since (connectors[].source.encoding is iso-8859-2 now)');
    expect(why).toContain('To finish it as it was read then: put back the setting that changed and move this file, unchanged');
    expect(why).not.toContain('then, iso-8859-2 now');
    expect(older.accepted()).toHaveLength(2);
    older.close();
  });

  it('a file stopped part-way and read again with the same encoding is finished, each row once (the setting did not change)', async () => {
    const w = world({ encoding: 'iso-8859-2' });
    const rows = epicRows(6, 'l2same').map((row) => row.replace('Åse-', 'Łukasz-'));
    drop(w.dirs, 'latin2.txt', latin2(fileText(rows)), NOW - 10 * MINUTE);
    await stoppedGracefully(w);
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    const next = await w.run({}, 2);
    expect(next.files).toEqual([expect.objectContaining({ file: 'latin2.txt', outcome: 'delivered', rowsSent: 4, rowsAlreadyDelivered: 2 })]);
    expect(w.accepted()).toEqual(rows);
    w.close();
  });

  it("a file replaced (a new one renamed over its name) after its check: its rows are delivered and said so; the new file is the next run's", async () => {
    const w = world();
    const old = epicRows(4, 'v-old');
    const path = drop(w.dirs, 'day.txt', fileText(old), NOW - 10 * MINUTE);
    const fresh = epicRows(2, 'v-new');
    const detach = w.events.on('block_acked', () => {
      writeFileSync(`${path}.tmp`, fileText(fresh));
      renameSync(`${path}.tmp`, path);
      utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    });
    const first = await w.run();
    detach();
    expect(first.files).toEqual([
      expect.objectContaining({ file: 'day.txt', outcome: 'delivered', message: expect.stringContaining('a new file of that name replaced it') }),
    ]);
    await w.run();
    expect(w.accepted()).toEqual([...old, ...fresh]);
    w.close();
  });
});

describe('flat-file source: the header sent', () => {
  it("is the schema's spelling: a header in another case, or with quoted or padded names, is checked as the columns it names and sent as Purview reads them", async () => {
    const w = world();
    drop(w.dirs, 'a.txt', fileText(epicRows(2, 'plain')), NOW - 10 * MINUTE);
    drop(w.dirs, 'b.txt', fileText(epicRows(2, 'lower'), EPIC_HEADER.toLowerCase()), NOW - 9 * MINUTE);
    drop(w.dirs, 'c.txt', fileText(epicRows(2, 'quoted'), EPIC_COLUMNS.map((c) => ` "${c}" `).join('\t')), NOW - 8 * MINUTE);
    const run = await w.run({}, 4);
    expect(run.files.map((f) => [f.file, f.outcome])).toEqual([
      ['a.txt', 'delivered'],
      ['b.txt', 'delivered'],
      ['c.txt', 'delivered'],
    ]);
    expect(w.accepted()).toHaveLength(6);
    expect(new Set(emu.ingest.accepted(w.app.jobId).map((block) => block.header))).toEqual(new Set([EPIC_HEADER]));
    w.close();
  });
});

describe('flat-file source: an earlier content come back with rows added (another inode, another name, or after delivery)', () => {
  it('a partly sent file the export rewrites whole (a temporary file renamed over its name) with a row more is refused: no row goes twice', async () => {
    const w = world();
    const rows = epicRows(6, 'rewritten');
    const path = drop(w.dirs, 'part.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    const tmp = join(w.dirs.root, 'part.tmp');
    writeFileSync(tmp, fileText([...rows, ...epicRows(1, 'rewritten-late')]));
    renameSync(tmp, path);
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 3);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['part.txt', 'rejected', 'changed-after-send']]);
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'part.txt.why.txt'), 'utf8');
    expect(why).toContain('Purview acknowledged 2 of those 6');
    expect(why).toContain('with 1 row(s) added after them');
    w.close();
  });

  it('a partly sent file renamed (its inode kept) and written on is refused under its new name', async () => {
    const w = world();
    const rows = epicRows(6, 'renamed');
    const path = drop(w.dirs, 'ren.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    const moved = join(w.dirs.dir, 'ren-20261101.txt');
    renameSync(path, moved);
    writeFileSync(moved, `${epicRows(1, 'renamed-late')[0]}\r\n`, { flag: 'a' });
    utimesSync(moved, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const next = await w.run({}, 3);
    expect(next.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['ren-20261101.txt', 'rejected', 'changed-after-send']]);
    expect(next.files[0]?.message).toContain('ren.txt (the same file, renamed)');
    expect(w.accepted()).toEqual(rows.slice(0, 2));
    w.close();
  });

  it('a delivered day dropped again with a row added is refused; the same content again is already delivered, another day is new', async () => {
    const w = world();
    const rows = epicRows(4, 'day');
    drop(w.dirs, 'day.txt', fileText(rows), NOW - 10 * MINUTE);
    await w.run({}, 2);
    expect(w.accepted()).toEqual(rows);
    drop(w.dirs, 'day.txt', fileText([...rows, ...epicRows(1, 'day-more')]), NOW - 5 * MINUTE);
    const grown = await w.run({}, 2);
    expect(grown.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['day.txt', 'rejected', 'changed-after-send']]);
    expect(grown.files[0]?.message).toContain('Purview acknowledged 4 of those 4');
    drop(w.dirs, 'day.txt', fileText(rows), NOW - 4 * MINUTE);
    drop(w.dirs, 'next.txt', fileText(epicRows(3, 'next-day')), NOW - 3 * MINUTE);
    const again = await w.run({}, 2);
    expect(again.files.map((f) => [f.file, f.outcome])).toEqual([
      ['day.txt', 'already-delivered'],
      ['next.txt', 'delivered'],
    ]);
    // Another day under the name of a delivered one does not begin with it: it is new.
    drop(w.dirs, 'day.txt', fileText(epicRows(5, 'day-two')), NOW - 2 * MINUTE);
    const dayTwo = await w.run({}, 2);
    expect(dayTwo.files.map((f) => [f.file, f.outcome])).toEqual([['day.txt', 'delivered']]);
    const accepted = w.accepted();
    expect(new Set(accepted).size).toBe(accepted.length);
    expect(accepted).toHaveLength(4 + 3 + 5);
    w.close();
  });
});

describe('flat-file source: a delivered day re-exported with rows added and its header spelled otherwise', () => {
  const quoted = EPIC_COLUMNS.map((c) => ` "${c}" `).join('\t');
  const lower = EPIC_HEADER.toLowerCase();

  it('is refused whichever file spelled the header as the schema does (quoted, another case, padded): no row goes twice', async () => {
    const w = world();
    const spellings: Array<[string, string, string]> = [
      ['plain-then-quoted.txt', EPIC_HEADER, quoted],
      ['lower-then-plain.txt', lower, EPIC_HEADER],
      ['quoted-then-lower.txt', quoted, lower],
    ];
    const days = spellings.map(([name, first], i) => {
      const rows = epicRows(4, `respelled${i}`);
      drop(w.dirs, name, fileText(rows, first), NOW - 20 * MINUTE + i * MINUTE);
      return rows;
    });
    await w.run({}, 2);
    expect(w.accepted()).toHaveLength(12);
    for (const [i, [name, , again]] of spellings.entries())
      drop(w.dirs, name, fileText([...(days[i] as string[]), ...epicRows(1, `respelled${i}-more`)], again), NOW - 10 * MINUTE + i * MINUTE);
    const grown = await w.run({}, 2);
    expect(grown.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual(spellings.map(([name]) => [name, 'rejected', 'changed-after-send']));
    expect(grown.files[0]?.message).toContain('Purview acknowledged 4 of those 4');
    expect(grown.files[0]?.message).toContain('with 1 row(s) added after them');
    const accepted = w.accepted();
    expect(accepted).toHaveLength(12);
    expect(new Set(accepted).size).toBe(accepted.length);
    w.close();
  });

  it('the same rows dropped again under a header spelled otherwise (no row added) are refused, not sent a second time', async () => {
    const w = world();
    const rows = epicRows(4, 'same-rows');
    drop(w.dirs, 'same.txt', fileText(rows), NOW - 20 * MINUTE);
    drop(w.dirs, 'quoted-first.txt', fileText(epicRows(3, 'same-rows-q'), quoted), NOW - 19 * MINUTE);
    await w.run({}, 2);
    expect(w.accepted()).toHaveLength(7);
    drop(w.dirs, 'same.txt', fileText(rows, quoted), NOW - 10 * MINUTE);
    drop(w.dirs, 'quoted-first.txt', fileText(epicRows(3, 'same-rows-q'), lower), NOW - 9 * MINUTE);
    const again = await w.run({}, 2);
    expect(again.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([
      ['same.txt', 'rejected', 'changed-after-send'],
      ['quoted-first.txt', 'rejected', 'changed-after-send'],
    ]);
    expect(again.files[0]?.message).toContain('holds the rows of an earlier file of this name that went to Purview (its 4 row(s)');
    expect(again.files[0]?.message).toContain('Nothing is missing in Purview');
    const accepted = w.accepted();
    expect(accepted).toHaveLength(7);
    expect(new Set(accepted).size).toBe(accepted.length);
    w.close();
  });

  it('an entry an earlier release saved (without the content as sent) still matches a re-export spelled as its file was', async () => {
    const w = world();
    const rows = epicRows(4, 'legacy');
    drop(w.dirs, 'legacy.txt', fileText(rows, quoted), NOW - 20 * MINUTE);
    await w.run({}, 2);
    const saved = JSON.parse(w.store.getSourceState('drop', 'flat-file-sent-contents') ?? '[]') as Array<Record<string, unknown>>;
    expect(saved).toEqual([expect.objectContaining({ name: 'legacy.txt', rows: 4, sentSha256: expect.any(String) })]);
    w.store.setSourceState('drop', 'flat-file-sent-contents', JSON.stringify(saved.map(({ sentSha256: _, ...entry }) => entry)));
    drop(w.dirs, 'legacy.txt', fileText([...rows, ...epicRows(1, 'legacy-more')], quoted), NOW - 10 * MINUTE);
    const grown = await w.run({}, 2);
    expect(grown.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['legacy.txt', 'rejected', 'changed-after-send']]);
    expect(w.accepted()).toEqual(rows);
    w.close();
  });
});

describe('flat-file source: a delivered comma file re-exported with its cells quoted otherwise', () => {
  const header = headerOf('healthcare', ',');
  const width = header.split(',').length;
  const rowsOf = (count: number, tag: string): string[] =>
    Array.from({ length: count }, (_, i) => Array.from({ length: width }, (_, c) => (c === 6 ? `"Smith, ${tag}${i}"` : `${tag}${i}.${c}`)).join(','));
  /** The export's next run quoting every cell: the same cells to a CSV reader, other bytes. */
  const everyCell = (row: string): string =>
    row
      .split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)
      .map((cell) => (cell.startsWith('"') ? cell : `"${cell}"`))
      .join(',');

  it('the same rows, or the same rows with rows added, are refused, not sent a second time', async () => {
    const w = world({ pattern: '*.csv', schema: 'healthcare' });
    const same = rowsOf(4, 'same');
    const grown = rowsOf(3, 'grown');
    drop(w.dirs, 'same.csv', fileText(same, header), NOW - 20 * MINUTE);
    drop(w.dirs, 'grown.csv', fileText(grown, header), NOW - 19 * MINUTE);
    await w.run({}, 2);
    expect(w.accepted()).toHaveLength(7);
    drop(w.dirs, 'same.csv', fileText(same.map(everyCell), header, '\n'), NOW - 10 * MINUTE);
    drop(w.dirs, 'grown.csv', fileText([...grown, ...rowsOf(1, 'grown-more')].map(everyCell), everyCell(header)), NOW - 9 * MINUTE);
    const again = await w.run({}, 3);
    expect(again.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([
      ['same.csv', 'rejected', 'changed-after-send'],
      ['grown.csv', 'rejected', 'changed-after-send'],
    ]);
    expect(again.files[0]?.message).toContain('under a header spelled otherwise or with cells quoted otherwise');
    expect(again.files[1]?.message).toContain('with 1 row(s) added after them');
    const accepted = w.accepted();
    expect(accepted).toEqual([...same, ...grown]);
    w.close();
  });
});

describe('flat-file source: a partly sent file the settings no longer take', () => {
  const folderOf = (w: World, change: { pattern?: string; dir?: string }) => ({
    folder: {
      dir: change.dir ?? w.dirs.dir,
      pattern: change.pattern ?? '*.txt',
      archiveDir: w.dirs.archiveDir,
      settleMs: MINUTE,
      changedAt: (f: DropFile) => f.mtimeMs,
    },
  });

  it('source.pattern changed after a push stopped part-way: the run fails naming the file, the watermark stays; the pattern back, it is finished once', async () => {
    const w = world();
    const rows = epicRows(6, 'unmatched');
    drop(w.dirs, 'clarity_a.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    const watermark = w.store.getWatermark('drop');
    drop(w.dirs, 'clarity_b.tsv', fileText(epicRows(2, 'unmatched-next')), NOW - 5 * MINUTE);
    const failed = (await w.run({}, 3, folderOf(w, { pattern: '*.tsv' })).catch((e: unknown) => e)) as BridgeError;
    expect(failed.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(failed.message).toContain('clarity_a.txt: an earlier run sent 2 of its row(s) to Purview');
    expect(failed.message).toContain('source.pattern (*.tsv) no longer takes it. Put the pattern back until it is delivered');
    expect(w.store.getWatermark('drop')).toBe(watermark);
    // The next file still went out; the pattern back, the first is finished, no row twice.
    const back = await w.run({}, 3, folderOf(w, { pattern: '*' }));
    expect(back.files.map((f) => [f.file, f.outcome])).toEqual([['clarity_a.txt', 'delivered']]);
    const accepted = w.accepted();
    expect(new Set(accepted).size).toBe(accepted.length);
    expect(accepted).toHaveLength(6 + 2);
    w.close();
  });

  /** A run that stops with a file remembered and its first block claimed, before any went out (its token refused: as a kill there leaves it). */
  async function stoppedBeforeFirstBlock(w: World): Promise<void> {
    emu.entra.injectFaults({ status: 401, error: 'invalid_client', aadsts: 7000215, description: 'Invalid client secret provided.' });
    const failed = (await w.run({}, 2).catch((e: unknown) => e)) as BridgeError;
    emu.entra.injectFaults();
    expect(failed.code).toMatch(/^BRG_ERR_/);
    expect(w.accepted()).toEqual([]);
    expect(JSON.parse(w.store.getSourceState('drop', 'flat-file-sent-left') ?? '[]')).toEqual([expect.objectContaining({ sentRows: 0 })]);
  }

  it('source.pattern changed after a push that stopped before any block went out: the run goes on, the file forgotten; the pattern back, it is sent once', async () => {
    const w = world();
    const rows = epicRows(4, 'unsent');
    drop(w.dirs, 'clarity_a.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedBeforeFirstBlock(w);
    drop(w.dirs, 'clarity_b.tsv', fileText(epicRows(2, 'unsent-next')), NOW - 5 * MINUTE);
    const next = await w.run({}, 3, folderOf(w, { pattern: '*.tsv' }));
    expect(next.files.map((f) => [f.file, f.outcome])).toEqual([['clarity_b.tsv', 'delivered']]);
    expect(w.store.getSourceState('drop', 'flat-file-sent-left')).toBeUndefined();
    const back = await w.run({}, 3, folderOf(w, { pattern: '*' }));
    expect(back.files.map((f) => [f.file, f.outcome])).toEqual([['clarity_a.txt', 'delivered']]);
    const accepted = w.accepted();
    expect(new Set(accepted).size).toBe(accepted.length);
    expect(accepted).toHaveLength(4 + 2);
    w.close();
  });

  it('source.dir changed after a push that stopped before any block went out: the run goes on, the file in the old folder forgotten', async () => {
    const w = world();
    drop(w.dirs, 'left.txt', fileText(epicRows(4, 'unsent-old-folder')), NOW - 10 * MINUTE);
    await stoppedBeforeFirstBlock(w);
    const other = join(w.dirs.root, 'new-drop');
    mkdirSync(other);
    const next = await w.run({}, 3, folderOf(w, { dir: other }));
    expect(next.files).toEqual([]);
    expect(w.store.getSourceState('drop', 'flat-file-sent-left')).toBeUndefined();
    w.close();
  });

  it('source.pattern changed after a push stopped while its first block was in flight: the run fails, those rows may be in Purview', async () => {
    const w = world();
    drop(w.dirs, 'clarity_a.txt', fileText(epicRows(4, 'in-flight')), NOW - 10 * MINUTE);
    emu.ingest.injectFaults({ kind: 'delay', ms: 2_000 });
    await stoppedAfter(w, 'block_sent');
    emu.ingest.injectFaults();
    const failed = (await w.run({}, 3, folderOf(w, { pattern: '*.tsv' })).catch((e: unknown) => e)) as BridgeError;
    expect(failed.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(failed.message).toContain('clarity_a.txt: an earlier run sent 0 of its row(s) to Purview (2 more sent without an answer)');
    w.close();
  });

  it('source.dir changed after a push stopped part-way: the file left in the old folder is named and the run fails', async () => {
    const w = world();
    drop(w.dirs, 'left.txt', fileText(epicRows(6, 'old-folder')), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    const other = join(w.dirs.root, 'new-drop');
    mkdirSync(other);
    const failed = (await w.run({}, 3, folderOf(w, { dir: other })).catch((e: unknown) => e)) as BridgeError;
    expect(failed.message).toContain(`left.txt: an earlier run sent 2 of its row(s) to Purview`);
    expect(failed.message).toContain(`it is in ${w.dirs.dir}, and source.dir is ${other} now`);
    w.close();
  });
});

describe('flat-file source: a file the export was still writing when it settled', () => {
  it('cut mid-row, delivered, then written on in done/: the next run fails once naming it, the rows Purview has and what to drop; nothing is sent twice', async () => {
    const w = world();
    // The export wrote the header, 5 rows and part of the 6th, then paused longer than the settle time.
    const rows = epicRows(8, 'stall');
    const full = fileText(rows);
    const cut = full.indexOf(rows[5] as string) + (rows[5] as string).length - 3;
    drop(w.dirs, 'access.txt', full.slice(0, cut), NOW - 10 * MINUTE);
    const first = await w.run();
    expect(first.files).toEqual([expect.objectContaining({ file: 'access.txt', outcome: 'delivered', rows: 6 })]);
    expect(w.accepted()).toEqual([...rows.slice(0, 5), (rows[5] as string).slice(0, -3)]);
    // The export resumes through its open descriptor: into done/, where the file now is.
    writeFileSync(join(w.dirs.archiveDir, 'done', 'access.txt'), full.slice(cut), { flag: 'a' });
    drop(w.dirs, 'next.txt', fileText(epicRows(2, 'next')), NOW - 5 * MINUTE);
    const error = (await w.run().catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(error.message).toContain('1 delivered file(s) grew in done/ after they were read, sent and archived');
    expect(error.message).toContain(
      `${join(w.dirs.archiveDir, 'done', 'access.txt')} grew after it was delivered (${Buffer.byteLength(full.slice(0, cut))} bytes when it was read, ${Buffer.byteLength(full)} now)`,
    );
    expect(error.message).toContain('Purview has its first 6 row(s) as they were read; nothing written since was sent.');
    expect(error.message).toContain('Its last row then (row 6) had no line end: it was likely cut short');
    expect(error.message).toContain('drop its rows from row 6 on as a new file, with the header line');
    expect(error.message).toContain('raise source.settleSeconds');
    expect(error.message).not.toContain('stall5');
    // This run's own file went out; nothing of the grown one was sent again.
    expect(w.accepted()).toEqual([...rows.slice(0, 5), (rows[5] as string).slice(0, -3), ...epicRows(2, 'next')]);
    const failed = w.store.listRuns({ connector: 'drop' })[0];
    expect(failed?.state).toBe('failed');
    expect((failed?.details as { files?: unknown[] } | undefined)?.files).toEqual([
      expect.objectContaining({ file: 'access.txt', outcome: 'changed', reason: 'grew-after-delivery', rows: 0 }),
      expect.objectContaining({ file: 'next.txt', outcome: 'delivered' }),
    ]);
    // Said once: the next run completes.
    const third = await w.run();
    expect(third.files).toEqual([]);
    w.close();
  });

  it('a delivered file that only lacks a final line end is not reported; one complete that grows names the rows after its last', async () => {
    const w = world();
    const a = epicRows(3, 'noeol');
    drop(w.dirs, 'a.txt', fileText(a).slice(0, -2), NOW - 20 * MINUTE);
    const b = epicRows(3, 'eol');
    drop(w.dirs, 'b.txt', fileText(b), NOW - 10 * MINUTE);
    const first = await w.run();
    expect(first.files.map((f) => [f.file, f.outcome, f.rows])).toEqual([
      ['a.txt', 'delivered', 3],
      ['b.txt', 'delivered', 3],
    ]);
    expect(w.accepted()).toEqual([...a, ...b]);
    expect((await w.run()).files).toEqual([]);
    writeFileSync(join(w.dirs.archiveDir, 'done', 'b.txt'), `${epicRows(1, 'eol-late')[0]}\r\n`, { flag: 'a' });
    const error = (await w.run().catch((e: unknown) => e)) as BridgeError;
    expect(error.message).toContain('1 delivered file(s) grew in done/');
    expect(error.message).toContain('b.txt grew after it was delivered');
    expect(error.message).toContain('drop the rows after its first 3 as a new file, with the header line');
    expect(error.message).not.toContain('a.txt');
    expect(w.accepted()).toEqual([...a, ...b]);
    w.close();
  });
});

describe('flat-file source: a file refused while the export was still writing it', () => {
  it('header only, refused, then written on in rejected/: the next run fails once naming it; moved back, its rows go once', async () => {
    const w = world();
    const path = drop(w.dirs, 'slow.txt', `${EPIC_HEADER}\r\n`, NOW - 10 * MINUTE);
    const fd = openSync(path, 'a');
    const first = await w.run({}, 4);
    expect(first.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['slow.txt', 'rejected', 'header-only']]);
    const rows = epicRows(3, 'slow');
    writeSync(fd, rows.map((row) => `${row}\r\n`).join(''));
    closeSync(fd);
    w.clock.t += 60 * MINUTE;
    const failed = (await w.run({}, 4).catch((error: unknown) => error)) as BridgeError;
    expect(failed.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(failed.message).toContain('1 refused file(s) grew in rejected/');
    expect(failed.message).toContain('Nothing of it was sent. Once the export has finished, move it back into the drop folder');
    // Said once: the next run does not say it again.
    await w.run({}, 4);
    const archived = join(w.dirs.archiveDir, 'rejected', 'slow.txt');
    renameSync(archived, path);
    utimesSync(path, (w.clock.t - 10 * MINUTE) / 1000, (w.clock.t - 10 * MINUTE) / 1000);
    const back = await w.run({}, 4);
    expect(back.files.map((f) => [f.file, f.outcome])).toEqual([['slow.txt', 'delivered']]);
    expect(w.accepted()).toEqual(rows);
    w.close();
  });

  it('a refused file that had rows sent (changed after send) is not watched: moving it back would send those again', async () => {
    const w = world();
    const rows = epicRows(6, 'watched-not');
    const path = drop(w.dirs, 'sent.txt', fileText(rows), NOW - 10 * MINUTE);
    await stoppedAfter(w, 'block_acked');
    writeFileSync(path, `${epicRows(1, 'watched-not-late')[0]}\r\n`, { flag: 'a' });
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    const refused = await w.run({}, 3);
    expect(refused.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['sent.txt', 'rejected', 'changed-after-send']]);
    writeFileSync(join(w.dirs.archiveDir, 'rejected', 'sent.txt'), `${epicRows(1, 'watched-not-later')[0]}\r\n`, { flag: 'a' });
    const next = await w.run({}, 3);
    expect(next.files).toEqual([]);
    w.close();
  });
});

describe('flat-file source: how long and what a delivered file is watched for', () => {
  it('forgets a file after 7 days, and one replaced in done/ by another file of its name (a new inode): neither is reported', async () => {
    const w = world();
    drop(w.dirs, 'old.txt', fileText(epicRows(2, 'old')), NOW - 10 * MINUTE);
    drop(w.dirs, 'swap.txt', fileText(epicRows(2, 'swap')), NOW - 9 * MINUTE);
    await w.run();
    const done = (name: string) => join(w.dirs.archiveDir, 'done', name);
    // Replaced by hand with a larger file of the same name (a new inode, not the one that was read): not its growth.
    rmSync(done('swap.txt'));
    writeFileSync(done('swap.txt'), fileText(epicRows(5, 'other')));
    expect((await w.run()).files).toEqual([]);
    // Eight days on, the export appends to the old file: no longer watched.
    w.clock.t += 8 * 86_400_000;
    writeFileSync(done('old.txt'), `${epicRows(1, 'late')[0]}\r\n`, { flag: 'a' });
    expect((await w.run()).files).toEqual([]);
    w.close();
  });
});

describe('flat-file source: how many delivered files are watched', () => {
  it('the newest 1,000: a folder of many small files keeps the state small, and the oldest is forgotten first', () => {
    const dir = tempDir('bridge-watch-cap-');
    const store = openStateStore(join(dir, 'state'), systemClock);
    const deps = { connector: 'drop', store } as unknown as SyncDeps;
    const file = (i: number): DeliveredFile => {
      const archivedTo = join(dir, `f${i}.txt`);
      writeFileSync(archivedTo, 'row\r\n');
      return { name: `f${i}.txt`, archivedTo, ino: statSync(archivedTo).ino, size: 5, rows: 1, lineEnd: true, deliveredAtMs: NOW };
    };
    // A thousand watched already (as earlier runs left them), then one more is delivered.
    store.setSourceState('drop', 'flat-file-delivered', JSON.stringify(Array.from({ length: 1000 }, (_, i) => file(i))));
    watchDelivered(deps, file(1000));
    const kept = JSON.parse(store.getSourceState('drop', 'flat-file-delivered') ?? '[]') as DeliveredFile[];
    expect(kept).toHaveLength(1000);
    expect(kept[0]?.name).toBe('f1.txt');
    expect(kept.at(-1)?.name).toBe('f1000.txt');
    // Both grow: only the one still watched is reported.
    for (const i of [0, 1000]) writeFileSync(join(dir, `f${i}.txt`), 'more\r\n', { flag: 'a' });
    expect(grownSinceDelivered(deps, NOW + MINUTE).map((grown) => grown.file.name)).toEqual(['f1000.txt']);
    store.close();
  });
});

describe('flat-file source: a sent file that stays in the folder', () => {
  it('is not sent again when it grows before the next run, though rejected/ could not take it when its rows went out', async () => {
    const w = world();
    const rows = epicRows(3, 'held');
    const path = drop(w.dirs, 'held.txt', fileText(rows), NOW - 10 * MINUTE);
    // The export appends while the run pushes, and rejected/ cannot be written then (a plain file where it goes).
    const rejectedDir = join(w.dirs.archiveDir, 'rejected');
    const detach = w.events.on('block_acked', () => {
      writeFileSync(path, `${epicRows(1, 'more')[0]}\r\n`, { flag: 'a' });
      rmSync(rejectedDir, { recursive: true, force: true });
      writeFileSync(rejectedDir, 'not a folder');
    });
    const first = await w.run().catch((e: unknown) => e);
    detach();
    expect((first as BridgeError).message).toMatch(/^1 file\(s\) stayed in the drop folder for the next run: held\.txt was refused \(changed-after-send/);
    expect(w.accepted()).toEqual(rows);
    expect(ls(w.dirs.dir)).toEqual(['held.txt']);
    // It grows again before the next run; rejected/ works again.
    writeFileSync(path, `${epicRows(1, 'more2')[0]}\r\n`, { flag: 'a' });
    utimesSync(path, (NOW - 5 * MINUTE) / 1000, (NOW - 5 * MINUTE) / 1000);
    rmSync(rejectedDir);
    const second = await w.run();
    expect(second.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([['held.txt', 'rejected', 'changed-after-send']]);
    expect(w.accepted()).toEqual(rows);
    const why = readFileSync(join(w.dirs.archiveDir, 'rejected', 'held.txt.why.txt'), 'utf8');
    expect(why).toContain('changed after an earlier run read it');
    expect(why).toContain('Purview acknowledged 3 of its row(s) then; what changed since was not sent');
    expect(ls(w.dirs.dir)).toEqual([]);
    // Nothing is remembered once it has left the folder: a new file of that name is a new file.
    const fresh = epicRows(2, 'new');
    drop(w.dirs, 'held.txt', fileText(fresh), NOW - 5 * MINUTE);
    await w.run();
    expect(w.accepted()).toEqual([...rows, ...fresh]);
    w.close();
  });
});

describe('flat-file source: settling', () => {
  it('waits for a file a copy is still writing under an old time (robocopy stamps it 1980-01-01, cp -p the source time)', async () => {
    const dirs = dropDirs('settle-ctime-', root);
    const folder = { dir: dirs.dir, pattern: '*.txt', archiveDir: dirs.archiveDir, settleMs: 300 };
    const path = drop(dirs, 'copying.txt', `${EPIC_HEADER}\r\n`, Date.parse('1980-01-01T00:00:00Z'));
    expect(listReady(folder, Date.now())).toEqual({ ready: [], settling: 1 });
    // Each write moves its change time, whatever time the copy then sets again.
    await new Promise((r) => setTimeout(r, 200));
    writeFileSync(path, `${EPIC_HEADER}\r\n${fileText(epicRows(1, 'cp')).split('\r\n').slice(1).join('\r\n')}`);
    utimesSync(path, 315_532_800, 315_532_800);
    await new Promise((r) => setTimeout(r, 200));
    expect(listReady(folder, Date.now())).toEqual({ ready: [], settling: 1 });
    await new Promise((r) => setTimeout(r, 250));
    expect(listReady(folder, Date.now()).ready.map((f) => f.name)).toEqual(['copying.txt']);
  });
});

describe('flat-file source: archiving what was checked', () => {
  it('moves only the file that was read: one renamed over it at the last moment goes back to the drop folder', () => {
    const dirs = dropDirs('archive-race-', root);
    const path = drop(dirs, 'x.txt', 'as read', NOW - 10 * MINUTE);
    const checked = statFile(path) as DropFile;
    // The export writes its next file under the same name by renaming a temporary file over it.
    writeFileSync(`${path}.tmp`, 'the next export');
    renameSync(`${path}.tmp`, path);
    mkdirSync(join(dirs.archiveDir, 'done'), { recursive: true });
    const folder = { dir: dirs.dir, pattern: '*.txt', archiveDir: dirs.archiveDir, settleMs: MINUTE };
    expect(() => archiveFile(folder, checked, 'done', 'run1')).toThrow('x.txt was replaced by a new file just before it was archived');
    expect(readFileSync(path, 'utf8')).toBe('the next export');
    expect(ls(join(dirs.archiveDir, 'done'))).toEqual([]);
  });
});

describe('flat-file source: the archive', () => {
  it('refuses an archive that cannot be written before taking any file; the files stay', async () => {
    const w = world();
    drop(w.dirs, 'a.txt', fileText(epicRows(2, 'ro')), NOW - 10 * MINUTE);
    mkdirSync(join(w.dirs.archiveDir, 'done'), { recursive: true });
    const unlock = makeReadOnly(join(w.dirs.archiveDir, 'done'));
    try {
      const error = await w.run().catch((e: unknown) => e);
      expect((error as BridgeError).code).toBe('BRG_ERR_DROP_FOLDER');
      expect((error as BridgeError).message).toMatch(/cannot be moved from .* into .*\(EPERM|EACCES\)/);
    } finally {
      unlock();
    }
    expect(ls(w.dirs.dir)).toEqual(['a.txt']);
    expect(w.accepted()).toEqual([]);
    expect(w.store.listRuns({ connector: 'drop' })[0]).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_DROP_FOLDER' } });
    w.close();
  });

  it('refuses an archive on another filesystem (a tmpfs) before taking any file: a move there would not be one atomic rename', async (ctx) => {
    const w = world();
    drop(w.dirs, 'a.txt', fileText(epicRows(2, 'fs')), NOW - 10 * MINUTE);
    mkdirSync(w.dirs.archiveDir);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', w.dirs.archiveDir], { stdio: 'ignore' });
    } catch {
      w.close();
      // Root alone is not enough (a container without CAP_SYS_ADMIN): skipped, saying so, rather than failed.
      ctx.skip('mounting a tmpfs is not permitted here (needs root and CAP_SYS_ADMIN): the other-filesystem case is not exercised');
    }
    try {
      const error = await w.run().catch((e: unknown) => e);
      expect((error as BridgeError).code).toBe('BRG_ERR_DROP_FOLDER');
      expect((error as BridgeError).message).toContain(`source.archiveDir ${w.dirs.archiveDir} is on another filesystem than source.dir ${w.dirs.dir}`);
    } finally {
      execFileSync('umount', [w.dirs.archiveDir]);
    }
    expect(ls(w.dirs.dir)).toEqual(['a.txt']);
    expect(w.accepted()).toEqual([]);
    w.close();
  });

  it('an archive that fails after the push leaves the file; the next run archives it without sending a row again', async () => {
    const w = world();
    const rows = epicRows(5, 'late-ro');
    drop(w.dirs, 'a.txt', fileText(rows), NOW - 10 * MINUTE);
    let unlock: () => void = () => undefined;
    const detach = w.events.on('spool_complete', () => {
      unlock = makeReadOnly(join(w.dirs.archiveDir, 'done'));
    });
    const error = await w.run().catch((e: unknown) => e);
    detach();
    unlock();
    expect((error as BridgeError).code).toBe('BRG_ERR_DROP_ARCHIVE');
    expect((error as BridgeError).message).toContain('a.txt: every row is acknowledged, but it could not be moved to done/');
    expect(ls(w.dirs.dir)).toEqual(['a.txt']);
    expect(w.store.getWatermark('drop')).toBeUndefined();
    const again = await w.run();
    expect(again.files.map((f) => [f.file, f.outcome, f.rowsSent])).toEqual([['a.txt', 'already-delivered', 0]]);
    expect(w.accepted()).toEqual(rows);
    expect(ls(join(w.dirs.archiveDir, 'done'))).toEqual(['a.txt']);
    w.close();
  });
});

describe('flat-file source: a refused file the archive cannot take', () => {
  it('stays in the drop folder, the good ones are delivered, and the run says so; the next run moves it', async () => {
    const w = world();
    const good = epicRows(3, 'g');
    drop(w.dirs, '1-good.txt', fileText(good), NOW - 20 * MINUTE);
    drop(w.dirs, '2-bad.txt', fileText(epicRows(2, 'b'), 'wrong header'), NOW - 10 * MINUTE);
    let unlock: () => void = () => undefined;
    const detach = w.events.on('page', () => {
      unlock = makeReadOnly(join(w.dirs.archiveDir, 'rejected')); // after the start-of-run check passed
    });
    const error = await w.run().catch((e: unknown) => e);
    detach();
    unlock();
    expect((error as BridgeError).code).toBe('BRG_ERR_DROP_ARCHIVE');
    expect((error as BridgeError).message).toContain('2-bad.txt was refused (no-delimiter:');
    expect(ls(w.dirs.dir)).toEqual(['2-bad.txt']);
    expect(w.accepted()).toEqual(good);
    const again = await w.run();
    expect(again.files.map((f) => [f.file, f.outcome])).toEqual([['2-bad.txt', 'rejected']]);
    expect(ls(join(w.dirs.archiveDir, 'rejected'))).toEqual(['2-bad.txt', '2-bad.txt.why.txt']);
    expect(w.accepted()).toEqual(good);
    w.close();
  });
});

/** Read-only for this process: root ignores modes, so root uses the immutable attribute. Returns the undo. */
function makeReadOnly(path: string): () => void {
  if (process.getuid?.() === 0) {
    execFileSync('chattr', ['+i', path]);
    return () => execFileSync('chattr', ['-i', path]);
  }
  chmodSync(path, 0o555);
  return () => chmodSync(path, 0o755);
}
