/**
 * Resumption and the window: a run that dies while polling polls the same status URL next time, one that dies while
 * downloading fetches only the files not yet complete, a finished export is DELETEd and forgotten, and `_since` is the
 * previous export's transactionTime exactly.
 */
import { readdirSync } from 'node:fs';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../../src/errors.js';
import { describeExportEvent, exportSince } from '../../../src/fhir/bulk-source.js';
import { normaliseBase } from '../../../src/reference-keys.js';
import { DEFAULT_BULK_SETTINGS } from '../../../src/sandbox/bulk-export.js';
import { InstantClock } from '../../support/manual-clock.js';
import { START } from '../support.js';
import { type BulkFixture, eventTypes, MemoryCheckpoints, startBulkFixture, until } from './support.js';

let f: BulkFixture;
beforeAll(async () => {
  f = await startBulkFixture({ events: 30, patients: 6, practitioners: 3 });
});
afterAll(async () => f?.close());
afterEach(() => {
  f.fx.server.faults.clear();
  Object.assign(f.bulk, {
    ...DEFAULT_BULK_SETTINGS,
    types: [...DEFAULT_BULK_SETTINGS.types],
    groupIds: [...DEFAULT_BULK_SETTINGS.groupIds],
    processingPolls: 1,
  });
});

const log = () => f.fx.server.bulk.log;
const window = { since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z' };

/**
 * A run that kicked off an export and died while polling it (aborted after `polls` more status polls): its checkpoint
 * stays in `store`, its files under `dir`.
 */
async function diedWhilePolling(store: MemoryCheckpoints, polls: number, clock?: InstantClock): Promise<{ dir: string; error: unknown }> {
  f.bulk.processingPolls = 1_000_000;
  const first = f.source({ store, ...(clock ? { clock } : {}) });
  const stop = new AbortController();
  const before = log().polls.length;
  const dying = first.read(window, stop.signal).catch((e: unknown) => e);
  await until(() => log().polls.length >= before + polls);
  stop.abort();
  return { dir: first.dir, error: await dying };
}

describe('resuming an export', () => {
  it('polls the same status URL after a run died while polling: no second kick-off', async () => {
    const store = new MemoryCheckpoints();
    const kickoffs = log().kickoffs.length;
    const first = await diedWhilePolling(store, 3, new InstantClock(START));
    expect((first.error as Error).name).toBe('AbortError');
    const statusUrl = store.parsed()?.statusUrl;
    expect(statusUrl).toMatch(/\/bulk\/status\//);
    f.bulk.processingPolls = 0;
    const second = f.source({ store, dir: first.dir, clock: new InstantClock(START) });
    expect(await second.read(window)).toHaveLength(f.data.events.length);
    expect(log().kickoffs.length).toBe(kickoffs + 1);
    expect(second.events[0]).toEqual({ type: 'resumed', phase: 'polling', filesComplete: 0, files: 0 });
  });

  it('polls once before the deadline counts: an export that finished while no run polled is read, even past pollMaxMinutes', async () => {
    const store = new MemoryCheckpoints();
    const first = await diedWhilePolling(store, 2, new InstantClock(START));
    const job = log().kickoffs.at(-1)?.jobId;
    // The bridge was down for five hours (pollMaxMinutes is 60); the server finished the export meanwhile.
    f.bulk.processingPolls = 0;
    const kickoffs = log().kickoffs.length;
    const second = f.source({ store, dir: first.dir, clock: new InstantClock(START + 5 * 3_600_000) });
    expect(await second.read(window)).toHaveLength(f.data.events.length);
    expect(log().kickoffs.length).toBe(kickoffs);
    expect(log().manifests.at(-1)?.jobId).toBe(job);
    expect(eventTypes(second.events).slice(0, 2)).toEqual(['resumed', 'manifest']);
  });

  it('abandons a resumed export past pollMaxMinutes once the server says it is still in progress', async () => {
    const store = new MemoryCheckpoints();
    const first = await diedWhilePolling(store, 2, new InstantClock(START));
    const job = log().kickoffs.at(-1)?.jobId as string;
    const clock = new InstantClock(START + 5 * 3_600_000);
    const second = f.source({ store, dir: first.dir, clock });
    const error = (await second.read(window).catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_FHIR_EXPORT');
    expect(error.message).toContain('was not ready by 2026-11-01T01:00:00.000Z (source.pollMaxMinutes after its kick-off)');
    // One poll, answered 202 (its progress), and no wait for another.
    expect(eventTypes(second.events)).toEqual(['resumed', 'progress']);
    expect(clock.slept).toEqual([]);
    expect(log().deletes).toContain(job);
    expect(store.value).toBeUndefined();
  });

  it('abandons a resumed export past pollMaxMinutes whose status polls only ever fail (throttled, transient): never held for good', async () => {
    for (const action of [
      { kind: 'status', status: 429, retryAfter: '5' },
      { kind: 'status', status: 503 },
      { kind: 'status', status: 507 }, // a transient OperationOutcome on a 5xx the client has no name for
    ] as const) {
      const store = new MemoryCheckpoints();
      const first = await diedWhilePolling(store, 2, new InstantClock(START));
      // Every poll fails (one more fault than the four polls: the dead run's last poll may reach the server only now).
      f.fx.server.faults.add({ action, match: /\/bulk\/status\//, times: 5 });
      const error = (await f
        .source({ store, dir: first.dir, clock: new InstantClock(START + 5 * 3_600_000) })
        .read(window)
        .catch((e: unknown) => e)) as BridgeError;
      f.fx.server.faults.clear();
      expect(error.code, `HTTP ${action.status}`).toBe('BRG_ERR_FHIR_EXPORT');
      expect(error.message).toContain('its status polls kept failing');
      expect(store.parsed()?.statusUrl, `HTTP ${action.status}`).toBeUndefined();
      // The next run exports anew instead of polling the broken export again.
      const kickoffs = log().kickoffs.length;
      f.bulk.processingPolls = 0;
      expect(await f.source({ store, dir: first.dir, clock: new InstantClock(START + 5 * 3_600_000) }).read(window)).toHaveLength(f.data.events.length);
      expect(log().kickoffs.length).toBe(kickoffs + 1);
    }
  });

  it('keeps a resumed export past pollMaxMinutes when the token (not the export) fails: the next run reads it', async () => {
    const store = new MemoryCheckpoints();
    const first = await diedWhilePolling(store, 2, new InstantClock(START));
    const job = log().kickoffs.at(-1)?.jobId as string;
    const noToken = {
      getToken: async (): Promise<string> => {
        throw new BridgeError('BRG_ERR_SMART_TOKEN', 'The token endpoint answered 503 three times.');
      },
      invalidate: () => undefined,
    };
    const later = new InstantClock(START + 5 * 3_600_000);
    const error = (await f
      .source({ store, dir: first.dir, clock: later, tokens: noToken })
      .read(window)
      .catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_SMART_TOKEN');
    expect(store.parsed()?.statusUrl).toMatch(new RegExp(`/bulk/status/${job}$`));
    f.bulk.processingPolls = 0;
    expect(await f.source({ store, dir: first.dir, clock: later }).read(window)).toHaveLength(f.data.events.length);
    expect(log().manifests.at(-1)?.jobId).toBe(job);
  });

  it.each([
    ['labelled Content-Encoding: gzip', false],
    ['compressed without Content-Encoding (a blob store .ndjson.gz)', true],
  ])('downloads only the files not yet complete after a run died while downloading (%s)', async (_files, gzipUnlabelled) => {
    Object.assign(f.bulk, { resourcesPerFile: 5, fileDelayMs: 60, gzipUnlabelled });
    const store = new MemoryCheckpoints();
    const first = f.source({ store });
    const stop = new AbortController();
    const dying = first.read(window, stop.signal).catch((e: unknown) => e);
    await until(() => store.completeFiles().length >= 3);
    stop.abort();
    await dying;
    const job = log().kickoffs.at(-1)?.jobId;
    const complete = store.completeFiles();
    const files = (store.parsed() as unknown as { manifest: { output: unknown[] } }).manifest.output.length;
    expect(complete.length).toBeLessThan(files);
    const downloads = log().downloads.length;
    f.bulk.fileDelayMs = 0;
    const second = f.source({ store, dir: first.dir });
    const events = await second.read(window);
    expect(events.map((e) => e.id)).toEqual(f.data.events.map((e) => e.id));
    const again = log().downloads.slice(downloads);
    expect(again.every((d) => d.jobId === job)).toBe(true);
    expect(again.map((d) => d.file).filter((file) => complete.includes(file))).toEqual([]);
    expect(again).toHaveLength(files - complete.length);
    expect(second.events[0]).toEqual({ type: 'resumed', phase: 'downloading', filesComplete: complete.length, files });
  });

  it('abandons a checkpoint made for another request (types changed) with a DELETE, and exports anew', async () => {
    const store = new MemoryCheckpoints();
    const first = await diedWhilePolling(store, 1, new InstantClock(START));
    const old = log().kickoffs.at(-1)?.jobId;
    f.bulk.processingPolls = 0;
    await f.source({ store, dir: first.dir, settings: { types: ['AuditEvent', 'Patient'] } }).read(window);
    expect(log().deletes).toContain(old);
    expect(log().kickoffs.at(-1)?.types).toEqual(['AuditEvent', 'Patient']);
  });

  it('resumes the export in flight when source.types was only reordered (or lists a type twice): the set is the request', async () => {
    const store = new MemoryCheckpoints();
    const first = await diedWhilePolling(store, 1, new InstantClock(START));
    const job = log().kickoffs.at(-1)?.jobId as string;
    const kickoffs = log().kickoffs.length;
    const deletes = log().deletes.length;
    f.bulk.processingPolls = 0;
    const reordered = ['Practitioner', 'AuditEvent', 'Patient', 'Practitioner'];
    const second = f.source({ store, dir: first.dir, settings: { types: reordered } });
    expect(await second.read(window)).toHaveLength(f.data.events.length);
    expect(log().kickoffs.length).toBe(kickoffs);
    expect(log().manifests.at(-1)?.jobId).toBe(job);
    expect(log().deletes.slice(deletes)).toEqual([job]);
    expect(second.events[0]).toEqual({ type: 'resumed', phase: 'polling', filesComplete: 0, files: 0 });
    // The next export's _type follows the config as written.
    await f.source({ store, dir: first.dir, settings: { types: ['Practitioner', 'AuditEvent', 'Patient'] } }).read(window);
    expect(log().kickoffs.at(-1)?.types).toEqual(['Practitioner', 'AuditEvent', 'Patient']);
    // Another set of types is another request: the export in flight is given up, as before.
    const third = await diedWhilePolling(store, 1, new InstantClock(START));
    const old = log().kickoffs.at(-1)?.jobId as string;
    f.bulk.processingPolls = 0;
    await f.source({ store, dir: third.dir, settings: { types: ['Patient', 'AuditEvent'] } }).read(window);
    expect(log().deletes).toContain(old);
    expect(log().kickoffs.at(-1)?.types).toEqual(['Patient', 'AuditEvent']);
  });

  it('starts a new export when fhir.baseUrl changed, instead of polling the export an earlier run asked another server for', async () => {
    const store = new MemoryCheckpoints();
    const first = await diedWhilePolling(store, 1, new InstantClock(START));
    const old = log().kickoffs.at(-1)?.jobId as string;
    expect(store.parsed()?.request?.base).toBe(f.fx.server.baseUrl);
    // The connector now points at another FHIR server: its own export, never a poll of the old server's status URL.
    const other = await startBulkFixture({ events: 30, patients: 6, practitioners: 3 }, { processingPolls: 0 });
    try {
      const second = other.source({ store, dir: first.dir, clock: new InstantClock(START) });
      expect(await second.read(window)).toHaveLength(other.data.events.length);
      expect(other.fx.server.bulk.log.kickoffs).toHaveLength(1);
      expect(eventTypes(second.events)[0]).toBe('kick-off');
      // The old export is given up (its DELETE carries no token to the old server: it is another origin now).
      expect(log().deletes).not.toContain(old);
      expect(store.parsed()?.statusUrl).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('DELETEs the status URL after success and forgets the export: no checkpoint, no local files', async () => {
    const harness = f.source();
    await harness.read(window);
    expect(log().deletes.at(-1)).toBe(log().kickoffs.at(-1)?.jobId);
    // Only the finished export's scope stays: which server, level and Group its transactionTime covers.
    expect(harness.store.parsed()).toEqual({
      covered: [{ until: log().manifests.at(-1)?.transactionTime, scope: { base: f.fx.server.baseUrl, level: 'system' }, at: expect.any(Number) }],
    });
    harness.source.close();
    expect(readdirSync(harness.dir)).toEqual([]);
  });
});

describe('_since after the export scope changed', () => {
  it("is left out when the watermark came from an export of another level or Group, and used again once it is this scope's", async () => {
    const first = f.source();
    const all = await first.read(window);
    const t1 = first.source.coveredUntil() as string;
    const store = first.store;
    const windowAfter = (watermark: string) => ({
      since: new Date(Date.parse(watermark) - 15 * 60_000).toISOString(),
      until: new Date().toISOString(),
      dedupeBefore: watermark,
    });
    // The watermark t1 covers the system level; the Group's events before it were never asked for as the Group's.
    const group = f.source({ store, settings: { level: 'group', groupId: 'sandbox-all' } });
    expect(await group.read(windowAfter(t1))).toHaveLength(all.length);
    expect(log().kickoffs.at(-1)).toMatchObject({ level: 'group', since: undefined });
    const reason = 'it came from an export of another scope (system level, now Group sandbox-all)';
    expect(group.events[0]).toEqual({ type: 'full-export', reason });
    expect(describeExportEvent({ type: 'full-export', reason })).toBe(`exporting everything, not only changes since the watermark: ${reason}`);
    const t2 = group.source.coveredUntil() as string;
    // The watermark did not move (a dry run, a failed push): t1 is still the system level's, so again everything.
    await f.source({ store, settings: { level: 'group', groupId: 'sandbox-all' } }).read(windowAfter(t1));
    expect(log().kickoffs.at(-1)?.since).toBeUndefined();
    // Once t2 is the watermark, it is the Group's own: changes since then only.
    const third = f.source({ store, settings: { level: 'group', groupId: 'sandbox-all' } });
    expect(await third.read(windowAfter(t2))).toEqual([]);
    expect(log().kickoffs.at(-1)).toMatchObject({ level: 'group', since: t2 });
    expect(eventTypes(third.events)).not.toContain('full-export');
  });

  it("is left out when a search of another FHIR server moved the watermark, kept when the search read this one, and an explicit --since is the operator's", async () => {
    const t0 = '2026-11-01T12:00:00.000Z';
    const after = { since: new Date(Date.parse(t0) - 15 * 60_000).toISOString(), until: new Date().toISOString(), dedupeBefore: t0 };
    const elsewhere = f.source({ watermarkSource: 'https://ehr-old.example.org/fhir' });
    await elsewhere.read(after);
    expect(log().kickoffs.at(-1)?.since).toBeUndefined();
    const reason = 'it was recorded reading another FHIR server (fhir.baseUrl changed since the search that moved it)';
    expect(elsewhere.events[0]).toEqual({ type: 'full-export', reason });
    const here = f.source({ watermarkSource: normaliseBase(f.fx.server.baseUrl) as string });
    await here.read(after);
    expect(log().kickoffs.at(-1)?.since).toBe(t0);
    expect(eventTypes(here.events)).not.toContain('full-export');
    // The operator says where to start: that, not the other server's watermark.
    await f.source({ watermarkSource: 'https://ehr-old.example.org/fhir' }).read({ ...after, since: '2026-11-01T06:00:00.000Z', explicitSince: true });
    expect(log().kickoffs.at(-1)?.since).toBe('2026-11-01T05:59:59.999Z');
  });

  it('goes back only as far as the delivery ledger remembers, when it forgot anything: older events pushed by the old scope stay out', async () => {
    const first = f.source();
    await first.read(window);
    const t1 = first.source.coveredUntil() as string;
    const forgottenBefore = new Date(Date.parse(t1) - 60_000).toISOString();
    const group = f.source({ store: first.store, settings: { level: 'group', groupId: 'sandbox-all' } });
    await group.read({ since: new Date(Date.parse(t1) - 15 * 60_000).toISOString(), until: new Date().toISOString(), dedupeBefore: t1, forgottenBefore });
    expect(log().kickoffs.at(-1)).toMatchObject({ level: 'group', since: forgottenBefore });
    const reason = 'it came from an export of another scope (system level, now Group sandbox-all)';
    expect(group.events[0]).toEqual({ type: 'full-export', reason, since: forgottenBefore });
    expect(describeExportEvent({ type: 'full-export', reason, since: forgottenBefore })).toBe(
      `exporting changes since ${forgottenBefore}, not only since the watermark: ${reason}; what changed before is left out, as the delivery ledger no longer knows which of it Purview has`,
    );
  });
});

describe('_since', () => {
  it("is the previous watermark exactly (the last export's transactionTime), none on a first run, a backfill's own start", () => {
    const overlap = 15 * 60_000;
    expect(exportSince({ since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z' }, overlap)).toBeUndefined();
    // A first run given its start (--since) exports from there, not everything.
    expect(exportSince({ since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z', explicitSince: true }, overlap)).toBe('2026-10-31T23:59:59.999Z');
    expect(exportSince({ since: '2026-11-01T23:45:00.000Z', until: '2026-11-03T00:00:00Z', dedupeBefore: '2026-11-02T00:00:00.000Z' }, overlap)).toBe(
      '2026-11-02T00:00:00.000Z',
    );
    expect(exportSince({ since: '2026-10-01T00:00:00.000Z', until: '2026-11-03T00:00:00Z', dedupeBefore: '2026-11-02T00:00:00.000Z' }, overlap)).toBe(
      '2026-09-30T23:59:59.999Z',
    );
  });

  it("asks the second export for what changed since the first one's transactionTime, and covers up to its own", async () => {
    const first = f.source();
    await first.read(window);
    const covered = first.source.coveredUntil() as string;
    expect(covered).toBe(log().manifests.at(-1)?.transactionTime);
    const late: AuditEvent = {
      ...structuredClone(f.data.events[0] as AuditEvent),
      id: 'late-1',
      meta: { versionId: '1', lastUpdated: new Date(Date.parse(covered) + 1).toISOString() },
    };
    await f.fx.backend.load([late]);
    const second = f.source();
    const events = await second.read({
      since: new Date(Date.parse(covered) - 15 * 60_000).toISOString(),
      until: new Date().toISOString(),
      dedupeBefore: covered,
    });
    expect(log().kickoffs.at(-1)?.since).toBe(covered);
    expect(events.map((e) => e.id)).toEqual(['late-1']);
    expect(Date.parse(second.source.coveredUntil() as string)).toBeGreaterThan(Date.parse(covered));
  });
});
