/**
 * SIGTERM while a block hangs: `bridge sync` waits for the block in flight only as long as server.shutdownGraceMs, then
 * aborts it (as a second signal would) and releases its lease. Before, it waited for the block however long it took
 * (up to purview.timeoutMs), so a supervisor's SIGKILL ended it holding the lease, and on another host (the next pod
 * of a Kubernetes Job) the connector stayed locked, every retry exiting 6, until the lease expired.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectorLeaseName } from '../../src/sync/lease.js';
import { type BridgeExit, spawnBridge, until } from '../support/bridge-process.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 31, events: 120, patients: 20, practitioners: 4 } });
});
afterAll(async () => h?.close());

const GRACE_MS = 1_500;
/** Start-up of nothing new: the abort, closing the state database, and the process exit. */
const MARGIN_MS = 8_000;
const env = { BRIDGE__connectors__0__purview__blockRows: '40', BRIDGE__server__shutdownGraceMs: String(GRACE_MS) };

describe('bridge sync: SIGTERM while a block hangs', () => {
  it('exits within server.shutdownGraceMs, with its lease released, and the next sync runs', async () => {
    const { start, end } = h.sandbox.dataset.options;
    const args = ['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress'];
    // Every block answers only after a minute: far longer than the grace period.
    h.sandbox.ingest.injectFaults(...Array.from({ length: 5 }, () => ({ kind: 'delay' as const, ms: 60_000 })));
    const first = spawnBridge(args, env);
    try {
      await until('a block in flight', () => (h.sandbox.ingest.requests > 0 ? true : undefined), 30_000);
      const signalledAt = Date.now();
      first.kill('SIGTERM');
      const stopped = await Promise.race([first.done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), GRACE_MS + MARGIN_MS))]);
      expect(stopped, `still running ${GRACE_MS + MARGIN_MS} ms after SIGTERM:\n${first.stderr()}`).toBeDefined();
      const exit = stopped as BridgeExit;
      expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(GRACE_MS);
      expect(exit.code, exit.stderr).toBe(130);
      expect(exit.stderr).toContain('BRG_ERR_ABORTED');
      expect(exit.stderr).toContain('server.shutdownGraceMs');
    } finally {
      first.kill('SIGKILL');
      await first.done;
    }
    // Released, not merely stale: a process of this host that is gone is stale at once, but a holder on another host
    // (the next pod of a Job) could not tell, and would be refused until the lease expired.
    expect(h.withStore((store) => store.readLease(connectorLeaseName('sandbox')))).toBeUndefined();
    const elsewhere = { id: 'pod-2', host: `${hostname()}-other-pod`, pid: 1, command: 'bridge sync', since: new Date().toISOString() };
    const taken = h.withStore((store) => {
      const outcome = store.acquireLease(connectorLeaseName('sandbox'), elsewhere, 120_000, () => false);
      if (outcome.acquired) store.releaseLease(connectorLeaseName('sandbox'), elsewhere.id);
      return outcome.acquired;
    });
    expect(taken, 'another host takes the connector at once').toBe(true);

    h.sandbox.ingest.injectFaults();
    const rerun = await spawnBridge(['sync', '--config', h.sandbox.configPath, '--no-progress'], env).done;
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/\(resumed\) run/);
    const rows = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(new Set(rows).size).toBe(rows.length);
  }, 90_000);
});
