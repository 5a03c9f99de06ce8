/**
 * A search walk that skips events without an error (a page without its `next` link, offset pages served again in
 * place of the next) used to count as complete: the watermark moved past events never read. The slice's stated total
 * now catches it and the slice is read again; a server that keeps skipping stops the run with nothing pushed. Through
 * real processes: a run that stops on such paging, a rerun killed -9 mid-push, another block size, a second process
 * refused while the connector is held, faults on both sides; every row once or flagged.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnBridge, until as waitUntil } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { holdUntilReleased, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const AUDIT_SEARCH = /\/AuditEvent\?/;
let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 79, events: 240, patients: 40, practitioners: 6 } });
});
afterAll(async () => h?.close());

/** `bridge sync` as a real process, with 25-event pages so a window takes several. */
function bridgeSync(blockRows: number) {
  const { start, end } = h.sandbox.dataset.options;
  return spawnBridge(['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress'], {
    BRIDGE__connectors__0__fhir__pageSize: '25',
    BRIDGE__connectors__0__purview__blockRows: String(blockRows),
  });
}

function accepted(): string[] {
  return h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
}

it('reads a short walk again, stops on paging that keeps skipping, and delivers every row once across kill -9, a second process and faults', async () => {
  const events = [...h.sandbox.dataset.events()];
  const expected = expectedRows(h.config, h.sandbox.dataset, events);

  // Every page of every walk loses its next link: the run stops before pushing anything, naming both counts.
  h.sandbox.fhir.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH, times: 1_000 });
  const stopped = await bridgeSync(20).done;
  expect(stopped.code, stopped.stderr).toBe(4);
  expect(stopped.stderr).toContain('BRG_ERR_FHIR_PAGING');
  expect(stopped.stderr).toMatch(/said \d+ events are recorded from .* but its pages held 25, twice/);
  expect(accepted()).toHaveLength(0);
  h.sandbox.fhir.faults.clear();

  // The next run: its first page loses its next link once and the EHR throttles once; Purview takes a block and then
  // answers 503 (its outcome unknown), then is slow; the process is killed -9 after an acknowledged block.
  h.sandbox.fhir.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: AUDIT_SEARCH });
  h.sandbox.ingest.injectFaults(
    { kind: 'delay', ms: 0 },
    { kind: 'accept-then-status', status: 503 },
    ...Array.from({ length: 20 }, () => ({ kind: 'delay' as const, ms: 300 })),
  );
  const killed = bridgeSync(20);
  await waitUntil('two blocks taken', () => (h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length >= 2 ? true : undefined));
  killed.kill('SIGKILL');
  expect((await killed.done).signal).toBe('SIGKILL');
  // `bridge runs` shows what Purview acknowledged of the killed run so far (its record has no push counts yet): the
  // blocks the ledger holds as acknowledged, at most those the emulator took (one took, its answer lost to a 503).
  const listed = await spawnBridge(['runs', '--json', '--limit', '1', '--config', h.sandbox.configPath]).done;
  expect(listed.code, listed.stderr).toBe(0);
  type Listed = { runs: Array<{ id: string; state: string; counts: { blocksAcked: number; rowsAcked: number } }> };
  const [killedRun] = (JSON.parse(listed.stdout) as Listed).runs;
  expect(killedRun?.state).toBe('pushing');
  const acknowledged = killedRun?.counts.blocksAcked ?? 0;
  expect(acknowledged).toBeGreaterThanOrEqual(1);
  expect(acknowledged).toBeLessThanOrEqual(h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length - 1);
  expect(killedRun?.counts.rowsAcked).toBe(acknowledged * 20);

  // The rerun, with 7-row blocks, holds the connector (Purview is slow) while a second process is refused.
  const requests = h.sandbox.ingest.requests;
  const acceptedBeforeRerun = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length;
  const hold = holdUntilReleased();
  h.sandbox.ingest.injectFaults(hold.fault);
  h.sandbox.fhir.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
  const rerun = bridgeSync(7);
  await waitUntil('a request to Purview', () => (h.sandbox.ingest.requests > requests ? true : undefined));
  const second = await bridgeSync(50).done;
  hold.release();
  expect(second.code, second.stderr).toBe(6);
  const done = await rerun.done;
  expect(done.code, done.stderr).toBe(0);
  // The resumed run completes with the blocks of both its pushes: those before the kill and those of the rerun.
  // (The rerun then starts a run of its own over the window: nothing is left to send in it.)
  const completed = await spawnBridge(['runs', '--json', '--limit', '5', '--config', h.sandbox.configPath]).done;
  const runs = (JSON.parse(completed.stdout) as Listed).runs;
  const resumed = runs.find((run) => run.id === killedRun?.id);
  expect(resumed?.state).toBe('completed');
  const later = runs.filter((run) => run.id !== killedRun?.id && run.state === 'completed' && runs.indexOf(run) < runs.indexOf(resumed as Listed['runs'][0]));
  const sentLater = later.reduce((sum, run) => sum + run.counts.blocksAcked, 0);
  expect(resumed?.counts.blocksAcked).toBe(acknowledged + h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length - acceptedBeforeRerun - sentLater);
  // So says the run's own record (its summary, the status metrics), not only `bridge runs`.
  expect(h.withStore((s) => s.getRun(killedRun?.id ?? '')?.counts.blocksAcked)).toBe(resumed?.counts.blocksAcked);

  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  const { duplicates } = expectExactlyOnceOrFlagged(accepted(), expected, flagged);
  // At most the 20-row block in flight at the kill, and the one Purview stored before answering 503.
  expect(duplicates).toBeLessThanOrEqual(20 + h.sandbox.ingest.lostAnswerRows(h.sandbox.ids.jobId));
  expect(new Set(accepted()).size).toBe(expected.lines.length);
});
