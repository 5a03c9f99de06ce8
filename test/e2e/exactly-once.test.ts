/**
 * Issue #14, one hole at a time, through the real pipeline against the sandbox: each test fails on the v1 code (block
 * ledger keyed by spool hash + index, no lease, watermark set to any run's end, instants compared as text, spools left
 * behind) and shows the row counts Purview ends up with.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const HOUR = 3_600_000;

function accepted(h: SandboxHarness): string[] {
  return h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
}

/** A new access at a new time, copied from a generated event, written with the given UTC offset. */
function arrival(template: AuditEvent, id: string, recordedMs: number, offsetMinutes = 0): AuditEvent {
  return {
    ...structuredClone(template),
    id,
    meta: { versionId: '1', lastUpdated: iso(recordedMs) },
    recorded: withOffset(recordedMs, offsetMinutes),
    period: { start: iso(recordedMs - 500), end: iso(recordedMs) },
  };
}

/** The same instant as ISO text with a local offset, e.g. 2026-11-28T02:13:15-07:00 (fraction kept when there is one). */
function withOffset(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000)
    .toISOString()
    .replace('Z', '')
    .replace(/\.000$/, '');
  if (offsetMinutes === 0) return `${local}Z`;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

function templateOf(h: SandboxHarness): AuditEvent {
  return [...h.sandbox.dataset.events()].find(
    (e) => e.outcome === '0' && (e.entity ?? []).some((x) => x.what?.reference?.startsWith('Patient/')),
  ) as AuditEvent;
}

function check(h: SandboxHarness, events: Iterable<AuditEvent>): { duplicates: number } {
  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  return expectExactlyOnceOrFlagged(accepted(h), expectedRows(h.config, h.sandbox.dataset, events), flagged);
}

describe('backfills (#14.4)', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 41, events: 240, patients: 40, practitioners: 6 }, flags: { 'connectors.0.purview.blockRows': 50 } });
  });
  afterAll(async () => h?.close());

  it('never move the watermark backwards and send only what Purview has not acknowledged', async () => {
    const { start, end } = h.sandbox.dataset.options;
    await h.sync();
    const all = [...h.sandbox.dataset.events()];
    expect(h.withStore((s) => s.getWatermark('sandbox'))).toBe(iso(Date.parse(end)));
    const before = accepted(h).length;

    const d = Date.parse(start) + 2 * HOUR;
    const backfill = await h.sync({ since: iso(d), until: iso(d + HOUR) });
    expect(backfill.backfill).toBe(true);
    expect(backfill.counts.rows).toBe(0);
    expect(backfill.counts.duplicates).toBe(all.filter((e) => Date.parse(e.recorded) >= d && Date.parse(e.recorded) < d + HOUR).length);
    expect(h.withStore((s) => s.getWatermark('sandbox'))).toBe(iso(Date.parse(end)));
    expect(accepted(h).length).toBe(before);

    // Late arrivals inside the backfilled hour: a second backfill sends exactly those.
    const late = [arrival(templateOf(h), 'late-a', d + 10 * 60_000, -420), arrival(templateOf(h), 'late-b', d + 50 * 60_000, 60)];
    await h.sandbox.store?.load(late);
    const second = await h.sync({ since: iso(d), until: iso(d + HOUR) });
    expect(second.counts.rowsAcked).toBe(expectedRows(h.config, h.sandbox.dataset, late).lines.length);

    // The next plain sync starts from the untouched watermark: nothing is sent twice.
    const next = await h.sync({ since: undefined, until: iso(Date.parse(end) + HOUR) });
    expect(next.since).toBe(iso(Date.parse(end) - 15 * 60_000));
    expect(check(h, [...all, ...late]).duplicates).toBe(0);
  });

  it('refuses a backfill reaching before the ledger remembers, saying which setting to change', async () => {
    const error = await h.sync({ since: '2025-01-01T00:00:00Z', until: '2025-01-02T00:00:00Z' }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((error as BridgeError).message).toContain('state.ledgerRetentionDays');
  });
});

describe('one run per connector across processes (#14.3)', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 43, events: 200, patients: 40, practitioners: 6 }, flags: { 'connectors.0.purview.blockRows': 40 } });
  });
  afterAll(async () => h?.close());

  it('a second run on the same state is refused with the holder named, and the first delivers every row once', async () => {
    h.sandbox.ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'delay' as const, ms: 300 })));
    const first = h.sync();
    await waitFor(() => accepted(h).length > 0 || h.sandbox.ingest.requests > 0);
    const second = await h.sync().catch((e: unknown) => e);
    expect(second).toBeInstanceOf(BridgeError);
    expect((second as BridgeError).code).toBe('BRG_ERR_RUN_IN_PROGRESS');
    expect((second as BridgeError).exitCode).toBe(6);
    expect((second as BridgeError).message).toMatch(
      new RegExp(`A sync of connector "sandbox" is already running: bridge \\(pid ${process.pid} on .+, since .+\\)`),
    );
    const summary = await first;
    expect(summary.counts.rowsAcked).toBe(summary.counts.rows);
    // The loser left no trace: no run recorded as failed, the winner's run not overwritten.
    const runs = h.withStore((s) => s.listRuns({ connector: 'sandbox' }));
    expect(runs.map((r) => r.state)).toEqual(['completed']);
    expect(runs[0]?.error).toBeUndefined();
    expect(check(h, h.sandbox.dataset.events()).duplicates).toBe(0);
  });
});

describe('a push stopped midway, resumed with another block size or on another machine (#14.1)', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 47, events: 300, patients: 50, practitioners: 8 }, flags: { 'connectors.0.purview.blockRows': 7 } });
  });
  afterAll(async () => h?.close());

  it('resumes with 100,000-row blocks, then finishes a run whose spool is gone by pulling its window again', async () => {
    const { start, end } = h.sandbox.dataset.options;
    const t1 = Date.parse(start) + 12 * HOUR;
    const stop = new AbortController();
    const detach = h.events.on('block_acked', (e) => e.index === 2 && stop.abort());
    const stopped = await h.sync({ until: iso(t1), stopSignal: stop.signal }).catch((e: unknown) => e);
    detach();
    expect((stopped as BridgeError).code).toBe('BRG_ERR_ABORTED');
    expect(accepted(h).length).toBe(21);

    const resumed = await h.sync({ since: undefined, until: iso(t1), flags: { 'connectors.0.purview.blockRows': 100_000 } });
    expect(resumed.resumed?.counts).toMatchObject({ rowsAlreadyDelivered: 21, blocks: 1 });

    // An incremental run dies mid-push on "machine A"; "machine B" has the state but not A's spool.
    const stop2 = new AbortController();
    const detach2 = h.events.on('block_acked', (e) => e.index === 1 && stop2.abort());
    await h
      .sync({ since: undefined, until: iso(Date.parse(end)), stopSignal: stop2.signal, flags: { 'connectors.0.purview.blockRows': 11 } })
      .catch(() => undefined);
    detach2();
    rmSync(join(h.config.stateDir, 'spool'), { recursive: true, force: true });
    const elsewhere = await h.sync({ since: undefined, until: iso(Date.parse(end)), flags: { 'connectors.0.purview.blockRows': 5 } });
    expect(elsewhere.resumed).toBeUndefined();
    const runs = h.withStore((s) => s.listRuns({ connector: 'sandbox' }));
    expect(runs[1]).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_ABORTED' } });
    expect(elsewhere.counts.duplicates).toBeGreaterThanOrEqual(22);
    expect(check(h, h.sandbox.dataset.events()).duplicates).toBe(0);
  });
});

describe('local UTC offsets (#14.5)', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 53, events: 60, patients: 20, practitioners: 4 } });
  });
  afterAll(async () => h?.close());

  it('property: events written with any offset from −12:00 to +14:00, over overlapping runs, each arrive once', async () => {
    const { start } = h.sandbox.dataset.options;
    let seed = 53;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const base = Date.parse(start) + 26 * HOUR;
    const template = templateOf(h);
    const extra = Array.from({ length: 120 }, (_, i) => {
      const at = base + Math.floor(random() * 6 * HOUR) + (random() < 0.5 ? Math.floor(random() * 1000) : 0);
      const offset = (Math.floor(random() * (26 * 4 + 1)) - 12 * 4) * 15; // −12:00 … +14:00 in quarter hours
      return arrival(template, `offset-${i}`, at, offset);
    });
    await h.sandbox.store?.load(extra);
    await h.sync({ until: iso(base) });
    for (let step = 1; step <= 8; step++) await h.sync({ since: undefined, until: iso(base + step * 50 * 60_000) });
    expect(check(h, [...h.sandbox.dataset.events(), ...extra]).duplicates).toBe(0);
  });
});

describe('a paging loop and a failed pull (#14.6, #14.9)', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 59, events: 120, patients: 20, practitioners: 4 }, flags: { 'connectors.0.fhir.pageSize': 20 } });
  });
  afterAll(async () => h?.close());

  it('stops with a clear error and pushes nothing from the window; no spool or rejects file stays behind', async () => {
    h.sandbox.fhir.faults.add({ action: { kind: 'self-next' }, match: /AuditEvent\?/, times: 1000 });
    const error = await h.sync().catch((e: unknown) => e);
    h.sandbox.fhir.faults.clear();
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_PAGING');
    expect(h.sandbox.ingest.requests).toBe(0);
    expect(h.withStore((s) => s.getWatermark('sandbox'))).toBeUndefined();
    expect(filesIn(h, 'spool')).toEqual([]);
    expect(filesIn(h, 'rejects')).toEqual([]);
  });

  it('sweeps files of runs that are over, and unknown files older than an hour, at the next run', async () => {
    const failed = h.withStore((s) => s.listRuns({ connector: 'sandbox' }))[0]?.id ?? 'none';
    mkdirSync(join(h.config.stateDir, 'spool'), { recursive: true });
    writeFileSync(join(h.config.stateDir, 'spool', `${failed}.txt`), 'PHI');
    writeFileSync(join(h.config.stateDir, 'rejects', `${failed}.ndjson`), 'PHI');
    const orphan = join(h.config.stateDir, 'spool', 'from-a-crashed-process.txt');
    writeFileSync(orphan, 'PHI');
    utimesSync(orphan, new Date(Date.now() - 2 * HOUR), new Date(Date.now() - 2 * HOUR));
    const fresh = join(h.config.stateDir, 'spool', 'maybe-another-database.txt');
    writeFileSync(fresh, 'PHI');
    const completed = await h.sync();
    expect(filesIn(h, 'spool')).toEqual(['maybe-another-database.txt']);
    // The completed run's rejects stay for retention.rejectsDays (0600); the failed run's are gone.
    expect(filesIn(h, 'rejects')).toEqual([`${completed.runId}.ndjson`]);
    expect(statSync(join(h.config.stateDir, 'rejects', `${completed.runId}.ndjson`)).mode & 0o777).toBe(0o600);
    expect(check(h, h.sandbox.dataset.events()).duplicates).toBe(0);
  });
});

function filesIn(h: SandboxHarness, dir: string): string[] {
  const path = join(h.config.stateDir, dir);
  return existsSync(path) ? readdirSync(path).sort() : [];
}

async function waitFor(condition: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('checked before anything is pulled (#14.11)', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 67, events: 40, patients: 10, practitioners: 3 } });
  });
  afterAll(async () => h?.close());

  it('a missing Purview secret stops the run before the first AuditEvent search', async () => {
    const error = await h.sync({ flags: { 'connectors.0.purview.secret': { env: 'NO_SUCH_SECRET_VAR' } } }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_CONFIG_SECRET_MISSING');
    expect(h.sandbox.fhir.requests.filter((r) => r.path.includes('/AuditEvent'))).toEqual([]);
  });
});
