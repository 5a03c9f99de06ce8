/**
 * A host whose clock runs ahead of the EHR's ends its windows at instants the EHR has not reached: events the EHR then
 * records with earlier times fall before the next window, and no run reads them. The bridge here runs ahead of the
 * sandbox's FHIR server (whose answers carry the real time in their Date header): by more than fhir.overlapMinutes the
 * run is refused at its first page, before anything is pushed; the watermark stays, and with the clock set right the
 * same window is read whole. By less, the overlap absorbs it and the run goes ahead.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../src/clock.js';
import { BridgeError } from '../../src/errors.js';
import { expectExactlyOnceOrFlagged, expectedRows } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let aheadMs = 0;
const clock: Clock = { now: () => Date.now() + aheadMs, sleep: (ms, signal) => systemClock.sleep(ms, signal) };
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 79, events: 80, patients: 12, practitioners: 4 }, clock });
});
afterAll(async () => h?.close());

const accepted = (): string[] => h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);

it('refuses a window ending past the FHIR server’s clock by more than the overlap; set right, the same window is read whole', async () => {
  const { start } = h.sandbox.dataset.options;
  // 40 minutes ahead (the sandbox's overlap is 15, its settle delay 0): the window would end 40 minutes in the EHR's future.
  aheadMs = 40 * 60_000;
  const refused = await h.sync({ since: start, until: undefined }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(BridgeError);
  expect(refused).toMatchObject({ code: 'BRG_ERR_CLOCK_AHEAD', message: expect.stringContaining('ahead of the FHIR server') });
  expect((refused as BridgeError).message).toMatch(/about (40|41) minute\(s\) ahead/);
  expect(accepted()).toEqual([]);
  expect(h.withStore((s) => s.getWatermark('sandbox'))).toBeUndefined();
  const [run] = h.withStore((s) => s.listRuns({ connector: 'sandbox' }));
  expect(run).toMatchObject({ state: 'failed', error: { code: 'BRG_ERR_CLOCK_AHEAD' } });
  expect(run?.counts.events).toBe(0);

  // Ten minutes ahead: within the overlap, which the next window reads again. The run goes ahead.
  aheadMs = 10 * 60_000;
  const within = await h.sync({ since: start, until: undefined });
  expect(within.counts.events).toBe([...h.sandbox.dataset.events()].length);
  // Set right, the next run reads on from there; every row once.
  aheadMs = 0;
  await h.sync({ since: undefined, until: undefined });
  expectExactlyOnceOrFlagged(accepted(), expectedRows(h.config, h.sandbox.dataset, h.sandbox.dataset.events()), new Set());
});
