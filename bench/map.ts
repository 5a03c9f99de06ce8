/**
 * `bridge map` against the plainest possible reader of the same files, whole processes both: the compiled CLI (dist/,
 * with the V8 flags it ships with) mapping the bench's NDJSON files (Epic-shaped events from the sandbox generator, their
 * Patients and Practitioners) to a connector file, versus a Node process that reads the same three files line by line
 * and JSON.parses every line (nothing else). ratio = map wall time / baseline wall time, best of ROUNDS alternating
 * rounds, start-up included on both sides (an operator pays it). Goal ≤ 2.5×.
 * Run directly (after `npm run build`): `npx tsx bench/map.ts [--events N]` prints the result as JSON.
 */
import { execFile } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { generateDataset } from '../src/sandbox/generator.js';
import { BRIDGE_NODE_OPTIONS } from './e2e.js';

const run = promisify(execFile);
const ROUNDS = 3;

export interface MapBenchResult {
  events: number;
  inputMb: number;
  mapMs: number;
  baselineMs: number;
  /** mapMs / baselineMs. */
  ratio: number;
}

/**
 * The baseline process: every line of every file JSON.parsed, nothing else. Lines are cut from 1 MiB chunks and decoded
 * one at a time, the fastest plain way measured here (readline: 2× slower; decoding whole chunks and splitting: 1.5×).
 */
const BASELINE = `
const { createReadStream } = require('node:fs');
(async () => {
  let n = 0;
  for (const file of process.argv.slice(1)) {
    let pending = null;
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        const line = pending ? Buffer.concat([pending, chunk.subarray(0, nl)]).toString('utf8') : chunk.toString('utf8', start, nl);
        pending = null;
        if (line) { JSON.parse(line); n++; }
        start = nl + 1;
      }
      if (start < chunk.length) pending = pending ? Buffer.concat([pending, chunk.subarray(start)]) : chunk.subarray(start);
    }
    if (pending && pending.length) { JSON.parse(pending.toString('utf8')); n++; }
  }
  process.stdout.write(String(n) + '\\n');
})();
`;

/**
 * Writes events.ndjson, patients.ndjson, practitioners.ndjson of a generated data set (streamed, never all in memory);
 * `lines`: how many resources they hold (users without a provider record have no Practitioner, so fewer than asked).
 */
export function writeBenchFiles(
  dir: string,
  size: { events: number; patients: number; practitioners: number; seed?: number },
): { events: string; patients: string; practitioners: string; lines: number } {
  const dataset = generateDataset({
    seed: size.seed ?? 3,
    events: size.events,
    patients: size.patients,
    practitioners: size.practitioners,
    start: '2026-11-01T00:00:00Z',
    end: '2026-11-02T00:00:00Z',
  });
  const paths = { events: join(dir, 'events.ndjson'), patients: join(dir, 'patients.ndjson'), practitioners: join(dir, 'practitioners.ndjson') };
  let lines = 0;
  const write = (path: string, resources: Iterable<unknown>): void => {
    const fd = openSync(path, 'w', 0o600);
    let buffer: string[] = [];
    for (const resource of resources) {
      lines += 1;
      buffer.push(JSON.stringify(resource));
      if (buffer.length >= 1000) {
        writeSync(fd, `${buffer.join('\n')}\n`);
        buffer = [];
      }
    }
    if (buffer.length > 0) writeSync(fd, `${buffer.join('\n')}\n`);
    closeSync(fd);
  };
  write(paths.events, dataset.events());
  write(paths.patients, dataset.patients());
  write(paths.practitioners, dataset.practitioners());
  return { ...paths, lines };
}

export async function runMapBench(size: { events: number; patients: number; practitioners: number }): Promise<MapBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-map-bench-'));
  try {
    const files = writeBenchFiles(dir, size);
    const inputMb = [files.events, files.patients, files.practitioners].reduce((sum, path) => sum + statSync(path).size, 0) / (1024 * 1024);
    const cli = resolve(import.meta.dirname, '../dist/cli/main.js');
    const flags = BRIDGE_NODE_OPTIONS.split(' ');
    const env = { ...process.env, NODE_OPTIONS: '' };
    const mapOnce = async (): Promise<number> => {
      const start = performance.now();
      await run(
        process.execPath,
        [...flags, cli, 'map', '--input', files.events, '--patients', files.patients, '--practitioners', files.practitioners, '--out', join(dir, 'rows.txt')],
        { env, maxBuffer: 1 << 20 },
      );
      return performance.now() - start;
    };
    const baselineOnce = async (): Promise<number> => {
      const start = performance.now();
      const { stdout } = await run(process.execPath, [...flags, '-e', BASELINE, files.events, files.patients, files.practitioners], {
        env,
        maxBuffer: 1 << 20,
      });
      const lines = Number(stdout.trim());
      if (lines !== files.lines) throw new Error(`baseline read ${lines} lines, the files hold ${files.lines}`);
      return performance.now() - start;
    };
    let mapMs = Number.POSITIVE_INFINITY;
    let baselineMs = Number.POSITIVE_INFINITY;
    for (let round = 0; round < ROUNDS; round++) {
      baselineMs = Math.min(baselineMs, await baselineOnce());
      mapMs = Math.min(mapMs, await mapOnce());
    }
    return {
      events: size.events,
      inputMb: Math.round(inputMb),
      mapMs: Math.round(mapMs),
      baselineMs: Math.round(baselineMs),
      ratio: Math.round((mapMs / baselineMs) * 100) / 100,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--events');
  const events = at === -1 ? 200_000 : Number(process.argv[at + 1]);
  const result = await runMapBench({ events, patients: Math.max(1000, Math.round(events / 20)), practitioners: Math.max(100, Math.round(events / 200)) });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
