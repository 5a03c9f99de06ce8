/**
 * runSync with a fake event source and resolver (events and resources made in the test) against the real SQLite state
 * and the Purview emulators: the order of the stages, the counts, what the state says after each run, and the
 * source's check coming before anything is written.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditEvent, FhirResource, Patient, Practitioner } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { BridgeError } from '../../src/errors.js';
import type { ReferenceResolver } from '../../src/fhir/index.js';
import { uuidSource } from '../../src/ids.js';
import { silentLogger } from '../../src/log.js';
import { builtinMappingPath, loadMapping } from '../../src/mapping/index.js';
import { destinationKey } from '../../src/purview/index.js';
import { referenceKey } from '../../src/reference-keys.js';
import {
  connectorLeaseName,
  type EventSource,
  openStateStore,
  runSync,
  type StateStore,
  type SyncDeps,
  SyncEvents,
  type SyncRequest,
  type SyncSummary,
} from '../../src/sync/index.js';
import { hasResumablePush } from '../../src/sync/pipeline.js';
import type { LeaseHolder, RunRecord } from '../../src/sync/state/index.js';
import { type Emulators, startEmulators } from '../purview/support.js';
import { linesLogger } from '../support/log-lines.js';
import { ManualClock } from '../support/manual-clock.js';

let emu: Emulators;
let app: ReturnType<Emulators['newApp']>;
const root = mkdtempSync(join(tmpdir(), 'bridge-pipeline-'));
beforeAll(async () => {
  emu = await startEmulators();
  app = emu.newApp();
});
afterAll(async () => {
  await emu?.close();
  rmSync(root, { recursive: true, force: true });
});

const patient: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  identifier: [{ type: { text: 'EPI' }, value: 'E100' }],
  name: [{ family: 'Doe', given: ['Jo'] }],
  address: [{ use: 'home', line: ['1 Main St'], city: 'Springfield', postalCode: '01101' }],
};
const practitioner: Practitioner = {
  resourceType: 'Practitioner',
  id: 'u1',
  name: [{ family: 'Smith', given: ['Al'] }],
  telecom: [{ system: 'email', use: 'work', value: 'asmith@example.org' }],
};

function event(id: string, recorded: string): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id,
    meta: { versionId: '1' },
    recorded,
    outcome: '0',
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
    action: 'R',
    agent: [{ requestor: true, who: { reference: 'Practitioner/u1' } }],
    source: { observer: { display: 'EHR' } },
    entity: [{ what: { reference: 'Patient/p1' } }],
  };
}

/** A source whose events and resources are plain arrays; it records what the pipeline asked of it, in order. */
function fakeSource(events: AuditEvent[], resources: FhirResource[], calls: string[], failCheck = false): EventSource {
  const byKey = new Map(resources.map((r) => [referenceKey(r.resourceType, r.id ?? ''), r]));
  const resolver: ReferenceResolver = {
    get: (key) => byKey.get(key),
    prefetch: async () => void calls.push('prefetch'),
    isHeld: () => false,
    stats: { hits: 0, misses: 0, missing: 0 },
  };
  return {
    resolver,
    check: async () => {
      calls.push('check');
      if (failCheck) throw new BridgeError('BRG_ERR_FHIR_CAPABILITY', 'no AuditEvent search here');
    },
    async *pages(window) {
      calls.push(`pages ${window.since}`);
      const inWindow = events.filter((e) => e.recorded >= window.since && e.recorded < window.until);
      for (let i = 0; i < inWindow.length; i += 2) yield inWindow.slice(i, i + 2);
    },
  };
}

function deps(stateDir: string, source: EventSource, store = openStateStore(stateDir, systemClock), job = app): SyncDeps {
  return {
    connector: 'main',
    store,
    clock: systemClock,
    logger: silentLogger(),
    newId: uuidSource,
    events: new SyncEvents(),
    stateDir,
    target: { destination: destinationKey({ ingestionBase: emu.ingest.baseUrl, jobId: job.jobId }), source: 'main' },
    retainFiles: false,
    rejectsRetentionMs: 86_400_000,
    ledgerRetentionMs: 30 * 86_400_000,
    lease: { ttlMs: 60_000, identity: { host: 'test', pid: 1, command: 'test' }, isStale: () => false, every: () => () => undefined },
    window: { overlapMs: 15 * 60_000, settleMs: 0, initialLookbackMs: 86_400_000 },
    prefetchEvents: 3,
    mapping: loadMapping(builtinMappingPath('epic')),
    source: () => source,
    purview: () => ({
      ingestionBase: emu.ingest.baseUrl,
      jobId: job.jobId,
      tokenSource: emu.tokenSource(job, systemClock),
      blockRows: 2,
      caPem: emu.tls.certPem,
    }),
  };
}

/**
 * A sync up to 2026-11-12T11:00 whose push cannot connect: nothing listens on port 1 (ECONNREFUSED, every attempt,
 * before a byte of the block went out), so Purview took none of it.
 */
async function refusedConnection(d: SyncDeps): Promise<string> {
  const unreachable = {
    ...d,
    purview: () => ({ ...d.purview(), ingestionBase: 'https://127.0.0.1:1', retry: { maxAttempts: 2, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }),
  };
  const failed = (await runSync(unreachable, { trigger: 'cli', until: '2026-11-12T11:00:00Z' }).catch((e: unknown) => e)) as BridgeError;
  expect(failed.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
  expect(failed.message).toContain("this block's rows are sent again (Purview took none of them this time");
  return failed.message;
}

describe('runSync with a fake source', () => {
  it('checks, pulls, maps, pushes and completes; the next run re-reads only the overlap and sends nothing twice', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const events = ['2026-11-01T10:00:00Z', '2026-11-01T10:10:00Z', '2026-11-01T10:20:00Z', '2026-11-01T10:55:00Z'].map((t, i) => event(`e${i}`, t));
    const calls: string[] = [];
    const d = deps(stateDir, fakeSource(events, [patient, practitioner], calls));
    const first = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    expect(calls.slice(0, 2)).toEqual(['check', 'pages 2026-11-01T09:00:00.000Z']);
    expect(first.counts).toMatchObject({ events: 4, rows: 4, rejects: 0, skipped: 0, blocks: 2, rowsAcked: 4 });
    expect(d.store.getWatermark('main')).toBe('2026-11-01T11:00:00.000Z');
    expect(emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toHaveLength(4);

    const second = await runSync(d, { trigger: 'cli', until: '2026-11-01T12:00:00Z' });
    expect(second.since).toBe('2026-11-01T10:45:00.000Z');
    expect(second.counts).toMatchObject({ events: 1, duplicates: 1, rows: 0, blocks: 0 });
    expect(emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toHaveLength(4);
    expect(d.store.listRuns({ connector: 'main' }).map((r) => r.state)).toEqual(['completed', 'completed']);
    d.store.close();
  });

  it('rejects an event of another JSON shape than FHIR gives it (malformed-event) and goes on; a group of nothing else stops the run', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const good = event('good', '2026-11-01T10:00:00Z');
    const nullAgent = { ...event('null-agent', '2026-11-01T10:05:00Z'), agent: [null] } as unknown as AuditEvent;
    const objectReference = { ...event('object-ref', '2026-11-01T10:10:00Z'), entity: [{ what: { reference: { id: 'p1' } } }] } as unknown as AuditEvent;
    const d = deps(stateDir, fakeSource([good, nullAgent, objectReference], [patient, practitioner], []));
    const run = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    expect(run.counts).toMatchObject({ events: 3, rows: 1, rejects: 2, rowsAcked: 1 });
    expect(run.rejectReasons).toEqual({ 'malformed-event': 2 });
    expect(d.store.getWatermark('main')).toBe('2026-11-01T11:00:00.000Z');
    d.store.close();

    // A fault of the bridge's own would reject every event alike: a group of 20 or more, all malformed, stops the run.
    const faultDir = mkdtempSync(join(root, 'state-'));
    const broken = Array.from(
      { length: 24 },
      (_, i) => ({ ...event(`b${i}`, `2026-11-01T10:${String(i).padStart(2, '0')}:00Z`), agent: [null] }) as unknown as AuditEvent,
    );
    const f = { ...deps(faultDir, fakeSource(broken, [patient, practitioner], [])), prefetchEvents: 24 };
    const error = (await runSync(f, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' }).catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_INTERNAL');
    expect(error.message).toMatch(/^All 24 events of a group failed to map \(TypeError at [\w.-]+\.ts:\d+\): that is a fault of the bridge/);
    expect(f.store.getWatermark('main')).toBeUndefined();
    f.store.close();
  });

  it("refuses a window asked over HTTP naming the body's fields, not the command line's flags", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const d = deps(stateDir, fakeSource([event('x', '2026-11-01T10:00:00Z')], [patient, practitioner], []));
    const messages = async (trigger: 'http' | 'cli', request: { since?: string; until?: string }): Promise<string> =>
      ((await runSync(d, { trigger, ...request }).catch((e: unknown) => e)) as BridgeError).message;
    const reversed = { since: '2026-11-02T00:00:00Z', until: '2026-11-01T00:00:00Z' };
    expect(await messages('http', reversed)).toContain('Check since/until or wait for the settle delay.');
    expect(await messages('cli', reversed)).toContain('Check --since/--until or wait for the settle delay.');
    const future = await messages('http', { until: '2999-01-01T00:00:00Z' });
    expect(future).toMatch(/^until 2999-01-01T00:00:00Z is later than now minus the settle delay .* Give an earlier until, or leave it out/);
    // Past the delivery ledger's horizon (a watermark a year on, 30 days kept).
    await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    const horizon = await messages('http', { since: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00Z' });
    expect(horizon).toMatch(/^since 2026-01-01T00:00:00.000Z reaches before /);
    for (const text of [future, horizon]) expect(text).not.toContain('--');
    d.store.close();
  });

  it('a failed source check ends the run before any file is written, and leaves the watermark alone', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const calls: string[] = [];
    const d = deps(stateDir, fakeSource([event('x', '2026-11-01T10:00:00Z')], [patient, practitioner], calls, true));
    const error = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_CAPABILITY');
    expect(calls).toEqual(['check']);
    expect(d.store.getWatermark('main')).toBeUndefined();
    expect(d.store.listRuns({ connector: 'main' })[0]).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_FHIR_CAPABILITY' } });
    expect(readdirSync(join(stateDir, 'spool'))).toEqual([]);
    expect(readdirSync(join(stateDir, 'rejects'))).toEqual([]);
    d.store.close();
  });

  it('a failure the locked state database cannot record still reaches the sinks (the status page, metrics); the next run closes the run', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const store = openStateStore(stateDir, systemClock);
    let locked = false;
    const busy = (): never => {
      throw new BridgeError('BRG_ERR_STATE', 'The state database is locked by another process (SQLITE_BUSY).');
    };
    const lockable: StateStore = Object.create(store, {
      getRun: { value: (id: string) => (locked ? busy() : store.getRun(id)) },
      updateRun: { value: (id: string, patch: Parameters<StateStore['updateRun']>[1]) => (locked ? busy() : store.updateRun(id, patch)) },
    });
    const lines: string[] = [];
    const d = { ...deps(stateDir, fakeSource([event('x', '2026-11-01T10:00:00Z')], [patient, practitioner], [], true), lockable), logger: linesLogger(lines) };
    const heard: string[] = [];
    d.events.on('error', (e) => heard.push(e.code));
    // The check fails, and the database is locked from then on (as when another process holds it).
    d.events.on('run_start', () => {
      locked = true;
    });
    const error = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_CAPABILITY');
    expect(heard).toEqual(['BRG_ERR_FHIR_CAPABILITY']);
    // The run's state could not be read, so nothing was written over it (one warning).
    expect(lines.filter((line) => line.includes("the run's failure could not be written to the state database"))).toHaveLength(1);
    locked = false;
    expect(store.listRuns({ connector: 'main' }).map((r) => r.state)).toEqual(['running']);
    // The next run closes it as failed (its window pulled again) and goes on.
    const next = await runSync(deps(stateDir, fakeSource([event('x', '2026-11-01T10:00:00Z')], [patient, practitioner], []), store), {
      trigger: 'cli',
      since: '2026-11-01T09:00:00Z',
      until: '2026-11-01T11:00:00Z',
    });
    expect(next.counts.rowsAcked).toBe(1);
    expect(store.listRuns({ connector: 'main' }).map((r) => r.state)).toEqual(['completed', 'failed']);
    store.close();
  });

  it('a push failure whose run cannot be read back (the state database failing a read) writes nothing over the run: it stays resumable', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const store = openStateStore(stateDir, systemClock);
    // Only the failure's own read of the run fails (writes still work), as a read can fail where a write then goes through.
    const flaky: StateStore = Object.create(store, {
      getRun: {
        value: (id: string) => {
          const stack = new Error().stack ?? '';
          // (The store's own read inside a write, existingRun, goes through.)
          if (stack.includes('recordFailure') && !stack.includes('existingRun'))
            throw new BridgeError('BRG_ERR_STATE', 'The state database is locked by another process (SQLITE_BUSY).');
          return store.getRun(id);
        },
      },
    });
    const d = deps(stateDir, fakeSource([event('p1', '2026-11-12T10:00:00Z')], [patient, practitioner], []), flaky, job);
    const heard: Array<{ code: string; resumable?: boolean }> = [];
    d.events.on('error', (e) => heard.push({ code: e.code, ...(e.resumable === undefined ? {} : { resumable: e.resumable }) }));
    const failing = { ...d, purview: () => ({ ...d.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    const window = { since: '2026-11-12T09:00:00Z', until: '2026-11-12T11:00:00Z' };
    await expect(runSync(failing, { trigger: 'cli', ...window })).rejects.toMatchObject({ code: 'BRG_ERR_PURVIEW_UNAVAILABLE' });
    expect(heard.map((e) => e.code)).toEqual(['BRG_ERR_PURVIEW_UNAVAILABLE']);
    const [left] = store.listRuns({ connector: 'main' });
    expect(left?.state).toBe('pushing');
    // The next run resumes the push (its spool kept), and the backfill's window is delivered once.
    const resumed = await runSync(deps(stateDir, fakeSource([event('p1', '2026-11-12T10:00:00Z')], [patient, practitioner], []), store, job), {
      trigger: 'resume',
    });
    expect(resumed.counts.rowsAcked).toBe(1);
    expect(emu.ingest.accepted(job.jobId).flatMap((blk) => blk.rows)).toHaveLength(1);
    store.close();
  });

  it("an untyped error that quotes its input (JSON.parse's) reaches neither the run record, the sinks nor the log with the quote", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const source = fakeSource([], [patient, practitioner], []);
    const broken: EventSource = {
      ...source,
      // biome-ignore lint/correctness/useYield: the page fails before it yields, as a corrupt body would.
      async *pages() {
        JSON.parse('Jane Doe, 1 Main St, MRN 0012345678');
      },
    };
    const lines: string[] = [];
    const d = { ...deps(stateDir, broken), logger: linesLogger(lines) };
    const heard: string[] = [];
    d.events.on('error', (e) => heard.push(e.message));
    const error = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_INTERNAL');
    const run = d.store.listRuns({ connector: 'main' })[0];
    expect(run).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_INTERNAL' } });
    expect(run?.error?.message).toContain('is not valid JSON');
    d.logger.error({ err: (error as BridgeError).cause }, 'sync failed');
    for (const text of [(error as Error).message, run?.error?.message ?? '', ...heard, ...lines]) {
      expect(text).not.toMatch(/Jane|Main St|0012345678/);
    }
    expect(lines.join('\n')).toContain('SyntaxError');
    d.store.close();
  });

  it('a watermark recorded reading another FHIR server refuses incremental runs until one run with --since says where to start', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = [event('a1', '2026-11-01T10:10:00Z'), event('a2', '2026-11-01T10:20:00Z')];
    const source = fakeSource(events, [patient, practitioner], []);
    const store = openStateStore(stateDir, systemClock);
    const reading = (base: string): SyncDeps => ({ ...deps(stateDir, source, store, job), watermarkSource: base });
    const first = await runSync(reading('https://ehr-a.example.org/fhir'), { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    expect(first.counts.rowsAcked).toBe(2);
    // fhir.baseUrl changed: the watermark is a point in the other server. An event stamped inside the last run's overlap
    // became readable after that run (what the overlap is for).
    const late = event('a3', '2026-11-01T10:50:00Z');
    const b: SyncDeps = {
      ...deps(stateDir, fakeSource([...events, late], [patient, practitioner], []), store, job),
      watermarkSource: 'https://ehr-b.example.org/fhir',
    };
    const refused = (await runSync(b, { trigger: 'cli', until: '2026-11-01T12:00:00Z' }).catch((e: unknown) => e)) as BridgeError;
    expect(refused.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(refused.message).toContain('recorded reading https://ehr-a.example.org/fhir; it now reads https://ehr-b.example.org/fhir');
    expect(refused.message).toContain('bridge sync --since 2026-11-01T10:45:00.000Z` once (the watermark less fhir.overlapMinutes)');
    expect(store.listRuns({ connector: 'main' })).toHaveLength(1);
    // One run with the --since it gives (the same server at another address: from where the next run would have read),
    // then incremental runs go on. The late event is read; what Purview has is not sent again.
    const backfill = await runSync(b, { trigger: 'cli', since: '2026-11-01T10:45:00.000Z', until: '2026-11-01T12:00:00Z' });
    expect(backfill.counts.rowsAcked).toBe(1);
    const next = await runSync(b, { trigger: 'cli', until: '2026-11-01T13:00:00Z' });
    expect(next.since).toBe('2026-11-01T11:45:00.000Z');
    // A connector whose watermark predates the record (an upgrade) goes on, and records its source.
    store.setSourceState('main', 'watermark-source', undefined);
    await runSync(reading('https://ehr-a.example.org/fhir'), { trigger: 'cli', until: '2026-11-01T14:00:00Z' });
    expect(store.getSourceState('main', 'watermark-source')).toBe('https://ehr-a.example.org/fhir');
    expect(emu.ingest.accepted(job.jobId).flatMap((blk) => blk.rows)).toHaveLength(3);
    store.close();
  });

  it('the --since run after an address change records its source whoever completes it: a push resumed by the next run (another process, a block size changed) too', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = [event('s1', '2026-11-01T10:10:00Z'), event('s2', '2026-11-01T11:20:00Z')];
    const reading = (base: string, store = openStateStore(stateDir, systemClock)): SyncDeps => ({
      ...deps(stateDir, fakeSource(events, [patient, practitioner], []), store, job),
      watermarkSource: base,
    });
    const onA = reading('https://ehr-a.example.org/fhir');
    await runSync(onA, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    onA.store.close();
    // fhir.baseUrl changed; the --since run that says where to start fails at Purview, its push left for the next run.
    const onB = reading('https://ehr-b.example.org/fhir');
    const failing = { ...onB, purview: () => ({ ...onB.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    await expect(runSync(failing, { trigger: 'cli', since: '2026-11-01T11:00:00.000Z', until: '2026-11-01T12:00:00Z' })).rejects.toBeInstanceOf(BridgeError);
    onB.store.close();
    // Another process (a service starting up, blocks of another size) finishes that push: the watermark is now a point
    // in B, and incremental runs go on from it.
    const other = reading('https://ehr-b.example.org/fhir');
    const resumed = await runSync({ ...other, purview: () => ({ ...other.purview(), blockRows: 1 }) }, { trigger: 'resume' });
    expect(resumed.counts).toMatchObject({ rowsAcked: 1 });
    expect(other.store.getWatermark('main')).toBe('2026-11-01T12:00:00.000Z');
    expect(other.store.getSourceState('main', 'watermark-source')).toBe('https://ehr-b.example.org/fhir');
    const next = await runSync(other, { trigger: 'cli', until: '2026-11-01T13:00:00Z' });
    expect(next.since).toBe('2026-11-01T11:45:00.000Z');
    expect(emu.ingest.accepted(job.jobId).flatMap((blk) => blk.rows)).toHaveLength(2);
    other.store.close();
  });

  it('a backfill on the new FHIR server that ends before the watermark records nothing: incremental runs stay refused, no event of the gap is skipped', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const store = openStateStore(stateDir, systemClock);
    const onA = {
      ...deps(stateDir, fakeSource([event('a1', '2026-11-01T10:10:00Z')], [patient, practitioner], []), store, job),
      watermarkSource: 'https://a/fhir',
    };
    const bEvents = [event('b-old', '2026-10-20T10:00:00Z'), event('b-gap', '2026-10-25T10:00:00Z'), event('b-new', '2026-11-01T11:30:00Z')];
    const onB = { ...deps(stateDir, fakeSource(bEvents, [patient, practitioner], []), store, job), watermarkSource: 'https://b/fhir' };
    await runSync(onA, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    // A first chunk of B's history, ending long before the watermark (still A's).
    const chunk = await runSync(onB, { trigger: 'cli', since: '2026-10-20T00:00:00Z', until: '2026-10-21T00:00:00Z' });
    expect(chunk.counts.rowsAcked).toBe(1);
    expect(store.getWatermark('main')).toBe('2026-11-01T11:00:00.000Z');
    expect(store.getSourceState('main', 'watermark-source')).toBe('https://a/fhir');
    const refused = (await runSync(onB, { trigger: 'cli', until: '2026-11-01T12:00:00Z' }).catch((e: unknown) => e)) as BridgeError;
    expect(refused.code).toBe('BRG_ERR_CONFIG_INVALID');
    // The rest of the history, through the watermark: now the watermark is a point in B, and nothing between was skipped.
    await runSync(onB, { trigger: 'cli', since: '2026-10-21T00:00:00Z', until: '2026-11-01T12:00:00Z' });
    expect(store.getSourceState('main', 'watermark-source')).toBe('https://b/fhir');
    expect(emu.ingest.accepted(job.jobId).flatMap((blk) => blk.rows)).toHaveLength(4);
    store.close();
  });

  it.each([
    ['while a block is in flight', 'block_sent'],
    ['between two blocks', 'block_acked'],
  ] as const)('a run whose lease another process took mid-push (%s) says so (exit 6), not "cancelled"; the run stays resumable', async (_when, on) => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = ['10:00', '10:10', '10:20', '10:30'].map((t, i) => event(`lost-${i}`, `2026-11-05T${t}:00Z`));
    const base = deps(stateDir, fakeSource(events, [patient, practitioner], []), openStateStore(stateDir, systemClock), job);
    let beat: (() => void) | undefined;
    const d: SyncDeps = {
      ...base,
      purview: () => ({ ...base.purview(), blockRows: 1 }),
      lease: {
        ...base.lease,
        every: (_ms, renew) => {
          beat = renew;
          return () => undefined;
        },
      },
    };
    const other = openStateStore(stateDir, systemClock);
    d.events.on(on, (block) => {
      if (block.index !== (on === 'block_sent' ? 1 : 0)) return;
      const holder: LeaseHolder = { id: 'other', host: 'elsewhere', pid: 2, command: 'bridge sync', since: '2026-11-05T11:00:00Z' };
      other.acquireLease(connectorLeaseName('main'), holder, 60_000, () => true);
      beat?.();
    });
    const error = (await runSync(d, { trigger: 'cli', until: '2026-11-05T11:00:00Z' }).catch((e: unknown) => e)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_RUN_IN_PROGRESS');
    expect(error.exitCode).toBe(6);
    expect(error.message).toContain('was taken over by another process');
    expect(d.store.listRuns({ connector: 'main' })[0]).toMatchObject({ state: 'pushing', error: { code: 'BRG_ERR_RUN_IN_PROGRESS' } });
    other.close();
    d.store.close();
  });

  it("a listener of the run's failure that throws (the run log on the full disk) hides neither the run's error nor its record", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const d = deps(stateDir, fakeSource([event('x', '2026-11-01T10:00:00Z')], [patient, practitioner], [], true));
    d.events.on('error', () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    const error = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_CAPABILITY');
    expect(d.store.listRuns({ connector: 'main' })[0]).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_FHIR_CAPABILITY' } });
    expect(readdirSync(join(stateDir, 'spool'))).toEqual([]);
    d.store.close();
  });

  // /dev/full answers every write with ENOSPC: the run's spool index on a full disk, without filling one.
  it.skipIf(!existsSync('/dev/full'))(
    'a spool the disk refuses fails the run with BRG_ERR_STATE naming the file; nothing pushed, the watermark unmoved, the next run delivers the window once',
    async () => {
      const stateDir = mkdtempSync(join(root, 'state-'));
      const job = emu.newApp();
      const d = deps(stateDir, fakeSource([event('full', '2026-11-01T10:00:00Z')], [patient, practitioner], []), undefined, job);
      let indexPath = '';
      const onRunId = (runId: string): void => {
        indexPath = join(stateDir, 'spool', `${runId}.idx`);
        symlinkSync('/dev/full', indexPath);
      };
      const error = await runSync(d, { trigger: 'cli', until: '2026-11-01T11:00:00Z', onRunId }).catch((e: unknown) => e);
      expect((error as BridgeError).code).toBe('BRG_ERR_STATE');
      expect((error as BridgeError).message).toContain(`Cannot write ${indexPath} (ENOSPC). Free space on its disk`);
      expect((error as BridgeError).message).toContain('nothing of this run was pushed, and the watermark did not move');
      expect(d.store.listRuns({ connector: 'main' })[0]).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_STATE' } });
      expect(d.store.getWatermark('main')).toBeUndefined();
      expect(emu.ingest.accepted(job.jobId)).toEqual([]);
      // The failed run's files (the link among them) are gone: the next run pulls the window again and sends it once.
      const next = await runSync(d, { trigger: 'cli', until: '2026-11-01T11:00:00Z' });
      expect(next.counts).toMatchObject({ rows: 1, rowsAcked: 1, possiblyDuplicated: 0 });
      expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(1);
      d.store.close();
    },
  );

  it("skips the bridge's own user's accesses (excludeUsers); the next run's overlap finds them handled after the setting is removed", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const background: Practitioner = {
      resourceType: 'Practitioner',
      id: 'bg',
      // Epic's EMP record id, padded as Epic sends its INTERNAL form.
      identifier: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780', type: { text: 'INTERNAL' }, value: '  BGUSER' }],
      name: [{ family: 'User', given: ['Background'] }],
      telecom: [{ system: 'email', use: 'work', value: 'bg@example.org' }],
    };
    const byBackground = { ...event('own-read', '2026-11-01T10:55:00Z'), agent: [{ requestor: true, who: { reference: 'Practitioner/bg' } }] };
    const events = [event('clinician', '2026-11-01T10:50:00Z'), byBackground];
    const source = fakeSource(events, [patient, practitioner, background], []);
    const excluding = {
      ...deps(stateDir, source, undefined, job),
      mapping: loadMapping(builtinMappingPath('epic'), { options: { excludeUsers: ['BGUSER'] } }),
    };
    const first = await runSync(excluding, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    expect(first.counts).toMatchObject({ events: 2, rows: 1, skipped: 1, rowsAcked: 1 });
    expect(first.skipReasons).toEqual({ 'excluded-user': 1 });
    excluding.store.close();
    // Without the setting the background user's event would make a row; the next run re-reads both in its overlap
    // (10:45–11:00) and finds both handled.
    const d = deps(stateDir, source, undefined, job);
    const next = await runSync(d, { trigger: 'cli', until: '2026-11-01T12:00:00Z' });
    expect(next.counts).toMatchObject({ events: 2, duplicates: 2, rows: 0 });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(1);
    d.store.close();
  });

  it('windows by _lastUpdated: a backlog event recorded months ago is remembered by the time it was found, never sent twice', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const updated = (e: AuditEvent, lastUpdated: string): AuditEvent => ({ ...e, meta: { versionId: '1', lastUpdated } });
    const { entity: _none, ...noPatient } = event('no-patient', '2026-09-02T10:00:00Z');
    const events = [
      updated(event('backlog', '2026-09-01T10:00:00Z'), '2026-11-01T10:50:00Z'), // loaded late, 61 days after it happened
      updated(event('fresh', '2026-11-01T10:52:00Z'), '2026-11-01T10:52:00Z'),
      updated(noPatient, '2026-11-01T10:55:00Z'), // loaded late too, and skipped: the next run must not count it again
    ];
    const byLastUpdated: EventSource = {
      ...fakeSource([], [patient, practitioner], []),
      async *pages(window) {
        yield events.filter((e) => (e.meta?.lastUpdated ?? '') >= window.since && (e.meta?.lastUpdated ?? '') < window.until);
      },
      windowTimeOf: (e) => Date.parse(e.meta?.lastUpdated ?? ''),
    };
    const d = deps(stateDir, byLastUpdated, undefined, job);
    const first = await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    expect(first.counts).toMatchObject({ events: 3, rows: 2, skipped: 1, rowsAcked: 2 });
    // The next run re-reads its overlap (10:45–11:00 by lastUpdated): all three were handled.
    const second = await runSync(d, { trigger: 'cli', until: '2026-11-01T12:00:00Z' });
    expect(second.counts).toMatchObject({ events: 3, duplicates: 3, rows: 0, skipped: 0 });
    // A backfill over the same hour, after the seen set has let go of it: the ledger still knows the backlog event
    // (its push is recent, even though it was recorded before the ledger's horizon).
    const third = await runSync(d, { trigger: 'cli', since: '2026-11-01T10:00:00Z', until: '2026-11-01T11:00:00Z' });
    expect(third.counts).toMatchObject({ events: 3, rows: 0, possiblyDuplicated: 0 });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(2);
    d.store.close();
  });

  it('a dry run leaves an unfinished push alone (nothing to Purview, watermark unmoved) and names it', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const d = deps(stateDir, fakeSource([event('a', '2026-11-10T10:00:00Z')], [patient, practitioner], []), undefined, job);
    const failing = { ...d, purview: () => ({ ...d.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    const failed = await runSync(failing, { trigger: 'cli', until: '2026-11-10T11:00:00Z' }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(BridgeError);
    const unfinished = d.store.findUnfinishedRun('main');
    expect(unfinished?.state).toBe('pushing');
    const dry = await runSync(d, { trigger: 'cli', until: '2026-11-10T11:30:00Z', dryRunOut: join(stateDir, 'dry.txt') });
    expect(dry.resumed).toBeUndefined();
    expect(dry.unfinishedRun).toBe(unfinished?.id);
    expect(emu.ingest.accepted(job.jobId)).toEqual([]);
    expect(d.store.getWatermark('main')).toBeUndefined();
    // The next real run finishes it.
    const real = await runSync(d, { trigger: 'cli', until: '2026-11-10T11:30:00Z' });
    expect(real.resumed?.runId).toBe(unfinished?.id);
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(1);
    d.store.close();
  });

  it('a block whose connection was refused before its body went out is sent again unflagged: Purview cannot hold it', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const d = deps(stateDir, fakeSource([event('refused-1', '2026-11-12T10:00:00Z')], [patient, practitioner], []), undefined, job);
    await refusedConnection(d);
    const resumed = (await runSync(d, { trigger: 'cli', until: '2026-11-12T11:30:00Z' })).resumed;
    expect(resumed?.counts).toMatchObject({ rowsAcked: 1, possiblyDuplicated: 0, rowsPossiblyDuplicated: 0 });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(1);
    d.store.close();
  });

  it('a refused block of an event the ledger forgot and a fresh one: the fresh one goes again unflagged, the forgotten one flagged', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    // A Bulk export's page: an old event the server re-stamped (recorded in September) beside a new one.
    const events = [event('restamped', '2026-09-15T10:00:00Z'), event('fresh', '2026-11-12T10:00:00Z')];
    const source: EventSource = {
      ...fakeSource([], [patient, practitioner], []),
      async *pages() {
        yield events;
      },
    };
    const d = deps(stateDir, source, undefined, job);
    // Months ago the ledger acknowledged an event of that day; a run with a 30-day retention then forgot it.
    const seed = { key: 'seed|1', recordedMs: Date.parse('2026-09-15T09:00:00Z'), rows: 1 };
    const queue = [seed];
    const block = d.store.openEventBlock(d.target, { peek: () => queue[0], take: () => queue.shift() }, 10, () => undefined);
    d.store.markAttempt(block?.id ?? -1);
    d.store.markAcked(block?.id ?? -1, 0);
    const db = new Database(join(stateDir, 'bridge.sqlite'));
    db.prepare('UPDATE delivery_blocks SET created_ms = created_ms - ?').run(90 * 86_400_000);
    db.close();
    d.store.pruneDeliveries(d.target, Date.parse('2026-10-01T00:00:00Z'));
    expect(d.store.prunedBefore(d.target)).toBe(Date.parse('2026-10-01T00:00:00Z'));
    expect(await refusedConnection(d)).toContain('; the 1 of them sent before without an answer stay flagged possibly duplicated).');
    const resumed = (await runSync(d, { trigger: 'cli', until: '2026-11-12T11:30:00Z' })).resumed;
    // The block is flagged for the forgotten event's row alone: Purview never got the fresh one.
    expect(resumed?.counts).toMatchObject({ rowsAcked: 2, possiblyDuplicated: 1, rowsPossiblyDuplicated: 1 });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(2);
    d.store.close();
  });

  it('a backfill stopped while it pulls says to start it again: the next run starts from the watermark, not from it', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = [event('b1', '2026-10-20T10:00:00Z'), event('b2', '2026-10-20T10:01:00Z'), event('b3', '2026-10-20T10:02:00Z')];
    const stop = new AbortController();
    const source = fakeSource(events, [patient, practitioner], []);
    // A graceful stop (SIGTERM, a redeploy) comes after the first page.
    const stopping: EventSource = {
      ...source,
      async *pages(window, signal, note) {
        for await (const page of source.pages(window, signal, note)) {
          yield page;
          stop.abort();
        }
      },
    };
    const d = deps(stateDir, stopping, undefined, job);
    const window = { since: '2026-10-20T00:00:00.000Z', until: '2026-10-21T00:00:00.000Z' };
    const errors: Array<{ code: string; resumable?: boolean }> = [];
    const detach = d.events.on('error', (e) => void errors.push({ code: e.code, ...(e.resumable === undefined ? {} : { resumable: e.resumable }) }));
    const stopped = (await runSync(d, { trigger: 'cli', ...window, stopSignal: stop.signal }).catch((e: unknown) => e)) as BridgeError;
    // Stopped while it pulled: failed, not resumable (the metrics count it failed).
    expect(errors).toEqual([{ code: 'BRG_ERR_ABORTED' }]);
    detach();
    const advice = `This backfill's window is not pulled again by the next run: start it again (--since ${window.since} --until ${window.until}); rows Purview acknowledged are not sent twice.`;
    expect(stopped.code).toBe('BRG_ERR_ABORTED');
    expect(stopped.message).toBe(`Stopped on request before its push: nothing of this backfill was pushed. ${advice}`);
    const [run] = d.store.listRuns({ connector: 'main' });
    expect(run).toMatchObject({ state: 'failed', backfill: true, error: { code: 'BRG_ERR_ABORTED', message: expect.stringContaining(advice) } });
    expect(emu.ingest.accepted(job.jobId)).toEqual([]);
    // Started again as it says, every row of the window arrives once.
    await runSync({ ...d, source: () => source }, { trigger: 'cli', ...window });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(3);
    d.store.close();
    // A Bulk export takes no --until (it covers up to its own transactionTime): the advice gives none.
    const again = new AbortController();
    const stoppingAgain: EventSource = {
      ...source,
      async *pages(w, signal, note) {
        for await (const page of source.pages(w, signal, note)) {
          yield page;
          again.abort();
        }
      },
    };
    const exportDeps = { ...deps(mkdtempSync(join(root, 'state-')), stoppingAgain, undefined, job), sourceEndsWindows: true };
    // Asked for over HTTP: the advice is the request's body, not flags.
    const stoppedExport = (await runSync(exportDeps, { trigger: 'http', since: window.since, stopSignal: again.signal })
      .then(() => undefined)
      .catch((e: unknown) => e)) as BridgeError | undefined;
    exportDeps.store.close();
    expect(stoppedExport?.message).toContain(
      `start it again (POST /v1/connectors/main/syncs with {"since":"${window.since}"}); rows Purview acknowledged are not sent twice.`,
    );
  });

  it("a 'resume' (a service starting up) finishes an unfinished push and pulls nothing; with none, it stops before any run", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const calls: string[] = [];
    const d = deps(stateDir, fakeSource([event('r1', '2026-11-12T10:00:00Z')], [patient, practitioner], calls), undefined, job);
    const nothing = (await runSync(d, { trigger: 'resume' }).catch((e: unknown) => e)) as BridgeError;
    expect([nothing.code, nothing.message]).toEqual(['BRG_ERR_ABORTED', 'Nothing to resume: connector "main" has no unfinished push.']);
    expect(calls).toEqual([]);
    expect(d.store.listRuns({ connector: 'main' })).toEqual([]);
    // A push that failed at Purview waits in 'pushing' (its error says so to the sinks: resumable); the resume finishes
    // it, and no window is pulled.
    const errors: Array<{ code: string; resumable?: boolean }> = [];
    const detach = d.events.on('error', (e) => void errors.push({ code: e.code, ...(e.resumable === undefined ? {} : { resumable: e.resumable }) }));
    const failing = { ...d, purview: () => ({ ...d.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    await expect(runSync(failing, { trigger: 'cli', until: '2026-11-12T11:00:00Z' })).rejects.toBeInstanceOf(BridgeError);
    expect(errors).toEqual([{ code: 'BRG_ERR_PURVIEW_UNAVAILABLE', resumable: true }]);
    detach();
    const pulls = calls.filter((call) => call.startsWith('pages')).length;
    const resumed = await runSync(d, { trigger: 'resume' });
    expect(resumed.counts).toMatchObject({ rowsAcked: 1 });
    expect(calls.filter((call) => call.startsWith('pages'))).toHaveLength(pulls);
    expect(d.store.listRuns({ connector: 'main' }).map((r) => [r.trigger, r.state])).toEqual([['cli', 'completed']]);
    d.store.close();
  });

  it('warns when events reach the EHR later than half the overlap after their time: a little later would never be read', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = [event('on-time', '2026-11-13T10:00:00Z')];
    const lines: string[] = [];
    const d = { ...deps(stateDir, fakeSource(events, [patient, practitioner], []), undefined, job), logger: linesLogger(lines, 'warn') };
    await runSync(d, { trigger: 'cli', since: '2026-11-13T09:00:00Z', until: '2026-11-13T11:00:00Z' });
    // Written after that run read up to 11:00: one four minutes late (within half the 15-minute overlap), then one ten.
    events.push(event('late-4', '2026-11-13T10:56:00Z'), event('next', '2026-11-13T11:10:00Z'));
    await runSync(d, { trigger: 'cli', until: '2026-11-13T11:30:00Z' });
    const warned = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => 'lateEvents' in line);
    expect(warned()).toEqual([]);
    events.push(event('late-10', '2026-11-13T11:20:00Z'));
    await runSync(d, { trigger: 'cli', until: '2026-11-13T12:00:00Z' });
    expect(warned()).toEqual([expect.objectContaining({ level: 40, lateEvents: 1, lateMinutes: 10, overlapMinutes: 15 })]);
    // Every event arrived once all the same (the overlap covered them).
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(4);
    d.store.close();
  });

  it('a dry run killed while it pulled hides no older unfinished backfill: the next real run closes it and finishes the backfill', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = [event('old', '2026-10-20T10:00:00Z'), event('new', '2026-11-01T10:30:00Z')];
    const d = deps(stateDir, fakeSource(events, [patient, practitioner], []), undefined, job);
    await runSync(d, { trigger: 'cli', since: '2026-11-01T09:00:00Z', until: '2026-11-01T11:00:00Z' });
    // A backfill whose push fails (a Purview outage): left 'pushing' with its spool.
    const failing = { ...d, purview: () => ({ ...d.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    await expect(runSync(failing, { trigger: 'cli', since: '2026-10-20T00:00:00Z', until: '2026-10-21T00:00:00Z' })).rejects.toBeInstanceOf(BridgeError);
    const backfill = d.store.findUnfinishedRun('main');
    expect(backfill).toMatchObject({ state: 'pushing', backfill: true });
    // Then a dry run killed with SIGKILL while it pulled: its record stays 'running', newer than the backfill's.
    const started = new Date(Date.parse(backfill?.startedAt ?? '') + 1000).toISOString();
    const { spoolPath: _spool, rejectsPath: _rejects, ...record } = backfill as RunRecord;
    d.store.createRun({ ...record, id: 'dry-killed', state: 'running', backfill: false, dryRun: true, startedAt: started });
    // A dry run now names the backfill the next real run finishes, past the killed one.
    const dry = await runSync(d, { trigger: 'cli', until: '2026-11-01T12:00:00Z', dryRunOut: join(stateDir, 'dry.txt') });
    expect(dry.unfinishedRun).toBe(backfill?.id);
    const heard: string[] = [];
    const next = await runSync(d, {
      trigger: 'cli',
      until: '2026-11-01T12:00:00Z',
      onRunId: (id, resumed) => heard.push(`${resumed ? 'resumed' : 'own'} ${id}`),
      onResumedComplete: (id) => heard.push(`complete ${id}`),
    });
    expect(next.resumed?.runId).toBe(backfill?.id);
    expect(heard).toEqual([`resumed ${backfill?.id}`, `complete ${backfill?.id}`, `own ${next.runId}`]);
    expect(d.store.getRun('dry-killed')).toMatchObject({
      state: 'failed',
      error: { message: 'A dry run interrupted before it finished; nothing of it was pushed.' },
    });
    expect(d.store.getRun(backfill?.id ?? '')?.state).toBe('completed');
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(2);
    d.store.close();
  });

  it("a service starting up sees an unfinished push behind a newer killed dry run, and its 'resume' finishes it", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const calls: string[] = [];
    const d = deps(stateDir, fakeSource([event('r2', '2026-11-14T10:00:00Z')], [patient, practitioner], calls), undefined, job);
    const failing = { ...d, purview: () => ({ ...d.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    await expect(runSync(failing, { trigger: 'cli', until: '2026-11-14T11:00:00Z' })).rejects.toBeInstanceOf(BridgeError);
    const pushing = d.store.findUnfinishedRun('main');
    expect(pushing?.state).toBe('pushing');
    expect(hasResumablePush(d.store, 'main')).toBe(true);
    // A dry run killed with SIGKILL while it pulled: its record stays 'running', newer than the push's.
    const { spoolPath: _spool, rejectsPath: _rejects, ...record } = pushing as RunRecord;
    const started = new Date(Date.parse(pushing?.startedAt ?? '') + 1000).toISOString();
    d.store.createRun({ ...record, id: 'dry-killed-2', state: 'running', dryRun: true, startedAt: started });
    expect(d.store.findUnfinishedRun('main')?.id).toBe('dry-killed-2');
    // bridge serve asks this at start-up: the push waits behind the dry run all the same.
    expect(hasResumablePush(d.store, 'main')).toBe(true);
    const pulls = calls.filter((call) => call.startsWith('pages')).length;
    const resumed = await runSync(d, { trigger: 'resume' });
    expect(resumed.runId).toBe(pushing?.id);
    expect(calls.filter((call) => call.startsWith('pages'))).toHaveLength(pulls);
    expect(d.store.getRun('dry-killed-2')?.state).toBe('failed');
    expect(hasResumablePush(d.store, 'main')).toBe(false);
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(1);
    d.store.close();
  });

  it('a dry run does not name an unfinished push whose spool is gone: the next real run cannot finish it, it pulls again', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const d = deps(stateDir, fakeSource([event('a', '2026-11-10T10:00:00Z')], [patient, practitioner], []), undefined, job);
    const failing = { ...d, purview: () => ({ ...d.purview(), retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 } }) };
    emu.ingest.injectFaults({ kind: 'status', status: 503 });
    await runSync(failing, { trigger: 'cli', until: '2026-11-10T11:00:00Z' }).catch(() => undefined);
    const unfinished = d.store.findUnfinishedRun('main');
    expect(unfinished?.spoolPath).toBeDefined();
    rmSync(unfinished?.spoolPath as string);
    const dry = await runSync(d, { trigger: 'cli', until: '2026-11-10T11:30:00Z', dryRunOut: join(stateDir, 'dry.txt') });
    expect(dry.unfinishedRun).toBeUndefined();
    const real = await runSync(d, { trigger: 'cli', until: '2026-11-10T11:30:00Z' });
    expect(real.resumed).toBeUndefined();
    d.store.close();
  });
});

describe('runSync across processes, kills and changed settings', () => {
  const DAY = 86_400_000;
  const otherHolder: LeaseHolder = { id: 'other', host: 'elsewhere', pid: 2, command: 'bridge sync', since: '2026-11-10T00:00:00Z' };

  it('refuses a window reaching before what an earlier run pruned, though the retention was raised again since', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const source = fakeSource([event('a', '2026-10-10T10:00:00Z'), event('b', '2026-10-29T18:00:00Z')], [patient, practitioner], []);
    const clock = new ManualClock('2026-10-11T12:00:00Z');
    // Each run is a process of its own, with the settings of its day: a new connection to the same state.
    const run = async (settings: { retentionDays: number; overlapMinutes?: number }, request: Partial<SyncRequest>): Promise<SyncSummary> => {
      const base = deps(stateDir, source, openStateStore(stateDir, clock), job);
      const d: SyncDeps = {
        ...base,
        clock,
        ledgerRetentionMs: settings.retentionDays * DAY,
        window: { ...base.window, overlapMs: (settings.overlapMinutes ?? 15) * 60_000 },
      };
      try {
        return await runSync(d, { trigger: 'cli', ...request });
      } finally {
        d.store.close();
      }
    };
    await run({ retentionDays: 31 }, { since: '2026-10-10T00:00:00Z', until: '2026-10-11T00:00:00Z' });
    await clock.advance(18.5 * DAY); // 2026-10-30T00:00Z
    await run({ retentionDays: 31 }, {});
    await clock.advance(1.5 * DAY); // 2026-10-31T12:00Z
    // One run with a 1-day retention prunes 'a' and 'b' (recorded and pushed before 2026-10-30T12:00Z).
    await run({ retentionDays: 1 }, {});
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(2);

    // Back to 31 days: a backfill over 'a' would send it again, unflagged.
    const backfill = await run({ retentionDays: 31 }, { since: '2026-10-10T00:00:00Z', until: '2026-10-11T00:00:00Z' }).catch((e: unknown) => e);
    expect(backfill).toMatchObject({
      code: 'BRG_ERR_INPUT_INVALID',
      message: expect.stringContaining('Start the backfill at 2026-10-30T12:00:00.000Z or later'),
    });
    // So would an overlap raised to two days re-reading 'b'.
    const overlap = await run({ retentionDays: 31, overlapMinutes: 2 * 24 * 60 }, {}).catch((e: unknown) => e);
    expect(overlap).toMatchObject({ code: 'BRG_ERR_CONFIG_INVALID', message: expect.stringContaining('Lower fhir.overlapMinutes') });
    // An overlap longer than the retention is refused as such, before anything is pulled.
    const longer = await run({ retentionDays: 1, overlapMinutes: 2 * 24 * 60 }, {}).catch((e: unknown) => e);
    expect(longer).toMatchObject({ code: 'BRG_ERR_CONFIG_INVALID', message: expect.stringContaining('is longer than state.ledgerRetentionDays') });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(2);
    // From the pruned horizon on, a backfill runs (nothing new there).
    const later = await run({ retentionDays: 31 }, { since: '2026-10-30T12:00:00Z', until: '2026-10-31T00:00:00Z' });
    expect(later.counts).toMatchObject({ rows: 0 });
  });

  it('a run whose lease another process took stops before its next block; the taker finishes the push, each row once and unflagged', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = ['10:00', '10:10', '10:20', '10:30', '10:40', '10:50'].map((t, i) => event(`l${i}`, `2026-11-05T${t}:00Z`));
    const source = fakeSource(events, [patient, practitioner], []);
    const d = deps(stateDir, source, undefined, job);
    const other = openStateStore(stateDir, systemClock); // a second process on the same state
    // After the first block, the other process judges this run's lease stale (a wrong verdict: it is alive) and takes
    // it. This run's heartbeat has not come yet, so only the ledger can stop it.
    const detach = d.events.on('block_acked', (e) => {
      if (e.index === 0) expect(other.acquireLease(connectorLeaseName('main'), otherHolder, 60_000, () => true)).toMatchObject({ acquired: true });
    });
    const error = await runSync(d, { trigger: 'cli', until: '2026-11-05T11:00:00Z' }).catch((e: unknown) => e);
    detach();
    expect(error).toMatchObject({ code: 'BRG_ERR_RUN_IN_PROGRESS', message: expect.stringContaining('lost its lease') });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(2);
    expect(d.store.listRuns({ connector: 'main' })[0]?.state).toBe('pushing'); // left for the lease's holder to finish
    d.store.close();

    other.releaseLease(connectorLeaseName('main'), otherHolder.id);
    const taker = deps(stateDir, source, other, job);
    const finished = await runSync(taker, { trigger: 'cli', until: '2026-11-05T11:00:00Z' });
    expect(finished.resumed?.counts).toMatchObject({ rowsAlreadyDelivered: 2, possiblyDuplicated: 0 });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(6);
    other.close();
  });

  it('a stop during the push tells the sinks the run stays resumable (the metrics count it stopped, not failed)', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const events = ['10:00', '10:10', '10:20', '10:30'].map((t, i) => event(`s${i}`, `2026-11-07T${t}:00Z`));
    const d = deps(stateDir, fakeSource(events, [patient, practitioner], []), undefined, job);
    const stop = new AbortController();
    const errors: Array<{ code: string; resumable?: boolean }> = [];
    const detachError = d.events.on('error', (e) => void errors.push({ code: e.code, ...(e.resumable === undefined ? {} : { resumable: e.resumable }) }));
    const detachBlock = d.events.on('block_acked', () => stop.abort());
    await expect(runSync(d, { trigger: 'cli', until: '2026-11-07T11:00:00Z', stopSignal: stop.signal })).rejects.toMatchObject({ code: 'BRG_ERR_ABORTED' });
    detachError();
    detachBlock();
    expect(errors).toEqual([{ code: 'BRG_ERR_ABORTED', resumable: true }]);
    expect(d.store.listRuns({ connector: 'main' })[0]?.state).toBe('pushing');
    d.store.close();
  });

  it('a kill -9 right after the run is marked pushing leaves its seen events staged: the resumed run completes with them', async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const { entity: _none, ...noPatient } = event('no-patient', '2026-11-06T10:55:00Z');
    const source = fakeSource([event('ok', '2026-11-06T10:50:00Z'), noPatient], [patient, practitioner], []);
    const dying = killedOnceRunIsPushing(openStateStore(stateDir, systemClock));
    await expect(runSync(deps(stateDir, source, dying.store, job), { trigger: 'cli', until: '2026-11-06T11:00:00Z' })).rejects.toThrow(KILLED);
    expect(dying.killedAt).toBe('pushing');
    dying.real.close();

    // The next process: the dead one still holds the lease (a process of this host that is gone: stale at once).
    const next = deps(stateDir, source, undefined, job);
    const resumedAndNext = await runSync({ ...next, lease: { ...next.lease, isStale: () => true } }, { trigger: 'cli', until: '2026-11-06T12:00:00Z' });
    expect(resumedAndNext.resumed?.counts).toMatchObject({ rows: 1, skipped: 1, rowsAcked: 1 });
    // The overlap (10:45-11:00) holds both events: recognised, not mapped and counted again.
    expect(resumedAndNext.counts).toMatchObject({ events: 2, duplicates: 2, skipped: 0, rows: 0 });
    expect(emu.ingest.accepted(job.jobId).flatMap((b) => b.rows)).toHaveLength(1);
    next.store.close();
  });

  it("a completed run stays completed when its housekeeping fails (a busy database for the prune, a full disk for the run log's listener)", async () => {
    const stateDir = mkdtempSync(join(root, 'state-'));
    const job = emu.newApp();
    const real = openStateStore(stateDir, systemClock);
    const busy = Object.assign(Object.create(real) as StateStore, {
      pruneDeliveries: () => {
        throw new BridgeError('BRG_ERR_STATE', 'The state database is locked by another process (database is locked).');
      },
    });
    const lines: string[] = [];
    const d = {
      ...deps(stateDir, fakeSource([event('e1', '2026-11-07T10:50:00Z')], [patient, practitioner], []), busy, job),
      logger: linesLogger(lines, 'warn'),
    };
    d.events.on('run_complete', () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    const summary = await runSync(d, { trigger: 'cli', until: '2026-11-07T11:00:00Z' });
    expect(summary.counts).toMatchObject({ rows: 1, rowsAcked: 1 });
    expect(real.listRuns({ connector: 'main' }).map((r) => [r.state, r.error])).toEqual([['completed', undefined]]);
    expect(real.getWatermark('main')).toBe('2026-11-07T11:00:00.000Z');
    expect(lines.map((line) => JSON.parse(line) as { code: string; msg: string })).toEqual([
      expect.objectContaining({ code: 'BRG_ERR_STATE', msg: 'the run completed, but the delivery ledger was not pruned; the next run prunes it' }),
      expect.objectContaining({ code: 'ENOSPC', msg: 'the run completed, but a listener of its completion (the run log, a metrics sink) failed' }),
    ]);
    real.close();
  });
});

const KILLED = 'killed (kill -9)';

/**
 * A store whose process dies the moment the run's state says 'pushing': the call that made it so returns nothing, and
 * no call after it reaches the database (no failure is recorded, the lease is not released), as with kill -9.
 */
function killedOnceRunIsPushing(real: StateStore): { store: StateStore; real: StateStore; readonly killedAt: string | undefined } {
  const state: { killedAt: string | undefined } = { killedAt: undefined };
  const store = new Proxy(real, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        if (state.killedAt !== undefined) throw new Error(KILLED);
        const result: unknown = value.apply(target, args);
        const run = target.findUnfinishedRun('main');
        if (run?.state === 'pushing') {
          state.killedAt = run.state;
          throw new Error(KILLED);
        }
        return result;
      };
    },
  });
  return {
    store,
    real,
    get killedAt() {
      return state.killedAt;
    },
  };
}
