/** `bridge sync --json` through the real binary: stdout is exactly one JSON summary, for scripts and the benchmark. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type SandboxHarness } from '../support/sandbox-run.js';

const root = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 5, events: 200, patients: 30, practitioners: 6 } });
});
afterAll(async () => h?.close());

describe('bridge sync --json', () => {
  it('prints only the run summary as one JSON object, with the counts Purview saw and the process cost', async () => {
    const { start, end } = h.sandbox.dataset.options;
    const { stdout } = await run(process.execPath, [resolve(root, 'bin/bridge.js'), 'sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--json'], {
      cwd: root, env: { ...process.env, BRIDGE__logLevel: 'warn' },
    });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0] ?? '') as {
      runId: string; since: string; until: string; counts: { events: number; rows: number; rowsAcked: number; blocksAcked: number };
      process: { peakRssMb: number; cpuUserSeconds: number };
    };
    const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
    expect(summary).toMatchObject({ since: start, until: end, counts: { events: 200, blocksAcked: accepted.length } });
    expect(summary.counts.rows).toBe(accepted.flatMap((block) => block.rows).length);
    expect(summary.counts.rowsAcked).toBe(summary.counts.rows);
    expect(summary.process.peakRssMb).toBeGreaterThan(20);
    expect(summary.process.cpuUserSeconds).toBeGreaterThan(0);
    // Counts and reason codes only: no patient name from the data set appears.
    const names = [...h.sandbox.dataset.patients()].flatMap((p) => p.name?.map((n) => n.family ?? '') ?? []).filter((n) => n.length > 3);
    for (const name of names) expect(stdout).not.toContain(name);
  });
});
