/**
 * Manifest and files: paged manifests, error files read and reported, the bearer only where it belongs, gzip, every
 * line's resourceType checked, and expired files (410) restarting the export.
 */
import { mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../../src/errors.js';
import { exportFileLines, requestExportFile } from '../../../src/fhir/bulk/files.js';
import { DEFAULT_BULK_SETTINGS } from '../../../src/sandbox/bulk-export.js';
import { rejectionOf } from '../../support/error-of.js';
import { linesLogger } from '../../support/log-lines.js';
import { InstantClock } from '../../support/manual-clock.js';
import { START } from '../support.js';
import { type BulkFixture, eventTypes, FIRST_RUN, fixtureBulkHttp, MemoryCheckpoints, startBulkFixture, until } from './support.js';

let f: BulkFixture;
beforeAll(async () => {
  f = await startBulkFixture({ events: 30, patients: 6, practitioners: 3 }, { resourcesPerFile: 10 });
});
afterAll(async () => f?.close());
afterEach(() => {
  Object.assign(f.bulk, {
    ...DEFAULT_BULK_SETTINGS,
    types: [...DEFAULT_BULK_SETTINGS.types],
    groupIds: [...DEFAULT_BULK_SETTINGS.groupIds],
    processingPolls: 1,
    resourcesPerFile: 10,
  });
  f.fx.server.faults.clear();
});

const log = () => f.fx.server.bulk.log;
const FOUR_MIB = 4 * 1024 * 1024;
const ids = (events: ReadonlyArray<{ id?: string | undefined }>) => events.map((e) => e.id);

describe('manifest', () => {
  it('follows link[next] through a paged manifest and reads every file once, in order', async () => {
    f.bulk.outputsPerManifestPage = 1;
    const downloads = log().downloads.length;
    const events = await f.source().read();
    expect(ids(events)).toEqual(ids(f.data.events));
    const job = log().kickoffs.at(-1)?.jobId;
    // 3 AuditEvent files of 10, 1 Patient, 1 Practitioner: five pages of one output each.
    expect(
      log()
        .manifests.filter((m) => m.jobId === job)
        .map((m) => m.page),
    ).toEqual([1, 2, 3, 4, 5]);
    expect(
      log()
        .downloads.slice(downloads)
        .map((d) => d.file),
    ).toEqual(['3', '4', '0', '1', '2']);
  });

  it('reads the error files and reports their OperationOutcomes (counted per issue code, never their text), then maps the rest', async () => {
    f.bulk.errorLines = 3;
    const lines: string[] = [];
    const logger = linesLogger(lines, 'info');
    const harness = f.source({ logger });
    expect(await harness.read()).toHaveLength(f.data.events.length);
    expect(harness.events.find((e) => e.type === 'export-errors')).toEqual({
      type: 'export-errors',
      outcomes: 3,
      codes: { processing: 3 },
    });
    expect(lines.some((l) => l.includes('the FHIR server reported errors for this export') && l.includes('"outcomes":3'))).toBe(true);
    // Only codes: diagnostics may name the patient a resource belongs to, and no scrubbing catches every name.
    expect(lines.join('\n')).not.toContain('could not be exported');
    expect(log().downloads.filter((d) => d.file === 'error')).toHaveLength(1);
    // The run records them: the watermark moves past them.
    expect(harness.source.unexported()).toBe(3);
  });

  it("reads an error file served gzip-compressed without Content-Encoding (a blob store's .ndjson.gz) as its first bytes say", async () => {
    Object.assign(f.bulk, { errorLines: 2, gzip: true, gzipUnlabelled: true });
    const harness = f.source();
    expect(await harness.read()).toHaveLength(f.data.events.length);
    expect(harness.events.find((e) => e.type === 'export-errors')).toEqual({ type: 'export-errors', outcomes: 2, codes: { processing: 2 } });
  });

  it('a pull resumed after the error files were reported still counts them, without reading them again', async () => {
    Object.assign(f.bulk, { errorLines: 2, resourcesPerFile: 5, fileDelayMs: 60 });
    const first = f.source();
    const stop = new AbortController();
    const dying = first.read(undefined, stop.signal).catch((e: unknown) => e);
    await until(() => first.store.completeFiles().length >= 2);
    stop.abort();
    await dying;
    const errorDownloads = log().downloads.filter((d) => d.file === 'error').length;
    f.bulk.fileDelayMs = 0;
    const second = f.source({ store: first.store, dir: first.dir });
    expect(await second.read()).toHaveLength(f.data.events.length);
    expect(second.source.unexported()).toBe(2);
    expect(log().downloads.filter((d) => d.file === 'error')).toHaveLength(errorDownloads);
  });
});

describe('downloads', () => {
  it('sends the bearer with files on the FHIR server when requiresAccessToken is true', async () => {
    const downloads = log().downloads.length;
    await f.source().read();
    expect(
      log()
        .downloads.slice(downloads)
        .every((d) => d.origin === 'fhir' && d.authorization && d.status === 200),
    ).toBe(true);
  });

  it('gives up an export whose next manifest page is gone (404): the next run asks for a new one, not the same page again', async () => {
    f.bulk.outputsPerManifestPage = 1;
    f.fx.server.faults.add({ action: { kind: 'status', status: 404 }, match: /\/bulk\/manifest\//, times: 1 });
    const kickoffs = log().kickoffs.length;
    const first = f.source();
    const error = (await first.read().catch((e: unknown) => e)) as BridgeError;
    expect([error.code, error.message]).toEqual([
      'BRG_ERR_FHIR_EXPORT',
      "A page of the FHIR server's export manifest answered HTTP 404 (it no longer has it); the next run starts a new export.",
    ]);
    expect(first.store.parsed()?.statusUrl).toBeUndefined();
    const events = await f.source({ store: first.store, dir: first.dir }).read();
    expect(ids(events)).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 2);
    expect(f.fx.server.faults.pending).toBe(0);
  });

  it('sends no bearer to a file on another origin (a signed blob URL), though the manifest requires a token', async () => {
    f.bulk.foreignFiles = true;
    const downloads = log().downloads.length;
    expect(ids(await f.source().read())).toEqual(ids(f.data.events));
    const seen = log().downloads.slice(downloads);
    expect(seen).toHaveLength(5);
    expect(seen.every((d) => d.origin === 'foreign' && !d.authorization)).toBe(true);
  });

  it("the sandbox's blob origin serves a signed URL only as issued: not without its signature, not with another, not with a bearer too", async () => {
    Object.assign(f.bulk, { foreignFiles: true, processingPolls: 0 });
    const token = await f.fx.tokens.getToken();
    const asked = { accept: 'application/fhir+json', authorization: `Bearer ${token}` };
    const kickOff = await fetch(`${f.fx.server.baseUrl}/$export?_type=AuditEvent`, { headers: { ...asked, prefer: 'respond-async' } });
    expect(kickOff.status).toBe(202);
    const status = await fetch(kickOff.headers.get('content-location') as string, { headers: asked });
    expect(status.status).toBe(200);
    const manifest = (await status.json()) as { output: Array<{ url: string }> };
    const signed = new URL(manifest.output[0]?.url as string);
    const sig = signed.searchParams.get('sig') as string;
    expect(sig).toMatch(/^[0-9a-f-]{36}$/);
    const unsigned = new URL(signed);
    unsigned.search = '';
    const forged = new URL(signed);
    forged.searchParams.set('sig', crypto.randomUUID());
    expect((await fetch(unsigned)).status).toBe(403);
    expect((await fetch(forged)).status).toBe(403);
    expect((await fetch(signed, { headers: { authorization: `Bearer ${token}` } })).status).toBe(400);
    const served = await fetch(signed);
    expect(served.status).toBe(200);
    await served.arrayBuffer();
  });

  /** A read refused once with BRG_ERR_FHIR_EXPORT_FILE saying `message`: one export, none started again. */
  async function refusedWithoutRestart(message: RegExp): Promise<void> {
    const kickoffs = log().kickoffs.length;
    const error = (await f
      .source()
      .read()
      .catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect(error.message).toMatch(message);
    expect(log().kickoffs.length).toBe(kickoffs + 1);
  }

  it('a file on another origin, unsigned, that wants the token is no expiry: one clear error, no export restarted', async () => {
    Object.assign(f.bulk, { foreignFiles: true, foreignFilesUnsigned: true });
    const downloads = log().downloads.length;
    await refusedWithoutRestart(
      /is on http:\/\/127\.0\.0\.1:\d+, not on the FHIR server .* answered HTTP 401 without the token; the bridge sends its token only to the FHIR server/,
    );
    expect(
      log()
        .downloads.slice(downloads)
        .every((d) => d.origin === 'foreign' && !d.authorization),
    ).toBe(true);
  });

  it('sends no bearer when requiresAccessToken is false', async () => {
    f.bulk.requiresAccessToken = false;
    const downloads = log().downloads.length;
    expect(await f.source().read()).toHaveLength(f.data.events.length);
    expect(
      log()
        .downloads.slice(downloads)
        .every((d) => d.origin === 'fhir' && !d.authorization),
    ).toBe(true);
  });

  it('a file that wants the token the manifest said it needs not (requiresAccessToken: false) is no expiry: one clear error, no export restarted', async () => {
    Object.assign(f.bulk, { requiresAccessToken: false, filesWantToken: true });
    await refusedWithoutRestart(
      /answered HTTP 401 without the token, and its URL carries no signature: the manifest says its files need no token \(requiresAccessToken: false\)\. Ask the EHR team/,
    );
  });

  it('refuses a file answered 203 (a rewriting proxy) without reading its lines into the error', async () => {
    f.bulk.fileStatus = 203;
    f.bulk.gzip = false;
    const error = await f
      .source()
      .read()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect(failure.message).toContain('answered HTTP 203 instead of 200; its body was not read');
    expect(`${failure.message} ${JSON.stringify(failure.details)}`).not.toMatch(/MRN\d|"Patient"|pt-\d/);
  });

  it('refuses an export file over plain http from another machine before asking for it (export files are PHI)', async () => {
    const http = fixtureBulkHttp(f.fx, { timeoutMs: 1000, retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 10, maxDelayMs: 10 } });
    const file = { type: 'AuditEvent', url: 'http://files.example.org/export/1.ndjson' };
    const error = await requestExportFile(http, file, 'AuditEvent file 1 of 1', false, undefined).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_EXPORT_FILE' });
    expect((error as BridgeError).message).toContain('is served over plain http from http://files.example.org; export files must come over https');
  });

  it('accepts gzip (stored compressed, inflated while read) and identity alike', async () => {
    const gz = f.source();
    const zipped = await gz.read();
    f.bulk.gzip = false;
    const plain = f.source();
    expect(ids(await plain.read())).toEqual(ids(zipped));
    const bytes = (h: typeof gz) => h.events.flatMap((e) => (e.type === 'downloaded' ? [e.bytes] : [])).reduce((a, b) => a + b, 0);
    expect(bytes(gz)).toBeLessThan(bytes(plain) / 2);
    const lastDownloads = log().downloads.slice(-10);
    expect(lastDownloads.slice(0, 5).every((d) => d.gzip)).toBe(true);
    expect(lastDownloads.slice(5).every((d) => !d.gzip)).toBe(true);
  });

  it('reads a file of nothing sent as an empty body under Content-Encoding gzip as empty, output (read as it arrives) or error file (from disk)', async () => {
    // Every requested type is listed, those with nothing in a file of count 0, and an error file with no error; each
    // such file is sent as no bytes (not a gzip stream of nothing).
    f.bulk.emptyFiles = true;
    const settings = { types: ['AuditEvent', 'Patient', 'Practitioner', 'PractitionerRole', 'Encounter'] };
    const downloads = log().downloads.length;
    const harness = f.source({ settings });
    expect(ids(await harness.read())).toEqual(ids(f.data.events));
    const empty = log()
      .downloads.slice(downloads)
      .filter((d) => d.gzip);
    expect(empty.length).toBeGreaterThanOrEqual(8); // 3 + 1 + 1 files with resources, the 2 empty ones, the empty error file
    // The empty error file (read from disk) holds no OperationOutcome: nothing to report, none counted as not exported.
    expect(empty.some((d) => d.file === 'error')).toBe(true);
    expect(harness.source.unexported()).toBe(0);
    // A later window holds no event: the AuditEvent file, read as it arrives (not from disk), is such an empty body too.
    const before = log().downloads.length;
    const later = f.source({ settings });
    const lastChange = new Date(Math.max(...f.data.events.map((e) => Date.parse(e.meta?.lastUpdated ?? e.recorded))) + 60_000).toISOString();
    expect(await later.read({ since: lastChange, until: '2026-11-02T00:00:00.000Z', explicitSince: true })).toEqual([]);
    const files = log().downloads.slice(before);
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(files.every((d) => d.gzip && d.status === 200)).toBe(true);
  });

  it('retries a 503 or 429 on the first request of the file the reader is already waiting for', async () => {
    f.fx.server.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/file\// });
    f.fx.server.faults.add({ action: { kind: 'status', status: 429, retryAfter: '1' }, match: /\/bulk\/file\// });
    const harness = f.source({ clock: new InstantClock(START) });
    expect(ids(await harness.read())).toEqual(ids(f.data.events));
    // File 4 of 5 (Patient) is read first: the lookups come before the events.
    const job = log().kickoffs.at(-1)?.jobId as string;
    expect(f.fx.server.faults.fired.slice(-2).map((fault) => fault.target)).toEqual([
      expect.stringMatching(new RegExp(`/bulk/file/${job}/3$`)),
      expect.stringMatching(new RegExp(`/bulk/file/${job}/3$`)),
    ]);
    expect(log().downloads.filter((d) => d.jobId === job && d.file === '3')).toEqual([expect.objectContaining({ status: 200 })]);
    expect(f.fx.server.faults.pending).toBe(0);
  });

  it('refuses a line of another resourceType, naming the file and line (never its text)', async () => {
    f.bulk.badLine = { type: 'AuditEvent', line: 7 };
    const error = await f
      .source()
      .read()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect((error as BridgeError).message).toMatch(
      /^AuditEvent file 1 of 5 \(\/interconnect-fhir-oauth\/api\/FHIR\/R4\/bulk\/file\/[0-9a-f-]+\/0\), line 7: a Basic in a file of AuditEvent\. /,
    );
    expect((error as BridgeError).message).not.toContain('sandbox-bad-line');
    f.bulk.badLine = { type: 'Patient', line: 2 };
    expect(
      (
        (await f
          .source()
          .read()
          .catch((e: unknown) => e)) as BridgeError
      ).message,
    ).toMatch(/^Patient file 4 of 5 .*, line 2: a Basic in a file of Patient/);
  });

  it('gives up an export whose downloaded file is broken: the next run asks the server for a new export instead of rereading the copy', async () => {
    const store = new MemoryCheckpoints();
    const dir = mkdtempSync(join(tmpdir(), 'bulk-broken-'));
    f.bulk.badLine = { type: 'AuditEvent', line: 7 };
    const kickoffs = log().kickoffs.length;
    const error = await rejectionOf(f.source({ store, dir }).read());
    expect(error.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect(error.message).toMatch(
      /line 7: a Basic in a file of AuditEvent\. .*Report it to the EHR team\. The export was given up; the next run requests a new one\.$/,
    );
    expect(store.parsed()).toBeUndefined();
    expect(log().deletes).toContain(log().kickoffs[kickoffs]?.jobId);
    // The EHR fixed: the next run kicks off again and reads everything.
    f.bulk.badLine = undefined;
    expect(ids(await f.source({ store, dir }).read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 2);
  });

  it('asks for no new export on every run while broken ones keep coming: from the second in a row it waits, 15 min and doubling; a run given its --since asks at once', async () => {
    const store = new MemoryCheckpoints();
    const dir = mkdtempSync(join(tmpdir(), 'bulk-backoff-'));
    const clock = new InstantClock(START);
    const run = async (window = FIRST_RUN): Promise<BridgeError> =>
      (await f
        .source({ store, dir, clock })
        .read(window)
        .catch((e: unknown) => e)) as BridgeError;
    f.bulk.badLine = { type: 'AuditEvent', line: 3 };
    const kickoffs = log().kickoffs.length;
    // One broken export may be a hiccup: the next run asks again at once.
    expect((await run()).message).toContain('The export was given up; the next run requests a new one.');
    expect((await run()).message).toMatch(
      /The export was given up; the next export is requested after \S+ \(the last 2 in a row were broken\), or at once by `bridge sync --since 1970-01-01T00:00:00\.000Z`\.$/,
    );
    const waiting = await run();
    expect(waiting.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect(waiting.message).toMatch(
      /^The last 2 exports were each given up for a broken file \(the runs that gave them up say which\); the next is requested after \S+, not on every run\. Once the EHR team has fixed it, run `bridge sync --since 1970-01-01T00:00:00\.000Z` to ask at once\.$/,
    );
    expect(log().kickoffs.length).toBe(kickoffs + 2);
    await clock.sleep(15 * 60_000);
    expect((await run()).message).toContain('The export was given up');
    await clock.sleep(20 * 60_000);
    expect((await run()).message).toMatch(/^The last 3 exports were each given up/);
    expect(log().kickoffs.length).toBe(kickoffs + 3);
    // Fixed by the EHR team: a run given its start asks at once, and an export read whole ends the streak. The start
    // advised is the epoch: the broken exports were of everything (a first run), and so is the one it asks for.
    f.bulk.badLine = undefined;
    expect(ids(await f.source({ store, dir, clock }).read({ ...FIRST_RUN, since: '1970-01-01T00:00:00.000Z', explicitSince: true }))).toEqual(
      ids(f.data.events),
    );
    expect(log().kickoffs.at(-1)?.since).toBe('1969-12-31T23:59:59.999Z');
    expect(ids(await f.source({ store, dir, clock }).read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 5);
  });

  it("advises a --since that asks for the export that broke: after a scope change, everything, not what changed since the old scope's watermark", async () => {
    const first = f.source();
    const window = { since: '2026-11-01T00:00:00.000Z', until: new Date().toISOString() };
    await first.read(window);
    const watermark = first.source.coveredUntil() as string;
    const after = { since: new Date(Date.parse(watermark) - 15 * 60_000).toISOString(), until: new Date().toISOString(), dedupeBefore: watermark };
    const group = () => f.source({ store: first.store, settings: { level: 'group', groupId: 'sandbox-all' } });
    f.bulk.badLine = { type: 'AuditEvent', line: 2 };
    const messages: string[] = [];
    for (let i = 0; i < 2; i++)
      await group()
        .read(after)
        .catch((e: Error) => messages.push(e.message));
    f.bulk.badLine = undefined;
    // The other scope's watermark says nothing of this scope's events: the broken exports were of everything.
    expect(
      log()
        .kickoffs.slice(-2)
        .map((kickoff) => kickoff.since),
    ).toEqual([undefined, undefined]);
    const advised = /bridge sync --since (\S+?)`/.exec(messages.at(-1) ?? '')?.[1];
    expect(advised).toBe('1970-01-01T00:00:00.000Z');
    const events = await group().read({ ...after, since: advised as string, explicitSince: true });
    expect(ids(events)).toEqual(ids(f.data.events));
  });

  it("refuses a file that ended early at a line end (fewer resources than the manifest's count), gives the export up, and the next run reads all", async () => {
    const store = new MemoryCheckpoints();
    const dir = mkdtempSync(join(tmpdir(), 'bulk-short-'));
    // Plain, framed by the connection's close: nothing but the count tells the body ended early.
    Object.assign(f.bulk, { gzip: false, shortFile: { type: 'AuditEvent', lines: 4 } });
    const kickoffs = log().kickoffs.length;
    const error = await rejectionOf(f.source({ store, dir }).read());
    expect(error).toBeInstanceOf(BridgeError);
    expect(error.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect(error.message).toMatch(
      /^AuditEvent file 1 of 5 \(.*\/0\) held 4 resources where the manifest says 10: it ended early\. If this server is known to miscount its files, set source\.checkCounts to false\. .*The export was given up; the next run requests a new one\.$/,
    );
    expect(store.parsed()).toBeUndefined();
    expect(log().deletes).toContain(log().kickoffs[kickoffs]?.jobId);
    f.bulk.shortFile = undefined;
    expect(ids(await f.source({ store, dir }).read())).toEqual(ids(f.data.events));
  });

  it('refuses a line longer than 4 MiB (small objects, which JSON.parse makes 20 times larger) naming file and line, gives the export up, and the next run reads all', async () => {
    // Its own server: the resource added here must not reach the other tests' exports.
    const g = await startBulkFixture({ events: 12, patients: 3, practitioners: 2 }, { resourcesPerFile: 50 });
    try {
      // Just over 4 MiB: a line the old limit (64 MiB) let through to JSON.parse.
      const piece = '{"url":"u"},';
      const big = {
        ...(g.data.events[0] as AuditEvent),
        id: 'big-line',
        extension: Array.from({ length: Math.ceil(FOUR_MIB / piece.length) }, () => ({ url: 'u' })),
      };
      expect(JSON.stringify(big).length).toBeGreaterThan(FOUR_MIB);
      expect(JSON.stringify(big).length).toBeLessThan(FOUR_MIB + 4096);
      await g.fx.backend.load([big]);
      const store = new MemoryCheckpoints();
      const dir = mkdtempSync(join(tmpdir(), 'bulk-long-line-'));
      const glog = g.fx.server.bulk.log;
      const kickoffs = glog.kickoffs.length;
      const error = await rejectionOf(g.source({ store, dir }).read());
      expect(error).toBeInstanceOf(BridgeError);
      expect(error.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
      expect(error.message).toMatch(
        /^AuditEvent file 1 of 3 \(\/interconnect-fhir-oauth\/api\/FHIR\/R4\/bulk\/file\/[0-9a-f-]+\/0\): line 2 is longer than 4194304 bytes, far more than any one resource \(a few KB\); it was not read\. .*The export was given up; the next run requests a new one\.$/,
      );
      expect(error.message).not.toContain('"url"');
      // Not only the EHR team's to fix: a type whose resources are this large on purpose is left out of the export.
      expect(error.message).toContain('leave its type out of source.types');
      expect(store.parsed()).toBeUndefined();
      expect(glog.deletes).toContain(glog.kickoffs[kickoffs]?.jobId);
      // The EHR fixed: the next run kicks off again and reads everything.
      await g.fx.backend.remove('AuditEvent', 'big-line');
      expect(ids(await g.source({ store, dir }).read())).toEqual(ids(g.data.events));
      expect(glog.kickoffs.length).toBe(kickoffs + 2);
    } finally {
      await g.close();
    }
  });

  it('refuses a long line as its bytes arrive: a file of one 30 MiB line is not read past the limit', async () => {
    let read = 0;
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"resourceType":"AuditEvent","id":"e1","extension":[');
      const piece = Buffer.from('{},'.repeat(349_525)); // 1 MiB of empty objects
      for (let i = 0; i < 30; i++) {
        read += piece.length;
        yield piece;
      }
      yield Buffer.from('{}]}\n');
    }
    const lines: number[] = [];
    const error = await (async () => {
      for await (const batch of exportFileLines(chunks(), 'AuditEvent file 1 of 1 (/x.ndjson)')) lines.push(batch.length);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect((error as BridgeError).message).toMatch(/^AuditEvent file 1 of 1 \(\/x\.ndjson\): line 1 is longer than 4194304 bytes/);
    expect(lines).toEqual([]);
    expect(read).toBeLessThanOrEqual(FOUR_MIB + (1 << 20));
  });

  it('refuses a line that is not UTF-8 naming file, line and column, wherever the chunks cut it (never U+FFFD in a name)', async () => {
    const text = Buffer.from(
      '{"resourceType":"Patient","id":"p0"}\n{"resourceType":"Patient","id":"p1","name":[{"family":"MxLLER"}]}\n{"resourceType":"Patient","id":"p2"}',
      'utf8',
    );
    text[text.indexOf('MxLLER') + 1] = 0xfc;
    for (const cuts of [[], [40], [70], [100], [40, 70, 99]]) {
      async function* chunks(): AsyncGenerator<Buffer> {
        let from = 0;
        for (const cut of [...cuts, text.length]) {
          yield text.subarray(from, cut);
          from = cut;
        }
      }
      const error = await (async () => {
        for await (const batch of exportFileLines(chunks(), 'Patient file 1 of 1 (/p.ndjson)')) for (let i = 0; i < batch.length; i++) batch.text(i);
      })().catch((e: unknown) => e);
      expect(error, `cut at ${cuts.join(',')}`).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
      expect((error as BridgeError).message).toMatch(/^Patient file 1 of 1 \(\/p\.ndjson\): not UTF-8 at line 2, column 57 /);
    }
  });

  it('refuses a lookup file cut short the same way (gzip-compressed, the stream ended cleanly)', async () => {
    f.bulk.shortFile = { type: 'Patient', lines: 2 };
    const error = (await f
      .source()
      .read()
      .catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_FHIR_EXPORT_FILE');
    expect(error.message).toMatch(/^Patient file 4 of 5 .* held 2 resources where the manifest says 6: it ended early\./);
  });

  it('with source.checkCounts false, a short file is read as it is and logged (no text of it)', async () => {
    Object.assign(f.bulk, { gzip: false, shortFile: { type: 'AuditEvent', lines: 4 } });
    const lines: string[] = [];
    const logger = linesLogger(lines, 'info');
    const events = await f.source({ logger, settings: { checkCounts: false } }).read();
    expect(events).toHaveLength(f.data.events.length - 6);
    const warning = lines.find((l) => l.includes("an export file's resources differ from its manifest's count"));
    expect(JSON.parse(warning ?? '{}')).toMatchObject({ count: 10, resources: 4, file: expect.stringMatching(/^AuditEvent file 1 of 5 /) });
  });

  it('restarts the export with a clear message when its files expired (410) before any event was read', async () => {
    f.bulk.expiredJobs = 1;
    const lines: string[] = [];
    const logger = linesLogger(lines, 'info');
    const kickoffs = log().kickoffs.length;
    const harness = f.source({ logger, clock: new InstantClock(START) });
    expect(ids(await harness.read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 2);
    expect(harness.events).toContainEqual({ type: 'restart', reason: 'files expired (HTTP 410)' });
    expect(lines.some((l) => l.includes("the export's files expired before they were downloaded; starting a new export"))).toBe(true);
    expect(log().deletes).toContain(log().kickoffs[kickoffs]?.jobId);
  });

  it('restarts the export when a signed blob URL has expired, which a blob store answers 403 (no token was sent)', async () => {
    Object.assign(f.bulk, { foreignFiles: true, expiredJobs: 1 });
    const kickoffs = log().kickoffs.length;
    const harness = f.source({ clock: new InstantClock(START) });
    expect(ids(await harness.read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 2);
    expect(harness.events).toContainEqual({ type: 'restart', reason: 'files expired (HTTP 403)' });
    expect(
      log()
        .downloads.filter((d) => d.status === 403)
        .every((d) => d.origin === 'foreign' && !d.authorization),
    ).toBe(true);
  });

  it('asks a file on the FHIR server refused (403) to the token once more with a new token, and reads it: no export restarted', async () => {
    f.fx.server.faults.add({ action: { kind: 'status', status: 403 }, match: /\/bulk\/file\//, times: 1 });
    const kickoffs = log().kickoffs.length;
    const issued = f.fx.tokens.issued;
    const harness = f.source({ clock: new InstantClock(START) });
    expect(ids(await harness.read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 1);
    expect(f.fx.server.faults.pending).toBe(0);
    expect(f.fx.tokens.issued).toBe(issued + 1);
    expect(eventTypes(harness.events)).not.toContain('restart');
  });

  it('restarts an export whose files on the FHIR server answer 403 to the token, a new one too, instead of resuming it on every run', async () => {
    // A server that refuses the files of an export it no longer serves (not 410): resumed, the export would ask for the
    // same file on every run, for good.
    f.bulk.forbiddenJobs = 1;
    const lines: string[] = [];
    const logger = linesLogger(lines, 'info');
    const kickoffs = log().kickoffs.length;
    const harness = f.source({ logger, clock: new InstantClock(START) });
    expect(ids(await harness.read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 2);
    const refused = log().kickoffs[kickoffs]?.jobId;
    // Asked with the token, then with a new one; the export was given up (DELETE) and a new one read in full.
    expect(
      log()
        .downloads.filter((d) => d.jobId === refused)
        .map((d) => [d.status, d.authorization]),
    ).toEqual([
      [403, true],
      [403, true],
    ]);
    expect(log().deletes).toContain(refused);
    expect(harness.events).toContainEqual({ type: 'restart', reason: 'files refused (HTTP 403)' });
    expect(lines.some((l) => l.includes("the export's files were refused before they were downloaded; starting a new export"))).toBe(true);
    expect(harness.store.parsed()?.statusUrl).toBeUndefined();
    // An export read to its end ends the streak.
    expect(harness.store.parts.has('refused-exports')).toBe(false);
  });

  it('stops with a clear error, no endless restarts, when the files keep answering 403 to the token: naming the type and the scope to check', async () => {
    f.bulk.forbiddenJobs = 10;
    const store = new MemoryCheckpoints();
    const kickoffs = log().kickoffs.length;
    const first = f.source({ store, clock: new InstantClock(START) });
    const error = (await first.read().catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_FHIR_EXPORT');
    expect(error.message).toMatch(
      /^Patient file 4 of 5 \(\/\S+\) answered HTTP 403 with an OperationOutcome \(error forbidden\) to the access token, a new one too, in 2 exports in a row\. Its text is not quoted, as it may name a patient; the FHIR server's log has it\. So the FHIR server does not let this client read exported Patient\. Check that the client has the scope system\/Patient\.read and Bulk Data export enabled at the EHR/,
    );
    expect(error.message).toMatch(/the export was given up, and the next run requests a new one\.$/);
    expect(error.message).not.toContain('tok-');
    // One restart in the run, and nothing left to resume: the next run asks for a new export, once, and stops the same way.
    expect(log().kickoffs.length).toBe(kickoffs + 2);
    expect(store.parsed()?.statusUrl).toBeUndefined();
    const second = (await f
      .source({ store, dir: first.dir, clock: new InstantClock(START) })
      .read()
      .catch((e: unknown) => e)) as BridgeError;
    expect(second.message).toContain('in 3 exports in a row');
    expect(log().kickoffs.length).toBe(kickoffs + 3);
    // Once the server serves the files again, the next run reads everything.
    f.bulk.forbiddenJobs = 0;
    expect(ids(await f.source({ store, dir: first.dir, clock: new InstantClock(START) }).read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 4);
    expect(store.parts.has('refused-exports')).toBe(false);
  });

  it("names the export's error report, not a resource scope, when its error file is the one refused", async () => {
    const reporting = await startBulkFixture({ events: 5, patients: 2, practitioners: 1 }, { forbiddenJobs: 10, errorLines: 1 });
    try {
      const error = (await reporting
        .source()
        .read()
        .catch((e: unknown) => e)) as BridgeError;
      expect(error.message).toMatch(/^error file 1 of 1 \(\S+\) answered HTTP 403 with an OperationOutcome \(error forbidden\) to the access token/);
      expect(error.message).toContain("does not let this client read the export's error report");
      expect(error.message).not.toContain('OperationOutcome.read');
    } finally {
      await reporting.close();
    }
  });

  it("reads the server's refusal, though it came gzip-compressed (IIS in front of Epic compresses JSON answers)", async () => {
    const gzipped = await startBulkFixture({ events: 5, patients: 2, practitioners: 1 }, { forbiddenJobs: 10 }, { gzip: true });
    try {
      const error = (await gzipped
        .source()
        .read()
        .catch((e: unknown) => e)) as BridgeError;
      // Its codes are read: inflated (else it is no JSON); its words stay out of the message (outcome.ts).
      expect(error.message).toContain('answered HTTP 403 with an OperationOutcome (error forbidden) to the access token, a new one too, in 2 exports');
      expect(error.message).not.toContain('not available to this client');
      expect(gzipped.fx.server.requests.filter((r) => r.status === 403).every((r) => r.gzipped)).toBe(true);
    } finally {
      await gzipped.close();
    }
  });

  it('stops the run when files are refused (403 to the token) after events were read, and the next run exports anew: nothing read twice in a run', async () => {
    Object.assign(f.bulk, { resourcesPerFile: 5 });
    // Files 0-5 hold the events (read last, after the lookups 6-8): the last one is refused, to the token and a new one.
    f.fx.server.faults.add({ action: { kind: 'status', status: 403 }, match: /\/bulk\/file\/[^/]+\/5$/, times: 2 });
    const harness = f.source({ pageSize: 5 });
    const read: string[] = [];
    const error = await (async () => {
      for await (const page of harness.source.pages(FIRST_RUN)) read.push(...page.map((e) => e.id as string));
    })().catch((e: unknown) => e);
    expect(read).toEqual(ids(f.data.events).slice(0, 25));
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
    expect((error as BridgeError).message).toMatch(
      /^The export's files were refused \(AuditEvent file 6 of 9 \(\S+\) answered HTTP 403 to the access token, a new one too\) after 25 of its events were read; this run stopped without pushing them, and the next run starts a new export\.$/,
    );
    expect(harness.store.value).toBeUndefined();
    const kickoffs = log().kickoffs.length;
    expect(ids(await f.source({ store: harness.store, dir: harness.dir }).read())).toEqual(ids(f.data.events));
    expect(log().kickoffs.length).toBe(kickoffs + 1);
    expect(harness.store.parts.has('refused-exports')).toBe(false);
  });

  it('follows a file redirected to a blob store, without the token there', async () => {
    f.bulk.redirectFiles = true;
    const downloads = log().downloads.length;
    expect(ids(await f.source().read())).toEqual(ids(f.data.events));
    const seen = log().downloads.slice(downloads);
    expect(seen.filter((d) => d.status === 302)).toHaveLength(5);
    expect(seen.filter((d) => d.status === 302).every((d) => d.origin === 'fhir' && d.authorization)).toBe(true);
    expect(seen.filter((d) => d.status === 200)).toHaveLength(5);
    expect(seen.filter((d) => d.status === 200).every((d) => d.origin === 'foreign' && !d.authorization)).toBe(true);
  });

  it('stops the run when files expire after events were read (they are in the spool), and the next run exports anew', async () => {
    Object.assign(f.bulk, { resourcesPerFile: 5, fileDelayMs: 150 });
    const harness = f.source({ pageSize: 5 });
    const pages = harness.source.pages({ since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z' });
    let read = 0;
    const error = await (async () => {
      for await (const page of pages) {
        read += page.length;
        f.bulk.fileTtlMs = 0; // every file asked for from now on has expired
      }
    })().catch((e: unknown) => e);
    expect(read).toBeGreaterThan(0);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
    expect((error as BridgeError).message).toMatch(
      /files expired \(AuditEvent file \d of 9 .* answered HTTP 410\) after \d+ of its events were read; this run stopped without pushing them, and the next run starts a new export/,
    );
    expect(harness.store.value).toBeUndefined();
    Object.assign(f.bulk, { fileTtlMs: 3_600_000, fileDelayMs: 0 });
    expect(await f.source({ store: harness.store, dir: harness.dir }).read()).toHaveLength(f.data.events.length);
  });

  it.skipIf(process.platform !== 'linux')(
    "holds no file open inside the export's folder once the export is finished (Windows cannot remove an open one)",
    async () => {
      const harness = f.source();
      expect(await harness.read()).toHaveLength(f.data.events.length);
      const open = readdirSync('/proc/self/fd').flatMap((fd) => {
        try {
          return [readlinkSync(join('/proc/self/fd', fd))];
        } catch {
          return [];
        }
      });
      // The lookup index stays open for the pipeline's last pages, beside the folder; nothing is open inside it.
      expect(open.filter((path) => path.startsWith(`${harness.dir}/`) && path.slice(harness.dir.length + 1).includes('/'))).toEqual([]);
      expect(open.some((path) => path.startsWith(harness.dir) && path.includes('.lookup.sqlite'))).toBe(true);
      harness.source.close();
      expect(readdirSync(harness.dir)).toEqual([]);
    },
  );

  it('lists what happened as events: kick-off, progress, manifest, downloads, finished with a DELETE', async () => {
    const harness = f.source();
    await harness.read();
    expect(eventTypes(harness.events)).toEqual([
      'kick-off',
      'progress',
      'manifest',
      'downloaded',
      'downloaded',
      'downloaded',
      'downloaded',
      'downloaded',
      'finished',
    ]);
    expect(harness.events.at(-1)).toEqual({ type: 'finished', deleted: true });
    expect(log().deletes.at(-1)).toBe(log().kickoffs.at(-1)?.jobId);
    expect(harness.store.parsed()?.statusUrl).toBeUndefined();
  });
});
