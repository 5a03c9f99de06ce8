/**
 * Exactly once per Purview job: after `purview.jobId` changes, a backfill of a window the old job already received
 * must deliver all of it to the new job. The overlap's seen set used to be kept per connector only, so the events of
 * the last completed run's overlap counted as already pushed and the new job never got them. Driven through real
 * processes (kill -9 mid-push, a second process on the same state, another block size on the rerun) with faults on
 * both sides.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destinationKey } from '../../src/purview/index.js';
import { spawnBridge, until } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows } from '../support/expected-rows.js';
import { blocksAcked, holdUntilReleased, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const JOB_B = 'b6c9d0e2-4f5a-4b7c-9d8e-0f1a2b3c4d5e';
const JOB_C = 'c7d0e1f3-5a6b-4c8d-8e9f-1a2b3c4d5e6f';
const JOB_D = 'd8e1f2a4-6b7c-4d9e-9fa0-2b3c4d5e6f70';
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 67, events: 240, patients: 40, practitioners: 6 }, flags: { 'connectors.0.purview.blockRows': 20 } });
  h.sandbox.ingest.registerJob(JOB_B, h.sandbox.ids, 'epic');
  h.sandbox.ingest.registerJob(JOB_C, h.sandbox.ids, 'epic');
  h.sandbox.ingest.registerJob(JOB_D, h.sandbox.ids, 'epic');
});
afterAll(async () => h?.close());

function rowsOf(jobId: string): string[] {
  return h.sandbox.ingest.accepted(jobId).flatMap((b) => b.rows);
}

/**
 * `bridge sync` of the whole data set into a job (B by default), as a real process; `tenantId` and `ingestionBase` as
 * the config writes them.
 */
function syncIntoB(blockRows: number, jobId = JOB_B, tenantId = h.sandbox.ids.tenantId, ingestionBase?: string) {
  const { start, end } = h.sandbox.dataset.options;
  return spawnBridge(['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress'], {
    BRIDGE__connectors__0__purview__jobId: jobId,
    BRIDGE__connectors__0__purview__tenantId: tenantId,
    BRIDGE__connectors__0__purview__blockRows: String(blockRows),
    ...(ingestionBase === undefined ? {} : { BRIDGE__connectors__0__purview__ingestionBase: ingestionBase }),
  });
}

it("a backfill into a new Purview job delivers the whole window, the old job's last overlap included, each row once or flagged", async () => {
  const events = [...h.sandbox.dataset.events()];
  const expected = expectedRows(h.config, h.sandbox.dataset, events);
  // Job A: the whole window, completed (its seen set now holds the last overlap's events).
  const first = await h.sync();
  expect(first.counts.rowsAcked).toBe(expected.lines.length);
  expect(rowsOf(h.sandbox.ids.jobId)).toHaveLength(expected.lines.length);
  const ackedBefore = blocksAcked(h);

  // Job B, first attempt: the EHR throttles once, Purview is slow; killed -9 after its first acknowledged block.
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: /\/AuditEvent/ });
  h.sandbox.ingest.injectFaults(...Array.from({ length: 30 }, () => ({ kind: 'delay' as const, ms: 80 })));
  const killed = syncIntoB(20);
  await until('a block acknowledged', () => blocksAcked(h) > ackedBefore || undefined);
  killed.kill('SIGKILL');
  expect((await killed.done).signal).toBe('SIGKILL');
  h.sandbox.ingest.injectFaults();

  // A second process while a third holds the connector is refused; the holder finishes with another block size, through
  // a connection reset after Purview stored a block and a 503.
  const requestsBefore = h.sandbox.ingest.requests;
  const hold = holdUntilReleased();
  h.sandbox.ingest.injectFaults(hold.fault, { kind: 'accept-then-reset' }, { kind: 'status', status: 503, retryAfter: '0' });
  const holder = syncIntoB(7);
  await until('a request to Purview', () => h.sandbox.ingest.requests > requestsBefore || undefined);
  const second = await syncIntoB(50).done;
  hold.release();
  expect(second.code, second.stderr).toBe(6);
  const held = await holder.done;
  expect(held.code, held.stderr).toBe(0);

  const flagged = h.withStore((s) =>
    s.flaggedEventKeys({
      destination: destinationKey({ ingestionBase: h.sandbox.ingest.baseUrl, jobId: JOB_B }),
      source: 'sandbox',
    }),
  );
  const { duplicates } = expectExactlyOnceOrFlagged(rowsOf(JOB_B), expected, flagged);
  // At most the 20-row block in flight at the kill, and the block stored before its connection was reset.
  expect(duplicates).toBeLessThanOrEqual(20 + h.sandbox.ingest.lostAnswerRows(JOB_B));
  // Job A got nothing more.
  expectExactlyOnceOrFlagged(rowsOf(h.sandbox.ids.jobId), expected, new Set());
});

it('one job under two spellings of its tenant (its domain, then its id) is one destination: a rerun sends nothing twice unflagged', async () => {
  const events = [...h.sandbox.dataset.events()];
  const expected = expectedRows(h.config, h.sandbox.dataset, events);
  const ackedBefore = blocksAcked(h);

  // Job C with the tenant written as its domain, which Entra takes: throttled once by the EHR, killed -9 after a block.
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: /\/AuditEvent/ });
  h.sandbox.ingest.injectFaults(...Array.from({ length: 30 }, () => ({ kind: 'delay' as const, ms: 80 })));
  const killed = syncIntoB(20, JOB_C, h.sandbox.ids.tenantDomain);
  await until('a block acknowledged', () => blocksAcked(h) > ackedBefore || undefined);
  killed.kill('SIGKILL');
  expect((await killed.done).signal).toBe('SIGKILL');
  h.sandbox.ingest.injectFaults();
  const deliveredBefore = rowsOf(JOB_C).length;
  expect(deliveredBefore).toBeGreaterThan(0);

  // The operator writes the tenant id instead (as the docs ask); the rerun, with another block size, meets a connection
  // reset after Purview stored a block and a 503.
  h.sandbox.ingest.injectFaults({ kind: 'accept-then-reset' }, { kind: 'status', status: 503, retryAfter: '0' });
  const rerun = await syncIntoB(7, JOB_C, h.sandbox.ids.tenantId).done;
  expect(rerun.code, rerun.stderr).toBe(0);

  const flagged = h.withStore((s) =>
    s.flaggedEventKeys({ destination: destinationKey({ ingestionBase: h.sandbox.ingest.baseUrl, jobId: JOB_C }), source: 'sandbox' }),
  );
  const { duplicates } = expectExactlyOnceOrFlagged(rowsOf(JOB_C), expected, flagged);
  // At most the 20-row block in flight at the kill and the block stored before its reset: never what was acknowledged.
  expect(duplicates).toBeLessThanOrEqual(20 + h.sandbox.ingest.lostAnswerRows(JOB_C));
  expect(duplicates).toBeLessThan(deliveredBefore);
});

it('one job under two spellings of its ingestion host (an alias, a private endpoint) is one destination: a rerun sends nothing twice unflagged', async () => {
  const events = [...h.sandbox.dataset.events()];
  const expected = expectedRows(h.config, h.sandbox.dataset, events);
  const ackedBefore = blocksAcked(h);
  const byAddress = h.sandbox.ingest.baseUrl;
  const byName = byAddress.replace('127.0.0.1', 'localhost');
  expect(byName).not.toBe(byAddress);

  // Job D through its address: throttled once by the EHR, Purview slow, killed -9 after a block.
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: /\/AuditEvent/ });
  h.sandbox.ingest.injectFaults(...Array.from({ length: 30 }, () => ({ kind: 'delay' as const, ms: 80 })));
  const killed = syncIntoB(20, JOB_D, h.sandbox.ids.tenantId, byAddress);
  await until('a block acknowledged', () => blocksAcked(h) > ackedBefore || undefined);
  killed.kill('SIGKILL');
  expect((await killed.done).signal).toBe('SIGKILL');
  h.sandbox.ingest.injectFaults();
  const deliveredBefore = rowsOf(JOB_D).length;
  expect(deliveredBefore).toBeGreaterThan(0);

  // The same service by another name; the rerun, with another block size, meets a reset after a stored block and a 503.
  h.sandbox.ingest.injectFaults({ kind: 'accept-then-reset' }, { kind: 'status', status: 503, retryAfter: '0' });
  const rerun = await syncIntoB(7, JOB_D, h.sandbox.ids.tenantId, byName).done;
  expect(rerun.code, rerun.stderr).toBe(0);

  const flagged = h.withStore((s) => s.flaggedEventKeys({ destination: destinationKey({ ingestionBase: byName, jobId: JOB_D }), source: 'sandbox' }));
  const { duplicates } = expectExactlyOnceOrFlagged(rowsOf(JOB_D), expected, flagged);
  // At most the 20-row block in flight at the kill and the block stored before its reset: never what was acknowledged.
  expect(duplicates).toBeLessThanOrEqual(20 + h.sandbox.ingest.lostAnswerRows(JOB_D));
  expect(duplicates).toBeLessThan(deliveredBefore);
});
