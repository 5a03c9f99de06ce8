/**
 * `bridge demo --source flat-file`: the sandbox's day exported the way a Clarity job would drop it. The connector file
 * is made by the bridge itself — a dry run of the FHIR search source over the sandbox, its own state aside — then split
 * into three files dropped in `<dir>/drop/`, oldest first. In the last one every fifth row has its patient columns
 * emptied, and the connector runs with `enrich: { fhir: true }`: the run fills them back from the sandbox's FHIR server
 * by MRN. What must arrive is every row as exported, once — the digest `written()` returns.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, rmSync, utimesSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { systemClock } from '../../clock.js';
import { buildSyncDeps, findConnector } from '../../composition/index.js';
import { loadConfig } from '../../config/index.js';
import { SCHEMA_COLUMNS } from '../../connector-file/index.js';
import { uuidSource } from '../../ids.js';
import { createLogger } from '../../log.js';
import { SyncEvents } from '../../sync/events.js';
import { enrichedColumns } from '../../sync/file-enrich.js';
import { runSync } from '../../sync/pipeline.js';
import { openStateStore } from '../../sync/state/index.js';
import type { DemoSourceContext, DemoSourceRun } from './demo-sources.js';

const FILES = 3;
/** In the last file, every this-many-th row loses its patient columns (the enrichment fills them back). */
const BLANK_EVERY = 5;

export async function plan(context: DemoSourceContext): Promise<DemoSourceRun> {
  const exported = join(context.dir, 'clarity-export.txt');
  const rows = await exportDay(context, exported);
  const dir = join(context.dir, 'drop');
  const archiveDir = join(context.dir, 'archive');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const digest = context.createRowDigest();
  try {
    await splitIntoDrops(exported, dir, rows, (line) => digest.add(line));
  } finally {
    rmSync(exported, { force: true }); // it holds the generated PHI; the drops are what the run reads
  }
  const value = digest.value();
  return {
    configFlags: { 'connectors.0.source': { type: 'flat-file', dir, archiveDir, pattern: 'clarity_*.txt', settleSeconds: 0, enrich: { fhir: true } } },
    written: async () => value,
  };
}

/** The sandbox's whole day as one connector file: a dry run of the FHIR search source (nothing pushed, own state). */
async function exportDay(context: DemoSourceContext, out: string): Promise<number> {
  const { start, end } = context.sandbox.dataset.options;
  const config = loadConfig({ base: context.sandbox.config, env: {}, flags: { stateDir: join(context.dir, 'export-state') } });
  const store = openStateStore(config.stateDir, systemClock);
  try {
    const logger = createLogger({ level: 'warn' });
    const deps = buildSyncDeps(
      { config, env: {}, clock: systemClock, logger, events: new SyncEvents(), store, newId: uuidSource },
      findConnector(config, 'sandbox'),
    );
    const summary = await runSync(deps, { trigger: 'cli', since: start, until: end, dryRunOut: out });
    return summary.counts.rows;
  } finally {
    store.close();
    rmSync(config.stateDir, { recursive: true, force: true });
  }
}

/** Contiguous thirds, LF line ends as many exports have, modification times an hour apart (oldest first). */
async function splitIntoDrops(exported: string, dir: string, rows: number, onRow: (line: string) => void): Promise<void> {
  const perFile = Math.max(1, Math.ceil(rows / FILES));
  const lines = createInterface({ input: createReadStream(exported, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY });
  const names = SCHEMA_COLUMNS.epic.map((c) => c.name);
  const blank = enrichedColumns('epic').patient.map((name) => names.indexOf(name));
  let header: string | undefined;
  let out: WriteStream | undefined;
  let index = 0;
  const paths: string[] = [];
  const close = async (): Promise<void> => {
    if (!out) return;
    out.end();
    await once(out, 'finish');
  };
  for await (const line of lines) {
    if (header === undefined) {
      header = line;
      continue;
    }
    const file = Math.floor(index / perFile);
    if (index % perFile === 0) {
      await close();
      paths.push(join(dir, `clarity_${file + 1}.txt`));
      out = createWriteStream(paths[file] as string, { mode: 0o600 });
      out.write(`${header}\n`);
    }
    onRow(line);
    const emptied = file === FILES - 1 && index % BLANK_EVERY === 0 ? blankCells(line, blank) : line;
    if (!(out as WriteStream).write(`${emptied}\n`)) await once(out as WriteStream, 'drain');
    index += 1;
  }
  await close();
  const now = Date.now() / 1000;
  for (const [i, path] of paths.entries()) utimesSync(path, now - 3600 * (paths.length - i), now - 3600 * (paths.length - i));
}

function blankCells(line: string, indexes: readonly number[]): string {
  const cells = line.split('\t');
  for (const index of indexes) cells[index] = '';
  return cells.join('\t');
}
