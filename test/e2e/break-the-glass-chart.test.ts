/**
 * A chart the EHR restricts under Break-the-Glass (Epic answers a background user's lookup of it with 403 and
 * OperationOutcome 4130): the sync goes on, the events that name it are mapped with what they say of the patient (no
 * MRN or address: the patient counts as not found), every other row is as usual, and the log says why without naming
 * the chart. Before, the 403 stopped every run over that window, for good.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GeneratedDataset } from '../../src/sandbox/generator.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 81, events: 240, patients: 20, practitioners: 5 } });
});
afterAll(async () => h?.close());

it('a restricted chart counts as not found for the run; its events still make their rows; every row once', async () => {
  const dataset = h.sandbox.dataset;
  const restricted = dataset.patientAt(3).id as string;
  const naming = Array.from({ length: dataset.options.events }, (_, i) => dataset.describeEvent(i)).filter((d) => d.patientIds.includes(restricted));
  expect(naming.length).toBeGreaterThan(0);
  // Its read and every `_id` list that names it are refused, as Epic refuses the chart to the background user.
  h.sandbox.fhir.faults.add({
    action: { kind: 'break-the-glass' },
    match: new RegExp(`/Patient(/${restricted}$|\\?.*_id=([^&]*%2C)?${restricted}(%2C|&|$))`),
    times: 10_000,
  });

  const summary = await h.sync();

  expect(h.sandbox.fhir.faults.fired.length).toBeGreaterThanOrEqual(2); // its list, then it alone
  const withoutIt: GeneratedDataset = {
    ...dataset,
    *patients() {
      for (const patient of dataset.patients()) if (patient.id !== restricted) yield patient;
    },
  };
  const expected = expectedRows(h.config, withoutIt, dataset.events());
  const rows = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
  expect(
    expectExactlyOnceOrFlagged(
      rows,
      expected,
      h.withStore((s) => flaggedEvents(s, h.config)),
    ).duplicates,
  ).toBe(0);
  expect(rows.length).toBe(expected.lines.length);
  expect(summary.counts.rowsAcked).toBe(expected.lines.length);
  const warning = h.logLines.find((line) => line.includes('"outcome":"break-the-glass"'));
  expect(warning).toBeDefined();
  for (const line of h.logLines) expect(line.includes(restricted), 'a log line names the restricted chart').toBe(false);
});
