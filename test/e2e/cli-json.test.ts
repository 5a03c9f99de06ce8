/** `bridge sync --json` through the real binary: stdout is exactly one JSON summary, for scripts and the benchmark. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

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
    const { stdout } = await run(
      process.execPath,
      [resolve(root, 'bin/bridge.js'), 'sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--json'],
      {
        cwd: root,
        env: { ...process.env, BRIDGE__logLevel: 'warn' },
      },
    );
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0] ?? '') as {
      runId: string;
      since: string;
      until: string;
      counts: { events: number; rows: number; rowsAcked: number; blocksAcked: number };
      process: { peakRssMb: number; cpuUserSeconds: number };
      fill: { rows: number; columns: Array<{ column: string; empty: number }> };
      fillWarnings: unknown[];
    };
    const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
    expect(summary).toMatchObject({ since: start, until: end, counts: { events: 200, blocksAcked: accepted.length } });
    expect(summary.counts.rows).toBe(accepted.flatMap((block) => block.rows).length);
    expect(summary.counts.rowsAcked).toBe(summary.counts.rows);
    expect(summary.process.peakRssMb).toBeGreaterThan(20);
    expect(summary.process.cpuUserSeconds).toBeGreaterThan(0);
    // Issue #15.1: the fill of every mandatory and key column, in the summary (and the run record).
    expect(summary.fill.rows).toBe(summary.counts.rows);
    expect(summary.fill.columns.find((c) => c.column === 'PATIENT.PAT_MRN_ID')).toEqual({
      column: 'PATIENT.PAT_MRN_ID',
      empty: 0,
      mandatory: false,
      watched: true,
    });
    expect(summary.fillWarnings).toEqual([]);
    expect(h.withStore((s) => s.getRun(summary.runId))?.details?.fill).toEqual(summary.fill);
    // Counts and reason codes only: no patient name from the data set appears.
    const names = [...h.sandbox.dataset.patients()].flatMap((p) => p.name?.map((n) => n.family ?? '') ?? []).filter((n) => n.length > 3);
    for (const name of names) expect(stdout).not.toContain(name);
  });
});

describe('column fill warnings', () => {
  let fresh: SandboxHarness;
  beforeAll(async () => {
    fresh = await startHarness({ data: { seed: 6, events: 150, patients: 30, practitioners: 6 } });
  });
  afterAll(async () => fresh?.close());

  it('warn in the summary and the log, naming the column and the site option, when more than 5% of a key column is empty', async () => {
    // A fifth of the patients lose every identifier, as when a site's MRN sits under a type the mapping does not know.
    const patients = [...fresh.sandbox.dataset.patients()].filter((_, i) => i % 5 === 0).map((p) => ({ ...p, identifier: [] }));
    await fresh.sandbox.store?.load(patients);
    const { start, end } = fresh.sandbox.dataset.options;
    const { stdout, stderr } = await run(
      process.execPath,
      [resolve(root, 'bin/bridge.js'), 'sync', '--config', fresh.sandbox.configPath, '--since', start, '--until', end, '--no-progress'],
      {
        cwd: root,
        env: { ...process.env, BRIDGE__logLevel: 'warn' },
      },
    );
    expect(stdout).toMatch(/warning: PATIENT\.PAT_MRN_ID is empty in \d+(\.\d)?% of rows \(\d+ of \d+\); set mapping\.options\.mrnSystems/);
    expect(stderr).toContain('"column":"PATIENT.PAT_MRN_ID"');
    const record = fresh.withStore((s) => s.listRuns({ connector: 'sandbox' }))[0];
    expect(record?.details?.fill?.columns.find((c) => c.column === 'PATIENT.PAT_MRN_ID')?.empty).toBeGreaterThan(0);
  });
});
