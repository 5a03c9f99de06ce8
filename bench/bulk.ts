/**
 * The bulk-export source against its plainest baseline, both in child processes with the V8 flags the bridge ships
 * with, against the sandbox's `$export` over the generated data (in this process, serving every export alike):
 * - source: the connector's EventSource as the composition root builds it, read to the end — kick-off, polls,
 *   manifest, downloads to disk, the lookup files indexed, every AuditEvent line parsed, checked and paged — timed
 *   by the child itself from the kick-off to the DELETE; its peak RSS.
 * - baseline: GET each file of a completed export of the same request and JSON.parse every line (nothing else).
 * ratio = source / baseline, best of ROUNDS alternating rounds. Goal ≤ 1.5×, and a whole `bridge sync` with this
 * source (the compiled CLI, as e2e.ts runs it) within 300 MB peak RSS at 1M events.
 * Run directly (after `npm run build`): `npx tsx bench/bulk.ts [--events N] [--per-file N] [--gzip] [--sync]` prints the results as JSON.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { systemClock } from '../src/clock.js';
import { buildSmartTokenSource, findConnector } from '../src/composition/index.js';
import { type ConfigInput, loadConfig } from '../src/config/index.js';
import { silentLogger } from '../src/log.js';
import { type Sandbox, startSandbox } from '../src/sandbox/index.js';
import { SyncEvents } from '../src/sync/events.js';
import { BRIDGE_NODE_OPTIONS } from './e2e.js';

const run = promisify(execFile);
const ROUNDS = 2;

export interface BulkSize {
  events: number;
  patients: number;
  practitioners: number;
  cacheSize: number;
  gzip?: boolean;
  resourcesPerFile?: number;
}

export interface BulkBenchResult {
  events: number;
  files: number;
  sourceMs: number;
  baselineMs: number;
  /** sourceMs / baselineMs. */
  ratio: number;
  sourcePeakRssMb: number;
  baselinePeakRssMb: number;
}

export interface BulkSyncResult {
  events: number;
  rows: number;
  rowsAcked: number;
  seconds: number;
  maxRssMb: number;
}

interface ChildReport {
  ms: number;
  lines: number;
  peakRssMb: number;
}

/** The sandbox's connector switched to the bulk-export source, written as a config file for the children. */
function bulkConfig(sandbox: Sandbox, dir: string, size: BulkSize): string {
  const config = structuredClone(sandbox.config) as unknown as { connectors: Array<Record<string, unknown>> } & ConfigInput;
  const connector = config.connectors[0] as Record<string, Record<string, unknown>>;
  connector['source'] = { type: 'bulk-export', pollMinSeconds: 1 };
  Object.assign(connector['fhir'] as object, { referenceCacheSize: size.cacheSize });
  const path = join(dir, 'bulk.config.yaml');
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}

async function startBulkSandbox(dir: string, size: BulkSize): Promise<Sandbox> {
  const sandbox = await startSandbox({
    dir,
    backend: 'generated',
    ingestRecord: 'count',
    data: { seed: 1, events: size.events, patients: size.patients, practitioners: size.practitioners },
  });
  Object.assign(sandbox.fhir.bulk.settings, { processingPolls: 0, gzip: size.gzip ?? false, resourcesPerFile: size.resourcesPerFile ?? 100_000 });
  return sandbox;
}

export async function runBulkBench(size: BulkSize): Promise<BulkBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-bulk-bench-'));
  const sandbox = await startBulkSandbox(dir, size);
  try {
    const configPath = bulkConfig(sandbox, dir, size);
    const config = loadConfig({ path: configPath, env: {} });
    const tokens = buildSmartTokenSource(
      { env: {}, clock: systemClock, logger: silentLogger(), events: new SyncEvents(), config },
      findConnector(config, 'sandbox'),
    );
    let source: ChildReport | undefined;
    let baseline: ChildReport | undefined;
    let files = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const urls = await completedExport(sandbox, await tokens.getToken());
      files = urls.length;
      const b = await child('baseline', { urls, gzip: size.gzip ?? false }, { BENCH_TOKEN: await tokens.getToken() });
      const s = await child('source', { configPath, stateDir: join(dir, `state-${round}`) }, {});
      if (s.lines !== size.events) throw new Error(`the source read ${s.lines} events, expected ${size.events}`);
      // Users without a provider record have no Practitioner to export.
      const exported = size.events + size.patients + [...sandbox.dataset.practitioners()].length;
      if (b.lines !== exported) throw new Error(`the baseline read ${b.lines} lines, the export holds ${exported}`);
      baseline = !baseline || b.ms < baseline.ms ? b : baseline;
      source = !source || s.ms < source.ms ? s : source;
    }
    if (!source || !baseline) throw new Error('no round ran');
    return {
      events: size.events,
      files,
      sourceMs: Math.round(source.ms),
      baselineMs: Math.round(baseline.ms),
      ratio: Math.round((source.ms / baseline.ms) * 100) / 100,
      sourcePeakRssMb: Math.round(source.peakRssMb),
      baselinePeakRssMb: Math.round(baseline.peakRssMb),
    };
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A whole `bridge sync --json` with the bulk-export source, the compiled CLI as shipped (after buildDist()). */
export async function runBulkSyncBench(size: BulkSize): Promise<BulkSyncResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-bulk-sync-bench-'));
  const sandbox = await startBulkSandbox(dir, size);
  try {
    const configPath = bulkConfig(sandbox, dir, size);
    const cli = resolve(import.meta.dirname, '../dist/cli/main.js');
    const started = performance.now();
    const { stdout } = await run(process.execPath, [...BRIDGE_NODE_OPTIONS.split(' '), cli, 'sync', '--config', configPath, '--json'], {
      maxBuffer: 1 << 20,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const seconds = (performance.now() - started) / 1000;
    const summary = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      counts: { events: number; rows: number; rowsAcked: number };
      process: { peakRssMb: number };
    };
    return {
      events: summary.counts.events,
      rows: summary.counts.rows,
      rowsAcked: summary.counts.rowsAcked,
      seconds: Math.round(seconds * 100) / 100,
      maxRssMb: Math.round(summary.process.peakRssMb),
    };
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Kicks off an export of the source's request, waits for its manifest, and returns its file URLs (the baseline's input). */
async function completedExport(sandbox: Sandbox, token: string): Promise<string[]> {
  const headers = { authorization: `Bearer ${token}`, accept: 'application/fhir+json' };
  const kick = await fetch(`${sandbox.fhir.baseUrl}/$export?_type=AuditEvent,Patient,Practitioner`, { headers: { ...headers, prefer: 'respond-async' } });
  const status = kick.headers.get('content-location');
  if (kick.status !== 202 || !status) throw new Error(`kick-off answered ${kick.status}`);
  for (;;) {
    const reply = await fetch(status, { headers });
    if (reply.status === 200) return ((await reply.json()) as { output: Array<{ url: string }> }).output.map((file) => file.url);
    await reply.body?.cancel();
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Both sides run the compiled bridge (dist/, as shipped: `npm run build` first) in plain Node processes with the
 * shipped V8 flags, and time themselves from their first request to their last line.
 */
async function child(mode: 'source' | 'baseline', args: Record<string, unknown>, env: Record<string, string>): Promise<ChildReport> {
  const script = (mode === 'source' ? SOURCE_CHILD : BASELINE_CHILD).replaceAll('DIST/', `${pathToFileURL(resolve(import.meta.dirname, '../dist')).href}/`);
  const { stdout } = await run(process.execPath, [...BRIDGE_NODE_OPTIONS.split(' '), '--input-type=module', '-e', script, JSON.stringify(args)], {
    env: { ...process.env, NODE_OPTIONS: '', ...env },
    maxBuffer: 1 << 20,
    cwd: resolve(import.meta.dirname, '..'),
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as ChildReport;
}

/** The bridge side: the connector's source as a sync builds it, read to the end (no mapping, no push). */
const SOURCE_CHILD = `
import { systemClock } from 'DIST/clock.js';
import { buildSyncDeps, findConnector } from 'DIST/composition/index.js';
import { loadConfig } from 'DIST/config/index.js';
import { uuidSource } from 'DIST/ids.js';
import { silentLogger } from 'DIST/log.js';
import { SyncEvents } from 'DIST/sync/events.js';
import { openStateStore } from 'DIST/sync/state/index.js';
const args = JSON.parse(process.argv[1]);
const config = loadConfig({ path: args.configPath, env: {}, flags: { stateDir: args.stateDir } });
const store = openStateStore(config.stateDir, systemClock);
const deps = buildSyncDeps({ config, env: {}, clock: systemClock, logger: silentLogger(), events: new SyncEvents(), store, newId: uuidSource }, findConnector(config, 'sandbox'));
const source = deps.source();
await source.check();
const start = performance.now();
let lines = 0;
for await (const page of source.pages({ since: '2026-11-01T00:00:00Z', until: new Date().toISOString() })) lines += page.length;
source.coveredUntil?.();
const ms = performance.now() - start;
store.close();
process.stdout.write(JSON.stringify({ ms, lines, peakRssMb: process.resourceUsage().maxRSS / 1024 }) + '\\n');
`;

/** The baseline: each file downloaded and every line JSON.parsed (lines cut as the bridge cuts them), nothing kept. */
const BASELINE_CHILD = `
import { createGunzip } from 'node:zlib';
import { request } from 'undici';
import { ndjsonLines } from 'DIST/mapping/load.js';
const args = JSON.parse(process.argv[1]);
const start = performance.now();
let lines = 0;
for (const url of args.urls) {
  const { statusCode, body } = await request(url, { headers: { authorization: 'Bearer ' + process.env.BENCH_TOKEN, ...(args.gzip ? { 'accept-encoding': 'gzip' } : {}) } });
  if (statusCode !== 200) throw new Error('download answered ' + statusCode);
  for await (const chunk of ndjsonLines(args.gzip ? body.pipe(createGunzip()) : body)) {
    for (let i = 0; i < chunk.length; i++) {
      const text = chunk.text(i);
      if (text.length > 0) { JSON.parse(text); lines += 1; }
    }
  }
}
process.stdout.write(JSON.stringify({ ms: performance.now() - start, lines, peakRssMb: process.resourceUsage().maxRSS / 1024 }) + '\\n');
`;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const events = flag('--events', 200_000);
  const size = {
    events,
    patients: Math.max(1000, Math.round(events / 20)),
    practitioners: Math.max(100, Math.round(events / 200)),
    cacheSize: Math.round(events / 16),
    resourcesPerFile: flag('--per-file', Math.ceil(events / 10)),
    gzip: process.argv.includes('--gzip'),
  };
  process.stdout.write(`${JSON.stringify(await runBulkBench(size))}\n`);
  if (process.argv.includes('--sync')) process.stdout.write(`${JSON.stringify(await runBulkSyncBench(size))}\n`);
}
