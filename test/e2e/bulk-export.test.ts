/**
 * The bulk-export source end to end: the sandbox's strict `$export`, the pipeline, the Purview emulator. A full export
 * then an incremental one (`_since` = the first's transactionTime) deliver every row exactly once; `bridge sync`
 * processes killed with SIGKILL while polling and while downloading are resumed by the next run from the checkpoint,
 * without a second export, and still every row arrives once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditEvent } from 'fhir/r4.js';
import { afterEach, expect, it } from 'vitest';
import { formatSummary } from '../../src/cli/reporters/summary.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { destinationOf, findConnector } from '../../src/composition/index.js';
import type { BridgeError } from '../../src/errors.js';
import { loadCheckpoint } from '../../src/fhir/bulk/checkpoint.js';
import { normaliseBase } from '../../src/reference-keys.js';
import { createMetrics } from '../../src/server/metrics.js';
import { brief } from '../../src/server/status.js';
import type { RunRecord } from '../../src/sync/state/index.js';
import { type BridgeProcess, spawnBridge } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { holdUntilReleased, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const BULK = { 'connectors.0.source': { type: 'bulk-export', pollMinSeconds: 1 } };
let h: SandboxHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function harness(seed: number, clock?: Clock): Promise<SandboxHarness> {
  h = await startHarness({ data: { seed, events: 400, patients: 50, practitioners: 8 }, flags: BULK, ...(clock ? { clock } : {}) });
  return h;
}

function accepted(x: SandboxHarness): string[] {
  return x.sandbox.ingest.accepted(x.sandbox.ids.jobId).flatMap((block) => block.rows);
}

function expectEveryRowOnce(x: SandboxHarness, events: Iterable<AuditEvent>): void {
  const flagged = x.withStore((store) => flaggedEvents(store, x.config));
  const { duplicates } = expectExactlyOnceOrFlagged(accepted(x), expectedRows(x.config, x.sandbox.dataset, events), flagged);
  expect(duplicates).toBe(0);
}

/** `bridge sync` as a real process, the connector switched to the bulk-export source through the environment. */
function bridgeSync(x: SandboxHarness, blockRows?: number): BridgeProcess {
  return spawnBridge(['sync', '--config', x.sandbox.configPath, '--no-progress'], {
    BRIDGE__connectors__0__source__type: 'bulk-export',
    BRIDGE__connectors__0__source__pollMinSeconds: '1',
    ...(blockRows === undefined ? {} : { BRIDGE__connectors__0__purview__blockRows: String(blockRows) }),
  });
}

async function waitFor(condition: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function checkpoint(x: SandboxHarness): { statusUrl: string; files: Record<string, unknown> } | undefined {
  const text = x.withStore((store) => store.getSourceState('sandbox', 'bulk-export'));
  return text === undefined ? undefined : JSON.parse(text);
}

/** The files the state records complete (in parts beside the checkpoint), as the next run reads them. */
function completeFiles(x: SandboxHarness): string[] {
  return x.withStore((store) => {
    const checkpoints = {
      get: () => store.getSourceState('sandbox', 'bulk-export'),
      set: () => {},
      getPart: (name: string) => store.getSourceState('sandbox', `bulk-export:${name}`),
      setPart: () => {},
    };
    return Object.keys(loadCheckpoint(checkpoints)?.files ?? {});
  });
}

it('delivers a full export, then an incremental one from the first transactionTime, every row exactly once', async () => {
  const x = await harness(71);
  const bulk = x.sandbox.fhir.bulk;
  bulk.settings.resourcesPerFile = 100;
  const first = await x.sync({ since: undefined, until: undefined });
  const t1 = bulk.log.manifests.at(-1)?.transactionTime as string;
  expect(first.until).toBe(t1);
  expect(x.withStore((store) => store.getWatermark('sandbox'))).toBe(t1);
  expect(bulk.log.kickoffs[0]?.since).toBeUndefined();
  expect(bulk.log.deletes).toEqual([bulk.log.kickoffs[0]?.jobId]);
  expect(first.counts.rowsAcked).toBe(first.counts.rows);

  // Two events written after the first export: the next one must bring them, and nothing else again.
  const template = [...x.sandbox.dataset.events()].filter(
    (e) => e.outcome === '0' && (e.entity ?? []).some((en) => en.what?.reference?.startsWith('Patient/')),
  );
  const late = template
    .slice(0, 2)
    .map(
      (e, i): AuditEvent => ({ ...structuredClone(e), id: `late-${i}`, meta: { versionId: '1', lastUpdated: new Date(Date.parse(t1) + 1 + i).toISOString() } }),
    );
  await x.sandbox.store?.load(late);
  const second = await x.sync({ since: undefined, until: undefined });
  expect(bulk.log.kickoffs[1]?.since).toBe(t1);
  expect(second.counts.events).toBe(2);
  expect(second.until).toBe(bulk.log.manifests.at(-1)?.transactionTime);
  expect(bulk.log.deletes).toHaveLength(2);
  expectEveryRowOnce(x, [...x.sandbox.dataset.events(), ...late]);
  // No export in flight: only the finished exports' scopes stay (the watermark's scope, for the next `_since`).
  expect(checkpoint(x)?.statusUrl).toBeUndefined();
  expect(checkpoint(x)?.files).toBeUndefined();
  const db = new Database(join(x.config.stateDir, 'bridge.sqlite'), { readonly: true });
  const names = db.prepare('SELECT name FROM source_state').all() as Array<{ name: string }>;
  db.close();
  // …and which server the watermark is a point in (watermark-source.ts).
  expect(names.map((row) => row.name)).toEqual(['bulk-export', 'watermark-source']);
});

it('refuses an end to the window (--until): an export covers up to its own transactionTime; nothing is kicked off', async () => {
  const x = await harness(75);
  const bulk = x.sandbox.fhir.bulk;
  const error = await x.sync({ since: undefined, until: '2026-11-01T12:00:00Z' }).catch((e: unknown) => e);
  expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
  expect((error as BridgeError).message).toContain('Run it without --until (until); --since is the export');
  expect(bulk.log.kickoffs).toEqual([]);
  expect(x.withStore((store) => store.getWatermark('sandbox'))).toBeUndefined();
  // Refused as a bad window, before any run: the HTTP trigger answers 400, and the connector is not shown failing.
  expect(x.withStore((store) => store.listRuns({ connector: 'sandbox' }))).toEqual([]);
});

/**
 * A full export pushed; then, a month of runs later, the last of them pruned the ledger 31 days before the watermark:
 * the blocks of that push are that old, and the claims of the events recorded before then are forgotten.
 */
async function exportedThenForgotten(x: SandboxHarness): Promise<{ t1: string; forgotten: number }> {
  await x.sync({ since: undefined, until: undefined });
  const t1 = x.sandbox.fhir.bulk.log.manifests.at(-1)?.transactionTime as string;
  const db = new Database(join(x.config.stateDir, 'bridge.sqlite'));
  db.prepare('UPDATE delivery_blocks SET created_ms = created_ms - ?').run(40 * 86_400_000);
  db.close();
  const target = { destination: destinationOf(findConnector(x.config, 'sandbox')), source: 'sandbox' };
  const forgotten = Date.parse(t1) - 31 * 86_400_000;
  x.withStore((store) => store.pruneDeliveries(target, forgotten));
  expect(x.withStore((store) => store.prunedBefore(target))).toBe(forgotten);
  return { t1, forgotten };
}

it('after the ledger forgot old acknowledgements, a changed export level exports back to what it remembers: nothing twice', async () => {
  const x = await harness(73);
  const bulk = x.sandbox.fhir.bulk;
  const { t1, forgotten } = await exportedThenForgotten(x);
  const oldEvents = [...x.sandbox.dataset.events()];
  expect(oldEvents.every((e) => Date.parse(e.meta?.lastUpdated ?? '') < forgotten)).toBe(true);

  // One event changed since: the Patient-level export must bring it, and none of the old ones again.
  const template = oldEvents.find((e) => e.outcome === '0' && (e.entity ?? []).some((en) => en.what?.reference?.startsWith('Patient/')));
  const late: AuditEvent = {
    ...structuredClone(template as AuditEvent),
    id: 'late-0',
    meta: { versionId: '1', lastUpdated: new Date(Date.parse(t1) + 1).toISOString() },
  };
  await x.sandbox.store?.load([late]);
  const second = await x.sync({
    since: undefined,
    until: undefined,
    flags: { 'connectors.0.source': { type: 'bulk-export', pollMinSeconds: 1, level: 'patient' } },
  });
  expect(bulk.log.kickoffs.at(-1)).toMatchObject({ level: 'patient', since: new Date(forgotten).toISOString() });
  expect(second.counts.events).toBe(1);
  expectEveryRowOnce(x, [...oldEvents, late]);
});

it('sends old events an export brings again after the ledger forgot them flagged, through kill -9, another block size and faults on both sides', async () => {
  const x = await harness(74);
  const bulk = x.sandbox.fhir.bulk;
  const { t1, forgotten } = await exportedThenForgotten(x);
  const oldEvents = [...x.sandbox.dataset.events()];
  // The server re-stamps two old events (a migration touches meta.lastUpdated, not the version): the next export
  // brings them again, and the ledger no longer knows Purview has them. One event is new.
  const rowOf = (e: AuditEvent) => e.outcome === '0' && (e.entity ?? []).some((en) => en.what?.reference?.startsWith('Patient/'));
  const restamped = oldEvents
    .filter(rowOf)
    .slice(0, 2)
    .map((e, i): AuditEvent => ({ ...structuredClone(e), meta: { ...e.meta, lastUpdated: new Date(Date.parse(t1) + 1 + i).toISOString() } }));
  expect(restamped.every((e) => Date.parse(e.recorded) < forgotten - 86_400_000)).toBe(true);
  const late: AuditEvent = {
    ...structuredClone(oldEvents.filter(rowOf)[5] as AuditEvent),
    id: 'late-0',
    recorded: t1,
    meta: { versionId: '1', lastUpdated: new Date(Date.parse(t1) + 10).toISOString() },
  };
  await x.sandbox.store?.load([...restamped, late]);

  // A first `bridge sync` is killed with SIGKILL while it polls the export.
  bulk.settings.processingPolls = 1_000_000;
  const pollsBefore = bulk.log.polls.length;
  const child = bridgeSync(x);
  await waitFor(() => bulk.log.polls.length >= pollsBefore + 2);
  expect(bulk.log.kickoffs).toHaveLength(2);
  child.kill('SIGKILL');
  expect((await child.done).signal).toBe('SIGKILL');
  // A second process, one row per block now, resumes it through a transient 5xx of the status URL and Purview's 429.
  bulk.settings.processingPolls = 0;
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/status\//, times: 1 });
  x.sandbox.ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '1' });
  const requestsBefore = x.sandbox.ingest.requests;
  const blocksBefore = x.sandbox.ingest.accepted(x.sandbox.ids.jobId).length;
  const rerun = await bridgeSync(x, 1).done;
  expect(rerun.code, rerun.stderr).toBe(0);
  expect(bulk.log.kickoffs).toHaveLength(2);
  expect(x.sandbox.fhir.faults.pending).toBe(0);
  // Every block once more the 429'd one: not a block sent twice on the way.
  const blocksNow = x.sandbox.ingest.accepted(x.sandbox.ids.jobId).length - blocksBefore;
  expect(blocksNow).toBe(restamped.length + 1);
  expect(x.sandbox.ingest.requests - requestsBefore).toBe(blocksNow + 1);

  // Each re-stamped event's rows arrived twice, each time its block said so; the new event's, once and unflagged.
  const flagged = x.withStore((store) => flaggedEvents(store, x.config));
  expect([...flagged].sort()).toEqual(restamped.map((e) => `${e.id}|${e.meta?.versionId ?? ''}`).sort());
  const rowsOfRestamped = expectedRows(x.config, x.sandbox.dataset, restamped).lines.length;
  const { duplicates } = expectExactlyOnceOrFlagged(accepted(x), expectedRows(x.config, x.sandbox.dataset, [...oldEvents, late]), flagged);
  expect(duplicates).toBe(rowsOfRestamped);
  expect(rerun.stdout).toContain(`possibly duplicated: ${rowsOfRestamped} row(s) Purview may already hold`);
});

it('runs closer together than the settle delay are no empty window: an export ends at its transactionTime (kill -9, a second process, faults)', async () => {
  const x = await harness(76);
  const bulk = x.sandbox.fhir.bulk;
  await x.sync({ since: undefined, until: undefined });
  const t1 = bulk.log.manifests.at(-1)?.transactionTime as string;
  const template = [...x.sandbox.dataset.events()].find((e) => e.outcome === '0' && (e.entity ?? []).some((en) => en.what?.reference?.startsWith('Patient/')));
  const late: AuditEvent = {
    ...structuredClone(template as AuditEvent),
    id: 'late-0',
    recorded: t1,
    meta: { versionId: '1', lastUpdated: new Date(Date.parse(t1) + 1).toISOString() },
  };
  await x.sandbox.store?.load([late]);
  // No overlap (an export's _since is the last transactionTime) and a 5-minute settle delay: the watermark is later
  // than now minus the settle delay. The first process is killed with SIGKILL while it polls.
  const sync = (settleMinutes: number) =>
    spawnBridge(['sync', '--config', x.sandbox.configPath, '--no-progress'], {
      BRIDGE__connectors__0__source__type: 'bulk-export',
      BRIDGE__connectors__0__source__pollMinSeconds: '1',
      BRIDGE__connectors__0__fhir__overlapMinutes: '0',
      BRIDGE__connectors__0__fhir__settleMinutes: String(settleMinutes),
    });
  bulk.settings.processingPolls = 1_000_000;
  const pollsBefore = bulk.log.polls.length;
  const child = sync(5);
  await waitFor(() => bulk.log.polls.length >= pollsBefore + 2);
  expect(bulk.log.kickoffs.map((k) => k.since)).toEqual([undefined, t1]);
  child.kill('SIGKILL');
  expect((await child.done).signal).toBe('SIGKILL');
  // A second process with a longer settle delay resumes the same export through a transient 5xx and Purview's 429.
  bulk.settings.processingPolls = 0;
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/status\//, times: 1 });
  x.sandbox.ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '1' });
  const rerun = await sync(30).done;
  expect(rerun.code, rerun.stderr).toBe(0);
  expect(bulk.log.kickoffs).toHaveLength(2);
  expect(x.sandbox.fhir.faults.pending).toBe(0);
  expect(x.withStore((store) => store.getWatermark('sandbox'))).toBe(bulk.log.manifests.at(-1)?.transactionTime);
  expectEveryRowOnce(x, [...x.sandbox.dataset.events(), late]);
});

it("loses nothing when the FHIR server's clock goes back after an export: asked again from where its clock now puts it (kill -9, a second process, faults)", async () => {
  // The sandbox's servers run three minutes ahead (inside Epic's token rules); the bridge's processes keep real time.
  let ahead = 3 * 60_000;
  const x = await harness(77, { now: () => Date.now() + ahead, sleep: (ms, signal) => systemClock.sleep(ms, signal) });
  const bulk = x.sandbox.fhir.bulk;
  const first = await bridgeSync(x).done;
  expect(first.code, first.stderr).toBe(0);
  const t1 = bulk.log.manifests.at(-1)?.transactionTime as string;
  // NTP steps the servers back; the EHR then records an access with the right time, before the watermark t1.
  ahead = 0;
  const template = [...x.sandbox.dataset.events()].find((e) => e.outcome === '0' && (e.entity ?? []).some((en) => en.what?.reference?.startsWith('Patient/')));
  const stamped = new Date().toISOString();
  const late: AuditEvent = { ...structuredClone(template as AuditEvent), id: 'late-0', recorded: stamped, meta: { versionId: '1', lastUpdated: stamped } };
  expect(Date.parse(stamped)).toBeLessThan(Date.parse(t1));
  await x.sandbox.store?.load([late]);
  // The next sync is killed with SIGKILL while it polls its export (asked from t1); a second process with another block
  // size finishes it through a transient 5xx and Purview's 429: it ends before t1, and nothing new came.
  bulk.settings.processingPolls = 1_000_000;
  const pollsBefore = bulk.log.polls.length;
  const killed = bridgeSync(x);
  await waitFor(() => bulk.log.polls.length >= pollsBefore + 2);
  killed.kill('SIGKILL');
  expect((await killed.done).signal).toBe('SIGKILL');
  bulk.settings.processingPolls = 0;
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/status\//, times: 1 });
  x.sandbox.ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '1' });
  const second = await bridgeSync(x, 7).done;
  expect(second.code, second.stderr).toBe(0);
  expect(bulk.log.kickoffs.map((k) => k.since)).toEqual([undefined, t1]);
  expect(Date.parse(bulk.log.manifests.at(-1)?.transactionTime as string)).toBeLessThan(Date.parse(t1));
  // The run after asks from where the servers' clock now puts the first export (less the overlap): the access arrives.
  const third = await bridgeSync(x).done;
  expect(third.code, third.stderr).toBe(0);
  expect(Date.parse(bulk.log.kickoffs.at(-1)?.since as string)).toBeLessThan(Date.parse(stamped));
  expect(x.sandbox.fhir.faults.pending).toBe(0);
  expectEveryRowOnce(x, [...x.sandbox.dataset.events(), late]);
});

it('resumes polling the same export after `bridge sync` was killed with SIGKILL while polling', async () => {
  const x = await harness(72);
  const bulk = x.sandbox.fhir.bulk;
  bulk.settings.processingPolls = 1_000_000;
  const child = bridgeSync(x);
  await waitFor(() => bulk.log.polls.length >= 2);
  child.kill('SIGKILL');
  expect((await child.done).signal).toBe('SIGKILL');
  expect(checkpoint(x)?.statusUrl).toMatch(/\/bulk\/status\//);
  expect(accepted(x)).toEqual([]);

  bulk.settings.processingPolls = 0;
  const rerun = await bridgeSync(x).done;
  expect(rerun.code, rerun.stderr).toBe(0);
  expect(bulk.log.kickoffs).toHaveLength(1);
  expect(bulk.log.deletes).toEqual([bulk.log.kickoffs[0]?.jobId]);
  expectEveryRowOnce(x, x.sandbox.dataset.events());
});

it('downloads only the missing files after `bridge sync` was killed with SIGKILL while downloading', async () => {
  const x = await harness(73);
  const bulk = x.sandbox.fhir.bulk;
  Object.assign(bulk.settings, { resourcesPerFile: 40, fileDelayMs: 250 });
  const child = bridgeSync(x);
  await waitFor(() => completeFiles(x).length >= 4);
  child.kill('SIGKILL');
  expect((await child.done).signal).toBe('SIGKILL');
  const complete = completeFiles(x);
  const downloadsBefore = bulk.log.downloads.length;

  bulk.settings.fileDelayMs = 0;
  const rerun = await bridgeSync(x).done;
  expect(rerun.code, rerun.stderr).toBe(0);
  expect(bulk.log.kickoffs).toHaveLength(1);
  const again = bulk.log.downloads.slice(downloadsBefore).map((d) => d.file);
  expect(again.filter((file) => complete.includes(file))).toEqual([]);
  // 10 AuditEvent files of 40, two of Patients (50), one of Practitioners: each complete once, lookups first.
  expect([...again, ...complete].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 13 }, (_, i) => String(i)));
  expect(complete).toEqual(expect.arrayContaining(['10', '11', '12']));
  expectEveryRowOnce(x, x.sandbox.dataset.events());
});

it('resumes the downloads after kill -9 with another block size, past a second process and faults on both sides: no file twice, every row once', async () => {
  const x = await harness(75);
  const bulk = x.sandbox.fhir.bulk;
  Object.assign(bulk.settings, { resourcesPerFile: 40, fileDelayMs: 250 });
  const child = bridgeSync(x);
  await waitFor(() => completeFiles(x).length >= 3);
  child.kill('SIGKILL');
  expect((await child.done).signal).toBe('SIGKILL');
  // Each completed file is recorded in its part beside the checkpoint, which itself lists none.
  const complete = completeFiles(x);
  expect(checkpoint(x)?.files).toEqual({});
  const downloadsBefore = bulk.log.downloads.length;

  // The rerun sends 7-row blocks; the EHR fails a file download once and Purview answers a block with a 503 after
  // taking it, then is slow, so the rerun still holds the connector when a second process starts.
  bulk.settings.fileDelayMs = 0;
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/file\// });
  const requests = x.sandbox.ingest.requests;
  const hold = holdUntilReleased();
  x.sandbox.ingest.injectFaults({ kind: 'accept-then-status', status: 503 }, hold.fault);
  const rerun = bridgeSync(x, 7);
  await waitFor(() => x.sandbox.ingest.requests > requests);
  const second = await bridgeSync(x, 50).done;
  hold.release();
  expect(second.code, second.stderr).toBe(6);
  const done = await rerun.done;
  expect(done.code, done.stderr).toBe(0);

  expect(bulk.log.kickoffs).toHaveLength(1);
  const again = bulk.log.downloads.slice(downloadsBefore).map((d) => d.file);
  expect(again.filter((file) => complete.includes(file))).toEqual([]);
  expect(completeFiles(x)).toEqual([]);
  // Only the block Purview took before its 503 went out twice, and its events are flagged possibly duplicated.
  const flagged = x.withStore((store) => flaggedEvents(store, x.config));
  expect(flagged.size).toBeGreaterThan(0);
  expect(flagged.size).toBeLessThanOrEqual(7);
  const expected = expectedRows(x.config, x.sandbox.dataset, x.sandbox.dataset.events());
  expect(expectExactlyOnceOrFlagged(accepted(x), expected, flagged).duplicates).toBeLessThanOrEqual(7);
});

it("a file that ended early (fewer events than the manifest's count) fails the run without moving the watermark; a rerun with another block size, through faults on both sides, delivers every row once", async () => {
  h = await startHarness({ data: { seed: 76, events: 150, patients: 30, practitioners: 6 }, flags: BULK });
  const x = h;
  const bulk = x.sandbox.fhir.bulk;
  // Plain and framed by the connection's close: the body ends at a line end and only the manifest's count tells.
  Object.assign(bulk.settings, { resourcesPerFile: 100, gzip: false, shortFile: { type: 'AuditEvent', lines: 30 } });
  const first = await bridgeSync(x).done;
  expect(first.code, first.stderr).not.toBe(0);
  expect(first.stderr).toContain('held 30 resources where the manifest says 100: it ended early');
  expect(x.withStore((store) => store.getWatermark('sandbox'))).toBeUndefined();
  expect(bulk.log.deletes).toEqual([bulk.log.kickoffs[0]?.jobId]);

  bulk.settings.shortFile = undefined;
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/file\// });
  x.sandbox.ingest.injectFaults({ kind: 'accept-then-status', status: 503 });
  const rerun = await bridgeSync(x, 7).done;
  expect(rerun.code, rerun.stderr).toBe(0);
  // Still a full export: the failed run recorded no transactionTime to export from.
  expect(bulk.log.kickoffs.map((k) => k.since)).toEqual([undefined, undefined]);
  expect(x.withStore((store) => store.getWatermark('sandbox'))).toBe(bulk.log.manifests.at(-1)?.transactionTime);
  // The watermark is a point in this server's events, as a search's is: a later switch to another server is seen.
  expect(x.withStore((store) => store.getSourceState('sandbox', 'watermark-source'))).toBe(normaliseBase(x.sandbox.fhir.baseUrl));
  const flagged = x.withStore((store) => flaggedEvents(store, x.config));
  expect(flagged.size).toBeLessThanOrEqual(7);
  const expected = expectedRows(x.config, x.sandbox.dataset, x.sandbox.dataset.events());
  expect(expectExactlyOnceOrFlagged(accepted(x), expected, flagged).duplicates).toBeLessThanOrEqual(7);
});

it('an export whose files answer 403 to the token is restarted with the same _since, or by the next run: rows Purview acknowledged are not sent again, none is lost', async () => {
  // The backfill below reaches back to the dataset's start, further than the default 31 days before the watermark.
  h = await startHarness({ data: { seed: 77, events: 400, patients: 50, practitioners: 8 }, flags: { ...BULK, 'state.ledgerRetentionDays': 3650 } });
  const x = h;
  const bulk = x.sandbox.fhir.bulk;
  bulk.settings.resourcesPerFile = 100;
  await x.sync({ since: undefined, until: undefined });
  const blocks = () => x.sandbox.ingest.accepted(x.sandbox.ids.jobId).length;
  const template = [...x.sandbox.dataset.events()].filter(
    (e) => e.outcome === '0' && (e.entity ?? []).some((en) => en.what?.reference?.startsWith('Patient/')),
  );
  const t1 = bulk.log.manifests.at(-1)?.transactionTime as string;
  const late = template
    .slice(0, 2)
    .map(
      (e, i): AuditEvent => ({ ...structuredClone(e), id: `late-${i}`, meta: { versionId: '1', lastUpdated: new Date(Date.parse(t1) + 1 + i).toISOString() } }),
    );
  await x.sandbox.store?.load(late);
  // A backfill from the start: its exports bring every event Purview already acknowledged again, and the two new ones.
  const backfill = { since: x.sandbox.dataset.options.start, until: undefined };

  // The export's files answer 403 to the token and to a new one: it is given up and restarted within the run, with the
  // same _since; what the new one brings again that Purview acknowledged is not sent again.
  bulk.settings.forbiddenJobs = 1;
  const restarted = await x.sync(backfill);
  const since = bulk.log.kickoffs[1]?.since;
  expect(since).toBeDefined();
  expect(bulk.log.kickoffs.slice(1).map((k) => k.since)).toEqual([since, since]);
  expect(bulk.log.deletes).toContain(bulk.log.kickoffs[1]?.jobId);
  const lateRows = expectedRows(x.config, x.sandbox.dataset, late).lines.length;
  expect(restarted.counts.rowsAcked).toBe(lateRows);
  expectEveryRowOnce(x, [...x.sandbox.dataset.events(), ...late]);
  const pushed = blocks();

  // The last AuditEvent file (read after three others) answers 403 to the token and to a new one: the run stops
  // without pushing what it read, and the export is given up; the next run's new export sends nothing twice.
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 403 }, match: /\/bulk\/file\/[^/]+\/3$/, times: 2 });
  const failed = (await x.sync(backfill).catch((e: unknown) => e)) as BridgeError;
  expect(failed.code).toBe('BRG_ERR_FHIR_EXPORT');
  expect(failed.message).toMatch(/^The export's files were refused \(AuditEvent file 4 of 7 .* after \d+ of its events were read/);
  expect(blocks()).toBe(pushed);
  expect(checkpoint(x)?.statusUrl).toBeUndefined();
  const rerun = await x.sync(backfill);
  expect(bulk.log.kickoffs.slice(1).map((k) => k.since)).toEqual([since, since, since, since]);
  expect(rerun.counts.rowsAcked).toBe(0);
  expect(blocks()).toBe(pushed);
  expectEveryRowOnce(x, [...x.sandbox.dataset.events(), ...late]);
  expect(x.withStore((store) => store.getSourceState('sandbox', 'bulk-export:refused-exports'))).toBeUndefined();
});

it('logs no PHI and no token while exporting, polling through faults and reporting error files', async () => {
  h = await startHarness({ data: { seed: 74, events: 200, patients: 30, practitioners: 6, canary: true }, flags: BULK });
  const x = h;
  const bulk = x.sandbox.fhir.bulk;
  Object.assign(bulk.settings, { processingPolls: 2, errorLines: 2, resourcesPerFile: 50 });
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/status\// });
  x.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '1' }, match: /\/bulk\/status\// });
  const notes: string[] = [];
  const detach = x.events.on('source_progress', (e) => notes.push(e.message));
  const metrics = createMetrics();
  const detachMetrics = metrics.observe(x.events, 'sandbox');
  const issuedBefore = x.sandbox.auth.stats.issued;
  const summary = await x.sync({ since: undefined, until: undefined });
  detach();
  detachMetrics();
  // One SMART token serves the export's requests and the FHIR searches for references the export lacks.
  expect(x.sandbox.auth.stats.issued - issuedBefore).toBe(1);
  // The operator sees the export's steps as the run's progress, and the run's event log keeps them.
  expect(notes[0]).toBe('export requested');
  expect(notes).toContain('export in progress: 33%');
  expect(notes.some((n) => /^export ready: \d+ file\(s\) as of /.test(n))).toBe(true);
  expect(notes).toContain('the server reported 2 error(s) for this export');
  // The watermark moves past what the server could not export: the run record says how many, for the operator.
  expect(summary.unexported).toBe(2);
  expect(x.withStore((s) => s.getRun(summary.runId)?.details?.unexported)).toBe(2);
  // What to do about them: later exports ask only for what changed, so a backfill from this run's start asks again.
  expect(formatSummary(summary)).toContain(
    '  not exported        2 resource(s) the FHIR server reported it could not export (its error files; see the log): not in Purview. ' +
      `Later exports ask only for what changed after this one: once the server can export them, \`bridge sync --connector sandbox --since ${summary.since}\` asks again for what changed from this run's start, ` +
      'an earlier --since for what changed before (rows the delivery ledger records as delivered are not sent again)',
  );
  // And metrics to alert on (a scheduled run's summary is read by nobody): the service's counter, and the last run's
  // gauge (the /v1/status run brief, which a one-shot sync's --metrics-file writes too).
  expect(await metrics.registry.metrics()).toContain('bridge_unexported_resources_total{connector="sandbox"} 2');
  expect(x.withStore((s) => brief(s.getRun(summary.runId) as RunRecord)).unexported).toBe(2);
  const runLog = readFileSync(join(x.config.stateDir, 'runs', `${summary.runId}.ndjson`), 'utf8');
  expect(runLog).toContain('"eventId":"source_progress"');
  for (const value of ['CANARY', 'Bearer']) expect(runLog.includes(value)).toBe(false);
  expect(JSON.stringify(x.sandbox.dataset.patientAt(0).name)).toContain('CANARY');
  expect(x.logLines.some((l) => l.includes('FHIR $export in progress'))).toBe(true);
  expect(x.logLines.some((l) => l.includes('the FHIR server reported errors for this export'))).toBe(true);
  const tokens = [...new Set(bulk.log.polls.map((poll) => poll.token).filter((t): t is string => t !== undefined))];
  expect(tokens.length).toBeGreaterThan(0);
  for (const line of x.logLines) {
    for (const value of ['CANARY', ...tokens]) expect(line.includes(value), `a log line contains a forbidden value (${value.slice(0, 6)}…)`).toBe(false);
  }
  expectEveryRowOnce(x, x.sandbox.dataset.events());
});
