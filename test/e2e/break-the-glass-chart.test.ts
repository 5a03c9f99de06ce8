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

/** The dataset without the given patients: what the rows are mapped against when their charts are refused. */
function without(dataset: GeneratedDataset, ids: ReadonlySet<string>): GeneratedDataset {
  return {
    ...dataset,
    *patients() {
      for (const patient of dataset.patients()) if (!ids.has(patient.id ?? '')) yield patient;
    },
  };
}

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
  const expected = expectedRows(h.config, without(dataset, new Set([restricted])), dataset.events());
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

it('a dozen restricted charts asked before any readable one do not stop the run: judged once every lookup has answered', async () => {
  // One request at a time, and the first twelve charts asked alone are refused: before, their refusals came back before
  // any chart read, the tenth stopped the run as "every chart refused", and each run over the window stopped the same way.
  const own = await startHarness({ data: { seed: 82, events: 240, patients: 20, practitioners: 5 }, flags: { 'connectors.0.fhir.concurrency': 1 } });
  try {
    const faults = own.sandbox.fhir.faults;
    faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\?_id=[^&]*%2C/, times: 10_000 }); // a list naming one of them
    faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\?_id=[^&%]+&/, times: 12 });

    const summary = await own.sync();

    const refused = new Set(
      faults.fired.flatMap((fault) => (fault.target.includes('%2C') ? [] : [new URLSearchParams(fault.target.split('?')[1]).get('_id') ?? ''])),
    );
    expect(refused.size).toBe(12);
    const dataset = own.sandbox.dataset;
    const expected = expectedRows(own.config, without(dataset, refused), dataset.events());
    const rows = own.sandbox.ingest.accepted(own.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(expectExactlyOnceOrFlagged(rows, expected, new Set()).duplicates).toBe(0);
    expect(summary.counts.rowsAcked).toBe(expected.lines.length);
    expect(own.logLines.filter((line) => line.includes('"outcome":"break-the-glass"'))).toHaveLength(12);
  } finally {
    await own.close();
  }
});
