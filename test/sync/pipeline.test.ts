/**
 * runSync with a fake event source and resolver (events and resources made in the test) against the real SQLite state
 * and the Purview emulators: the order of the stages, the counts, what the state says after each run, and the
 * source's check coming before anything is written.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { type EventSource, openStateStore, runSync, type SyncDeps, SyncEvents } from '../../src/sync/index.js';
import { type Emulators, startEmulators } from '../purview/support.js';

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
    target: { destination: destinationKey({ ingestionBase: emu.ingest.baseUrl, tenantId: job.tenantId, jobId: job.jobId }), source: 'main' },
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
