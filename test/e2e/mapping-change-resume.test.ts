/**
 * A push refused after the mapping changed must not hold the connector for good. The job takes one header: a run
 * under another delimiter is refused (400) and stays unfinished; its spool keeps that header, so resuming it as it is
 * would be refused at every run, even after the setting is put back. The resume now sees the spool was written with
 * another header, closes the run and pulls its window again under the current mapping: every row once, none flagged.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BridgeError } from '../../src/errors.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 71, events: 200, patients: 30, practitioners: 5 }, flags: { 'connectors.0.purview.blockRows': 25 } });
});
afterAll(async () => h?.close());

it('a run refused after a delimiter change is pulled again once the setting is put back, not re-pushed with the refused header', async () => {
  const { start, end } = h.sandbox.dataset.options;
  const middle = new Date((Date.parse(start) + Date.parse(end)) / 2).toISOString();
  await h.sync({ since: start, until: middle });

  const refused = await h.sync({ since: undefined, until: end, flags: { 'connectors.0.mapping.delimiter': 'pipe' } }).catch((e: unknown) => e);
  expect((refused as BridgeError).code).toBe('BRG_ERR_PURVIEW_REJECTED');
  expect(h.withStore((s) => s.findUnfinishedRun('sandbox')?.state)).toBe('pushing');

  // The setting is put back: the unfinished run is closed (its spool has the pipe header) and its window pulled again.
  const again = await h.sync({ since: undefined, until: end });
  expect(again.counts.rowsAcked).toBe(again.counts.rows);
  const runs = h.withStore((s) => s.listRuns({ connector: 'sandbox' }));
  expect(runs.map((r) => r.state)).toEqual(['completed', 'failed', 'completed']);
  expect(runs[1]?.error?.message).toContain('its spool was written with another header');
  const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
  expect(new Set(accepted.map((b) => b.delimiter))).toEqual(new Set(['tab']));
  const events: AuditEvent[] = [...h.sandbox.dataset.events()];
  // No answer was lost (a 400 is Purview taking nothing): not one row twice, and none flagged.
  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  expect(flagged.size).toBe(0);
  const { duplicates } = expectExactlyOnceOrFlagged(
    accepted.flatMap((b) => b.rows),
    expectedRows(h.config, h.sandbox.dataset, events),
    flagged,
  );
  expect(duplicates).toBe(0);
});
