/**
 * End to end through the sandbox: the sandbox (generated backend, streaming) runs in this process, the bridge in a
 * child process whose wall time and peak RSS are measured. Also checks the FHIR request count against the bound
 * ⌈E/S⌉ + ⌈U/50⌉ + ⌈P/50⌉ + 5 of the pull issue.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { writeFileSync } from 'node:fs';
import { startSandbox } from '../src/sandbox/index.js';

const run = promisify(execFile);

/**
 * The V8 flags the bridge ships with (Dockerfile ENTRYPOINT, compose, npm scripts; test/ops/compose.test.ts keeps
 * them equal): an old-space cap, since V8 otherwise grows the heap lazily far past the live set, and small semi-spaces.
 */
export const BRIDGE_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=4';

export interface E2eResult {
  events: number; patients: number; practitioners: number; rows: number; rowsAcked: number;
  seconds: number; maxRssMb: number; fhirRequests: number; fhirRequestBound: number; pageSize: number;
}

/** Compiles src/ to dist/ (the shipped form the child runs); cheap when nothing changed. */
export function buildDist(): void {
  const root = resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', resolve(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}

export async function runE2eBench(size: { events: number; patients: number; practitioners: number; pageSize?: number; childNodeOptions?: string; cacheSize?: number }): Promise<E2eResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-bench-'));
  const pageSize = size.pageSize ?? 1000;
  const sandbox = await startSandbox({
    dir, backend: 'generated', ingestRecord: 'count',
    data: { seed: 1, events: size.events, patients: size.patients, practitioners: size.practitioners },
  });
  try {
    const config = structuredClone(sandbox.config) as unknown as { connectors: Array<Record<string, Record<string, unknown>>> };
    const connector = config.connectors[0] as Record<string, Record<string, unknown>>;
    Object.assign(connector['fhir'] as object, { pageSize, concurrency: 4, requestsPerSecond: 1000, maxResultsPerSlice: 10_000_000, ...(size.cacheSize ? { referenceCacheSize: size.cacheSize } : {}) });
    const configPath = join(dir, 'bench.config.yaml');
    writeFileSync(configPath, stringify(config), { mode: 0o600 });
    const { start, end } = sandbox.dataset.options;
    const child = resolve(import.meta.dirname, 'sync-child.mjs');
    const { stdout } = await run(process.execPath, [child, configPath, start, end], { maxBuffer: 1 << 20, env: { ...process.env, NODE_OPTIONS: size.childNodeOptions ?? BRIDGE_NODE_OPTIONS } });
    const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { seconds: number; maxRssMb: number; fhirRequests: number; counts: { rows: number; rowsAcked: number } };
    return {
      events: size.events, patients: size.patients, practitioners: size.practitioners, pageSize, rows: result.counts.rows, rowsAcked: result.counts.rowsAcked, seconds: result.seconds, maxRssMb: result.maxRssMb,
      fhirRequests: result.fhirRequests,
      fhirRequestBound: Math.ceil(size.events / pageSize) + Math.ceil(size.patients / 50) + Math.ceil(size.practitioners / 50) + 5,
    };
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
