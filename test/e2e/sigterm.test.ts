/**
 * SIGTERM mid-push, then restart: the CLI finishes the block in flight, stops at that checkpoint (exit 130,
 * BRG_ERR_ABORTED), and the next `bridge sync` resumes the push so every row arrives exactly once.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnBridge } from '../support/bridge-process.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 21, events: 300, patients: 50, practitioners: 8 } });
});
afterAll(async () => h?.close());

const bridge = (args: string[]) => spawnBridge(args, { BRIDGE__connectors__0__purview__blockRows: '40' });

describe('SIGTERM mid-push, then restart', () => {
  it('stops at a block checkpoint and the rerun delivers every row once', async () => {
    const { start, end } = h.sandbox.dataset.options;
    const args = ['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress'];
    // Slow blocks, so the signal lands while a block is in flight.
    h.sandbox.ingest.injectFaults(...Array.from({ length: 20 }, () => ({ kind: 'delay' as const, ms: 400 })));
    let signalled = false;
    const first = bridge(args);
    // The first block acknowledged, as the run's event log records it (the output has no line per block: issue #17.4).
    const runs = join(h.config.stateDir, 'runs');
    const acked = (): boolean => existsSync(runs) && readdirSync(runs).some((f) => readFileSync(join(runs, f), 'utf8').includes('"eventId":"block_acked"'));
    const deadline = Date.now() + 30_000;
    while (!acked() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    signalled = acked();
    first.kill('SIGTERM');
    const stopped = await first.done;
    expect(signalled).toBe(true);
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toContain('BRG_ERR_ABORTED');
    const acceptedAfterStop = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
    expect(acceptedAfterStop.length).toBeGreaterThanOrEqual(2); // block 0 and the block in flight when the signal came
    expect(h.withStore((s) => s.findUnfinishedRun('sandbox')?.state)).toBe('pushing');

    h.sandbox.ingest.injectFaults();
    // The plain incremental command: it resumes the unfinished push, then pulls from the watermark (nothing new here).
    const rerun = await bridge(['sync', '--config', h.sandbox.configPath, '--no-progress']).done;
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/\(resumed\) run/);
    const rows = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(new Set(rows).size).toBe(rows.length);
    const resumedRun = h.withStore((s) => s.listRuns({ connector: 'sandbox' })).find((r) => r.state === 'completed' && r.counts.rows > 0);
    expect(rows.length).toBe(resumedRun?.counts.rows);
    expect(resumedRun?.counts.possiblyDuplicated).toBe(0);
  });
});
