/**
 * Epic cuts a search that matches more than it serves (OperationOutcome 4127, "additional data may exist"): the
 * sandbox's FHIR server here serves at most 30 AuditEvents per search, as Epic would, and says nothing else (its total
 * counts only what it serves). Through real processes: `bridge sync` killed with SIGKILL while it pulls and again after
 * a block Purview acknowledged, a second process refused while a third holds the connector, and the third finishing
 * with another page size, slice limit and block size, through faults on both sides. Every row of the window arrives
 * once, or flagged; nothing is lost to a search cut short.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnBridge, until } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { blocksAcked, holdUntilReleased, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const CAP = 30;
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 73, events: 260, patients: 40, practitioners: 6 }, searchResultCaps: { AuditEvent: CAP } });
});
afterAll(async () => h?.close());

function accepted(): string[] {
  return h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
}

function auditEventSearches(): number {
  return h.sandbox.fhir.requests.filter((r) => r.path.endsWith('/AuditEvent')).length;
}

function sync(settings: { pageSize: number; blockRows: number; maxResultsPerSlice?: number }) {
  const { start, end } = h.sandbox.dataset.options;
  return spawnBridge(['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress'], {
    BRIDGE__connectors__0__fhir__pageSize: String(settings.pageSize),
    BRIDGE__connectors__0__purview__blockRows: String(settings.blockRows),
    ...(settings.maxResultsPerSlice ? { BRIDGE__connectors__0__fhir__maxResultsPerSlice: String(settings.maxResultsPerSlice) } : {}),
  });
}

it('a window whose searches Epic cuts short (4127) arrives whole through kill -9, a second process and changed settings', async () => {
  const events = [...h.sandbox.dataset.events()];
  // The window's first search alone matches them all: far more than one search serves.
  expect(events.length).toBeGreaterThan(4 * CAP);
  const expected = expectedRows(h.config, h.sandbox.dataset, events);

  // First process: each AuditEvent search is slow, and the EHR throttles once; killed while it pulls.
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: /\/AuditEvent\?/ });
  h.sandbox.fhir.faults.add({ action: { kind: 'delay', ms: 150 }, match: /\/AuditEvent\?/, times: 40 });
  const pulling = sync({ pageSize: 10, blockRows: 20 });
  await until('three AuditEvent searches', () => (auditEventSearches() >= 3 ? true : undefined));
  pulling.kill('SIGKILL');
  expect((await pulling.done).signal).toBe('SIGKILL');
  h.sandbox.fhir.faults.clear();
  expect(accepted()).toEqual([]);

  // Second: Purview is slow; killed after its first acknowledged block.
  h.sandbox.ingest.injectFaults(...Array.from({ length: 30 }, () => ({ kind: 'delay' as const, ms: 80 })));
  const pushing = sync({ pageSize: 10, blockRows: 20 });
  await until('a block acknowledged', () => (blocksAcked(h) > 0 ? true : undefined), 60_000);
  pushing.kill('SIGKILL');
  expect((await pushing.done).signal).toBe('SIGKILL');
  h.sandbox.ingest.injectFaults();
  const deliveredBefore = accepted().length;
  expect(deliveredBefore).toBeGreaterThan(0);

  // Third, with another page size, slice limit and block size, through a 500 of the EHR, a connection reset after
  // Purview stored a block and a 503; a fourth process meanwhile is refused (exit 6).
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 500 }, match: /\/AuditEvent\?/ });
  const requestsBefore = h.sandbox.ingest.requests;
  const hold = holdUntilReleased();
  h.sandbox.ingest.injectFaults(hold.fault, { kind: 'accept-then-reset' }, { kind: 'status', status: 503, retryAfter: '0' });
  const holder = sync({ pageSize: 7, blockRows: 7, maxResultsPerSlice: 150 });
  await until('a request to Purview', () => (h.sandbox.ingest.requests > requestsBefore ? true : undefined), 60_000);
  const refused = await sync({ pageSize: 10, blockRows: 50 }).done;
  hold.release();
  expect(refused.code, refused.stderr).toBe(6);
  const held = await holder.done;
  expect(held.code, held.stderr).toBe(0);

  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  const { duplicates } = expectExactlyOnceOrFlagged(accepted(), expected, flagged);
  // At most the 20-row block in flight at the kill, and the block stored before its connection was reset.
  expect(duplicates).toBeLessThanOrEqual(20 + h.sandbox.ingest.lostAnswerRows(h.sandbox.ids.jobId));
  // Epic's cap was met: searches matched more than it serves (so they were cut, 4127), and the searches the bridge then
  // made of those ranges each matched no more than the cap.
  const recorded = events.map((e) => Date.parse(e.recorded));
  const matched = (dates: string[]): number => {
    const since = Date.parse((dates.find((d) => d.startsWith('ge')) ?? '').slice(2));
    const until = Date.parse((dates.find((d) => d.startsWith('lt')) ?? '').slice(2));
    return recorded.filter((t) => t >= since && t < until).length;
  };
  const searches = h.sandbox.fhir.requests
    .filter((r) => r.path.endsWith('/AuditEvent') && !/_offset=[1-9]/.test(r.query))
    .map((r) => matched(new URLSearchParams(r.query).getAll('date')));
  expect(searches.filter((n) => n > CAP).length).toBeGreaterThan(2);
  expect(searches.filter((n) => n > 0 && n <= CAP).length).toBeGreaterThan(events.length / CAP);
});
