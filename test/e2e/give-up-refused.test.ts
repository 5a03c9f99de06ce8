/**
 * A row Purview refuses every time (a 400 for a value in it) stops the connector at its block on every run, until the
 * operator gives the block's events up (`bridge state give-up`). Through real processes: the refusal narrowed with a
 * smaller block size on the next run, the give-up refused while a sync holds the connector, a kill -9 after it, faults
 * on the EHR and Purview sides, and a backfill over the same window. Every other row arrives once (or flagged); the
 * given-up events' rows never reach Purview, are listed as rejected `purview-refused` in the completing run's rejects
 * file, and the watermark moves on.
 */
import { readFileSync } from 'node:fs';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destinationOf, findConnector } from '../../src/composition/index.js';
import { eventClaimKey } from '../../src/purview/ledger.js';
import { spawnBridge, until as waitUntil } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 91, events: 240, patients: 40, practitioners: 6 } });
});
afterAll(async () => h?.close());

function bridge(args: readonly string[], blockRows = 20) {
  return spawnBridge([...args, '--config', h.sandbox.configPath], { BRIDGE__connectors__0__purview__blockRows: String(blockRows) });
}

function sync(args: readonly string[], blockRows: number) {
  return bridge(['sync', '--no-progress', ...args], blockRows);
}

function accepted(): string[] {
  return h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

it('gives up only the events of the block Purview keeps refusing, narrowed first; every other row once, the watermark moves on', async () => {
  const { start, end } = h.sandbox.dataset.options;
  const events: AuditEvent[] = [...h.sandbox.dataset.events()];
  const all = expectedRows(h.config, h.sandbox.dataset, events);
  // A row of one event, past the first blocks: Purview refuses any block that holds it.
  const bad = all.lines.slice(60).find((line) => all.owners.get(line)?.size === 1 && all.lines.indexOf(line) === all.lines.lastIndexOf(line)) as string;
  const badEvent = [...(all.owners.get(bad) ?? [])][0] as string;
  h.sandbox.ingest.refuseRowsMatching(new RegExp(`^${escapeRegExp(bad)}$`));

  const first = await sync(['--since', start, '--until', end], 20).done;
  expect(first.code, first.stderr).toBe(5);
  expect(first.stderr).toContain('BRG_ERR_PURVIEW_REJECTED');
  expect(first.stderr).toContain('bridge state give-up <connector>');
  const shown = await bridge(['state', 'refused', 'sandbox']).done;
  expect(shown.code, shown.stderr).toBe(0);
  expect(shown.stdout).toMatch(/refused by Purview with 400 .*; \d+ event\(s\)/);
  expect(shown.stdout).toContain('bridge state give-up sandbox');

  // Narrowed: the rerun resumes the push with 3-row blocks, slowly (Purview delays, EHR throttled), and a give-up
  // attempted meanwhile is refused: the sync holds the connector.
  h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 3500 }, { kind: 'delay', ms: 300 });
  h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 429, retryAfter: '0' }, match: /\/AuditEvent/ });
  const requests = h.sandbox.ingest.requests;
  const narrowing = sync(['--until', end], 3);
  await waitUntil('a request to Purview', () => h.sandbox.ingest.requests > requests || undefined);
  const early = await bridge(['state', 'give-up', 'sandbox', '--reason', 'INC-42']).done;
  expect(early.code, early.stderr).toBe(6);
  expect(early.stderr).toContain('BRG_ERR_RUN_IN_PROGRESS');
  const narrowed = await narrowing.done;
  expect(narrowed.code, narrowed.stderr).toBe(5);
  const waiting = h.withStore((s) => s.refusedBlock({ destination: destinationOf(findConnector(h.config, 'sandbox')), source: 'sandbox' }))?.events ?? 0;
  expect(waiting).toBeGreaterThanOrEqual(1);
  expect(waiting).toBeLessThanOrEqual(3);

  const given = await bridge(['state', 'give-up', 'sandbox', '--reason', 'INC-42 value refused by the job']).done;
  expect(given.code, given.stderr).toBe(0);
  expect(given.stdout).toContain(`Gave up ${waiting} event(s)`);
  const twice = await bridge(['state', 'give-up', 'sandbox', '--reason', 'again']).done;
  expect(twice.code, twice.stderr).toBe(0);
  expect(twice.stdout).toMatch(/^Nothing given up: .*was given up at/);

  // The next run (7-row blocks) is killed -9 once Purview took a block; the last one (10) finishes.
  const before = accepted().length;
  h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 0 }, ...Array.from({ length: 10 }, () => ({ kind: 'delay' as const, ms: 400 })));
  const killed = sync(['--until', end], 7);
  await waitUntil('a block acknowledged', () => accepted().length > before || undefined);
  killed.kill('SIGKILL');
  await killed.done;
  h.sandbox.ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '0' });
  const last = await sync(['--until', end], 10).done;
  expect(last.code, last.stderr).toBe(0);
  expect(last.stdout).toMatch(/purview-refused/);

  // The completing run lists the given-up events' rows as rejected, the refused row among them.
  const runs = h.withStore((s) => s.listRuns({ connector: 'sandbox' }));
  const completed = runs.find((r) => r.details?.rejectReasons?.['purview-refused'] !== undefined);
  expect(completed?.state).toBe('completed');
  expect(completed?.details?.rejectReasons?.['purview-refused']).toBeGreaterThanOrEqual(waiting);
  const rejected = givenUpRows(completed?.rejectsPath);
  expect(rejected).toHaveLength(completed?.details?.rejectReasons?.['purview-refused'] as number);
  expect(rejected.map((r) => r.row)).toContain(bad);
  const givenUp = new Set(rejected.map((r) => `${r.eventId}|${r.versionId ?? ''}`));
  expect(givenUp.size).toBe(waiting);
  expect(givenUp.has(badEvent)).toBe(true);
  expect(h.withStore((s) => s.getWatermark('sandbox'))).toBe(end);

  const got = accepted();
  expect(got).not.toContain(bad);
  const rest = expectedRows(
    h.config,
    h.sandbox.dataset,
    events.filter((e) => !givenUp.has(eventClaimKey(e))),
  );
  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  // Only the block in flight at the kill was re-sent flagged, inside the next run's first block of 10.
  expect(flagged.size).toBeLessThanOrEqual(10);
  expectExactlyOnceOrFlagged(got, rest, flagged);

  // A backfill over the same window (a fresh run: no spool to resume) sends nothing again, and its own rejects list the
  // given-up rows once more.
  const backfill = await sync(['--since', start, '--until', end], 50).done;
  expect(backfill.code, backfill.stderr).toBe(0);
  expect(accepted()).toHaveLength(got.length);
  const fresh = h.withStore((s) => s.listRuns({ connector: 'sandbox', limit: 1 })[0]);
  expect(fresh?.backfill).toBe(true);
  expect(givenUpRows(fresh?.rejectsPath)).toEqual(rejected);
  expect(fresh?.details?.rejectReasons?.['purview-refused']).toBe(rejected.length);
});

function givenUpRows(path: string | undefined): Array<{ eventId: string; versionId?: string; row: string }> {
  return readFileSync(path as string, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"purview-refused"'))
    .map((line) => JSON.parse(line) as { eventId: string; versionId?: string; row: string });
}
