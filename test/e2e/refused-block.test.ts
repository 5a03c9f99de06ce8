/**
 * A block Purview definitely refused (a 400: it says the block was not processed) is recorded as refused, so its rows
 * go out again unflagged: before, they were flagged possibly duplicated on the rerun like a block whose answer was
 * lost. Through real processes: another block size on the rerun, a second process refused while the first holds the
 * connector, kill -9 mid-push, and faults on the EHR side; every row once, flagged only where an outcome was unknown.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnBridge, until as waitUntil } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { holdUntilReleased, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 73, events: 240, patients: 40, practitioners: 6 } });
});
afterAll(async () => h?.close());

function bridgeSync(args: readonly string[], blockRows: number) {
  return spawnBridge(['sync', '--config', h.sandbox.configPath, '--no-progress', ...args], { BRIDGE__connectors__0__purview__blockRows: String(blockRows) });
}

function accepted(): string[] {
  return h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
}

it('sends a refused block again unflagged, with another block size, past a second process and EHR throttling; kill -9 flags only the block in flight', async () => {
  const { start, end } = h.sandbox.dataset.options;
  const events: AuditEvent[] = [...h.sandbox.dataset.events()];
  const expected = expectedRows(h.config, h.sandbox.dataset, events);

  // Block 0 is taken, block 1 refused with a 400: the run stops, unfinished.
  h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'The file could not be validated.' });
  const refused = await bridgeSync(['--since', start, '--until', end], 20).done;
  expect(refused.code, refused.stderr).toBe(5);
  expect(refused.stderr).toContain('BRG_ERR_PURVIEW_REJECTED');

  // The rerun, with 7-row blocks, holds the connector (Purview is slow) while a second process is refused.
  const requests = h.sandbox.ingest.requests;
  const hold = holdUntilReleased();
  h.sandbox.ingest.injectFaults(hold.fault);
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: /\/AuditEvent/ });
  const rerun = bridgeSync(['--until', end], 7);
  await waitUntil('a request to Purview', () => h.sandbox.ingest.requests > requests || undefined);
  const second = await bridgeSync(['--until', end], 50).done;
  hold.release();
  expect(second.code, second.stderr).toBe(6);
  const done = await rerun.done;
  expect(done.code, done.stderr).toBe(0);

  const afterRefusal = h.withStore((s) => flaggedEvents(s, h.config));
  expect(afterRefusal.size).toBe(0);
  expect(expectExactlyOnceOrFlagged(accepted(), expected, afterRefusal).duplicates).toBe(0);

  // Late events: their first block is refused, the next process is killed -9 after its first acknowledged block, and a
  // last one finishes. Only what was in flight at the kill may be flagged.
  const template = events.find((e) => e.outcome === '0' && (e.entity ?? []).some((x) => x.what?.reference?.startsWith('Patient/'))) as AuditEvent;
  const endMs = Date.parse(end);
  const late = Array.from({ length: 30 }, (_, i): AuditEvent => {
    const at = new Date(endMs + 60_000 + i * 1000).toISOString();
    return { ...structuredClone(template), id: `late-${i}`, meta: { versionId: '1', lastUpdated: at }, recorded: at };
  });
  await h.sandbox.store?.load(late);
  const until = new Date(endMs + 3_600_000).toISOString();
  h.sandbox.ingest.injectFaults({ kind: 'status', status: 400, body: 'Rejected' });
  expect((await bridgeSync(['--until', until], 5).done).code).toBe(5);
  const before = accepted().length;
  h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 0 }, ...Array.from({ length: 10 }, () => ({ kind: 'delay' as const, ms: 400 })));
  const killed = bridgeSync(['--until', until], 5);
  await waitUntil('a block acknowledged', () => accepted().length > before || undefined);
  killed.kill('SIGKILL');
  await killed.done;
  h.sandbox.ingest.injectFaults();
  const last = await bridgeSync(['--until', until], 5).done;
  expect(last.code, last.stderr).toBe(0);

  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  expect(flagged.size).toBeLessThanOrEqual(5);
  expectExactlyOnceOrFlagged(accepted(), expectedRows(h.config, h.sandbox.dataset, [...events, ...late]), flagged);
});
