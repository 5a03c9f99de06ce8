/**
 * The exactly-once promise under everything at once (issue #14): ten or more rounds of real `bridge sync` processes
 * against the sandbox, chosen by a seeded generator — kill -9 at random points (during the pull, after a block, with a
 * block in flight), SIGTERM, the spool lost as if the next run were on another machine, the block size changed between
 * runs, --until asked inside a second (other milliseconds by the run that finishes a killed one), two processes
 * started together, late events arriving in the overlap, and faults on both sides (FHIR 429/503
 * and search-session expiry; Purview 503, reset before or after accepting, slow answers). At the end every row the
 * events produce is in Purview exactly once, or more than once only where the bridge flagged it possibly duplicated.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FaultAction } from '../../src/sandbox/fhir-server.js';
import { Rng } from '../../src/sandbox/generator-random.js';
import type { IngestFault } from '../../src/sandbox/purview-ingest.js';
import { type BridgeProcess, spawnBridge } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { blocksAcked, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const SEED = 20261206;
const ROUNDS = 10;
const HOUR = 3_600_000;
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 61, events: 420, patients: 60, practitioners: 8 } });
});
afterAll(async () => h?.close());

function bridgeSync(until: string, blockRows: number): BridgeProcess {
  return spawnBridge(['sync', '--config', h.sandbox.configPath, '--until', until, '--no-progress'], {
    BRIDGE__connectors__0__purview__blockRows: String(blockRows),
    BRIDGE__connectors__0__fhir__pageSize: '40',
  });
}

/** `ms` as an ISO instant, half the time with milliseconds inside its second (never a later second). */
function withMillis(ms: number, rng: Rng): string {
  return new Date(ms + (rng.next() < 0.5 ? 1 + rng.int(999) : 0)).toISOString();
}

async function waitFor(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** Runs until the process exits 0 (a last clean run after whatever the round did). */
async function completes(until: string, blockRows: number): Promise<void> {
  const result = await bridgeSync(until, blockRows).done;
  expect(result.code, result.stderr).toBe(0);
}

const INGEST_FAULTS: IngestFault[] = [
  { kind: 'status', status: 503, retryAfter: '0' },
  { kind: 'accept-then-reset' },
  { kind: 'reset-before-accept' },
  { kind: 'delay', ms: 150 },
  { kind: 'status', status: 500 },
];
const FHIR_FAULTS: FaultAction[] = [{ kind: 'status', status: 429, retryAfter: '0' }, { kind: 'status', status: 503 }, { kind: 'search-expired' }];

it(`delivers every row exactly once or flagged over ${ROUNDS} randomised rounds (seed ${SEED})`, async () => {
  const rng = new Rng(SEED);
  const { start } = h.sandbox.dataset.options;
  const template = [...h.sandbox.dataset.events()].find(
    (e) => e.outcome === '0' && (e.entity ?? []).some((x) => x.what?.reference?.startsWith('Patient/')),
  ) as AuditEvent;
  const late: AuditEvent[] = [];
  const log: string[] = [];
  // Rows a correct bridge may send twice: those of the block in flight when a process was stopped (its answer lost);
  // the emulator adds those of blocks stored under a fault that lost the answer. A ledger that re-sends what Purview
  // acknowledged (and flags it) sends far more.
  let inFlightRows = 0;
  let until = Date.parse(start);
  for (let round = 1; round <= ROUNDS; round++) {
    until += 2.4 * HOUR;
    // Half the rounds ask for an end inside a second (…:00.456): the window ends on its whole second, so the run
    // that finishes a killed one (asked with other milliseconds) has the same window, and the next starts there.
    const untilIso = withMillis(until, rng);
    const blockRows = rng.pick([3, 7, 20, 100_000]);
    // Late events: recorded inside the overlap of the last window (they must still arrive, once).
    if (rng.next() < 0.5) {
      const at = until - 2.4 * HOUR - rng.int(14 * 60_000);
      const event = {
        ...structuredClone(template),
        id: `late-${round}`,
        meta: { versionId: '1', lastUpdated: new Date(at).toISOString() },
        recorded: new Date(at).toISOString(),
      };
      late.push(event);
      await h.sandbox.store?.load([event]);
    }
    for (let i = rng.int(3); i > 0; i--) h.sandbox.ingest.injectFaults(rng.pick(INGEST_FAULTS));
    if (rng.next() < 0.5) h.sandbox.fhir.faults.add({ action: rng.pick(FHIR_FAULTS), match: /AuditEvent\?/ });
    const action = rng.pick(['complete', 'kill9', 'kill9-elsewhere', 'sigterm', 'two'] as const);
    log.push(`round ${round}: ${action}, ${blockRows}-row blocks, until ${untilIso}`);
    if (action === 'complete') {
      await completes(untilIso, blockRows);
    } else if (action === 'two') {
      h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 400 });
      const [a, b] = [bridgeSync(untilIso, blockRows), bridgeSync(withMillis(until, rng), rng.pick([5, 100_000]))];
      const results = await Promise.all([a.done, b.done]);
      const codes = results.map((r) => r.code).sort();
      log.push(`  exit codes ${codes.join(', ')}`);
      // Both may pass when one finished before the other began; never both pushing at once.
      expect([
        [0, 0],
        [0, 6],
      ]).toContainEqual(codes);
      for (const r of results.filter((x) => x.code === 6))
        expect(r.stderr).toMatch(/BRG_ERR_RUN_IN_PROGRESS: A sync of connector "sandbox" is already running: bridge sync \(pid \d+ on /);
      await completes(untilIso, blockRows);
    } else {
      const ackedBefore = blocksAcked(h);
      const child = bridgeSync(untilIso, blockRows);
      const afterBlocks = rng.int(3);
      const delayMs = rng.int(1500);
      // A random point: after some blocks were acknowledged, or after a random delay (pulling, or a block in flight).
      await Promise.race([waitFor(() => blocksAcked(h) - ackedBefore > afterBlocks, 20_000), new Promise((r) => setTimeout(r, delayMs))]);
      child.kill(action === 'sigterm' ? 'SIGTERM' : 'SIGKILL');
      const result = await child.done;
      log.push(`  stopped: code ${result.code} signal ${result.signal}`);
      // A SIGTERM lets the block in flight finish (its answer recorded); a kill -9 may leave it unknown. A request
      // whose body went out before the kill is stored a moment later, if at all (a delay fault holds it up to 150 ms):
      // the last block stored once nothing has changed for 400 ms.
      if (action !== 'sigterm') {
        let stored = -1;
        while (stored !== h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length) {
          stored = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length;
          await new Promise((r) => setTimeout(r, 400));
        }
        inFlightRows += h.sandbox.ingest.accepted(h.sandbox.ids.jobId).at(-1)?.rowCount ?? 0;
      }
      if (action === 'kill9-elsewhere') rmSync(join(h.config.stateDir, 'spool'), { recursive: true, force: true });
      await completes(withMillis(until, rng), rng.pick([3, 7, 20, 100_000]));
    }
    h.sandbox.fhir.faults.clear();
  }
  h.sandbox.ingest.injectFaults();
  await completes(new Date(until + HOUR + 999).toISOString(), 100_000);

  const events = [...h.sandbox.dataset.events(), ...late].filter((e) => Date.parse(e.recorded) < until);
  const flagged = h.withStore((s) => flaggedEvents(s, h.config));
  const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
  const { duplicates } = expectExactlyOnceOrFlagged(accepted, expectedRows(h.config, h.sandbox.dataset, events), flagged);
  const allowed = inFlightRows + h.sandbox.ingest.lostAnswerRows(h.sandbox.ids.jobId);
  log.push(`rows accepted ${accepted.length}, duplicates ${duplicates} (all flagged, at most ${allowed}), flagged events ${flagged.size}`);
  expect(duplicates).toBeLessThanOrEqual(allowed);
  // The state is consistent: no run left unfinished, the watermark at the last run's end.
  expect(h.withStore((s) => s.findUnfinishedRun('sandbox'))).toBeUndefined();
  expect(h.withStore((s) => s.getWatermark('sandbox'))).toBe(new Date(until + HOUR).toISOString());
  console.log(log.join('\n'));
});
