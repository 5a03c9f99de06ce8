/**
 * End to end through the sandbox: the sandbox (generated backend, streaming) runs in this process, the bridge in a
 * child process, `bridge sync --json` of the compiled CLI, whose wall time (measured here, start-up included) and peak
 * RSS (its own summary) are taken. The sandbox counts the FHIR requests it served, for the bound
 * ⌈E/S⌉ + ⌈U/50⌉ + ⌈P/50⌉ + 5 of the pull issue (P: the users with a Practitioner), plus I + min(⌊I/2⌋, passes +
 * ⌈I/50⌉) for the I users without one (named by identifier: one search of its own each, and a list search per 50 new
 * ones in a prefetch pass that meets two or more, as test/e2e/request-bound.test.ts explains).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { startSandbox } from '../src/sandbox/index.js';

const run = promisify(execFile);

/**
 * The V8 flags the bridge ships with (Dockerfile ENTRYPOINT, compose, npm scripts; test/ops/compose.test.ts keeps
 * them equal): an old-space cap, since V8 otherwise grows the heap lazily far past the live set, and small semi-spaces.
 */
export const BRIDGE_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=4';

export interface E2eResult {
  events: number;
  patients: number;
  practitioners: number;
  rows: number;
  rowsAcked: number;
  seconds: number;
  maxRssMb: number;
  fhirRequests: number;
  fhirRequestBound: number;
  pageSize: number;
}

/** Compiles src/ to dist/ (the shipped form the benchmark runs). */
export function buildDist(): void {
  const root = resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', resolve(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}

export async function runE2eBench(size: {
  events: number;
  patients: number;
  practitioners: number;
  pageSize?: number;
  childNodeOptions?: string;
  cacheSize?: number;
}): Promise<E2eResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-bench-'));
  const pageSize = size.pageSize ?? 1000;
  const sandbox = await startSandbox({
    dir,
    backend: 'generated',
    ingestRecord: 'count',
    data: { seed: 1, events: size.events, patients: size.patients, practitioners: size.practitioners },
  });
  try {
    const config = structuredClone(sandbox.config) as unknown as { connectors: Array<Record<string, Record<string, unknown>>> };
    const connector = config.connectors[0] as Record<string, Record<string, unknown>>;
    Object.assign(connector['fhir'] as object, {
      pageSize,
      concurrency: 4,
      requestsPerSecond: 1000,
      maxResultsPerSlice: 10_000_000,
      ...(size.cacheSize ? { referenceCacheSize: size.cacheSize } : {}),
    });
    const configPath = join(dir, 'bench.config.yaml');
    writeFileSync(configPath, stringify(config), { mode: 0o600 });
    const { start, end } = sandbox.dataset.options;
    // The bridge as shipped: the compiled CLI (dist/, as in the Docker image) with the V8 flags it ships with.
    const cli = resolve(import.meta.dirname, '../dist/cli/main.js');
    const flags = (size.childNodeOptions ?? BRIDGE_NODE_OPTIONS).split(' ').filter(Boolean);
    const requestsBefore = sandbox.fhir.requests.length;
    let staff = 0;
    for (let i = 0; i < size.practitioners; i += 1) if (sandbox.dataset.practitionerAt(i) === undefined) staff += 1;
    // The bridge's default fhir.prefetchEvents: one reference prefetch pass per 2,000 events (and one more at the end).
    const passes = Math.ceil(size.events / 2000) + 1;
    const started = performance.now();
    const { stdout } = await run(process.execPath, [...flags, cli, 'sync', '--config', configPath, '--since', start, '--until', end, '--json'], {
      maxBuffer: 1 << 20,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const seconds = (performance.now() - started) / 1000;
    const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { counts: { rows: number; rowsAcked: number }; process: { peakRssMb: number } };
    return {
      events: size.events,
      patients: size.patients,
      practitioners: size.practitioners,
      pageSize,
      rows: result.counts.rows,
      rowsAcked: result.counts.rowsAcked,
      seconds,
      maxRssMb: result.process.peakRssMb,
      fhirRequests: sandbox.fhir.requests.length - requestsBefore,
      fhirRequestBound:
        Math.ceil(size.events / pageSize) +
        Math.ceil(size.patients / 50) +
        Math.ceil((size.practitioners - staff) / 50) +
        5 +
        staff +
        Math.min(Math.floor(staff / 2), passes + Math.ceil(staff / 50)),
    };
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
