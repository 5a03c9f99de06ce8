/**
 * Issue #19 §3: a 2 GB file dropped in the folder is checked, pushed and archived in flat memory — the check streams
 * it in 1 MiB chunks into the spool, the push streams blocks from the spool. Measured on the real CLI (`bridge sync
 * --json`, run as the npm scripts and the image run it: heap capped at 256 MB) against the sandbox: the process's
 * peak RSS with a 2 GB file is about that with a 2 MB one. The file is generated fast (one 1.2 MB block of real rows
 * written over and over); the ingestion emulator keeps only counts.
 */
import { closeSync, openSync, readdirSync, rmSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { bridgeCli, dropDirs, EPIC_HEADER, epicRows, flatFileConfig } from './drop-support.js';

const dirs = dropDirs('bridge-2gb-');
let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await startSandbox({ dir: join(dirs.root, 'sandbox'), ingestRecord: 'count', data: { events: 10, patients: 5, practitioners: 2 } });
});
afterAll(async () => {
  await sandbox?.close();
  rmSync(dirs.root, { recursive: true, force: true });
});

/** Writes `bytes` (at least) of rows under the Epic header into the drop folder; returns the row count. */
function generate(name: string, bytes: number): number {
  const path = join(dirs.dir, name);
  const block = Buffer.from(
    epicRows(4000, 'big')
      .map((row) => `${row}\r\n`)
      .join(''),
  );
  const fd = openSync(path, 'w');
  let size = writeSync(fd, `${EPIC_HEADER}\r\n`);
  let rows = 0;
  for (; size < bytes; rows += 4000) size += writeSync(fd, block);
  closeSync(fd);
  utimesSync(path, 1, 1);
  return rows;
}

interface SyncJson {
  counts: { rows: number; rowsAcked: number; blocks: number };
  files: Array<{ file: string; outcome: string; rows: number }>;
  process: { peakRssMb: number };
}

async function syncOnce(): Promise<SyncJson> {
  const config = flatFileConfig(sandbox, dirs, { settleSeconds: 0 });
  const result = await bridgeCli(['sync', '--config', config, '--json']).done;
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as SyncJson;
}

/**
 * 2 GiB with BRIDGE_TEST_2GB=1 (about 40 s and 4 GiB of temporary disk: input and spool); 256 MiB in the default
 * suite, which keeps `npm test` within its time budget and still shows memory flat across 128× the input.
 */
const BIG = process.env['BRIDGE_TEST_2GB'] === '1' ? 2 ** 31 : 2 ** 28;

it(`checks, pushes and archives a ${BIG / 2 ** 20} MiB file with the memory of a 2 MB one, every row once`, async () => {
  const smallRows = generate('small.txt', 2 * 2 ** 20);
  const small = await syncOnce();
  expect(small.files).toMatchObject([{ file: 'small.txt', outcome: 'delivered', rows: smallRows }]);

  const rows = generate('clarity_2gb.txt', BIG);
  const big = await syncOnce();
  expect(big.files).toMatchObject([{ file: 'clarity_2gb.txt', outcome: 'delivered', rows }]);
  expect(big.counts).toMatchObject({ rows, rowsAcked: rows, blocks: Math.ceil(rows / 100_000) });
  expect(sandbox.ingest.acceptedRowCount(sandbox.ids.jobId)).toBe(smallRows + rows);
  expect(readdirSync(join(dirs.archiveDir, 'done')).sort()).toEqual(['clarity_2gb.txt', 'small.txt']);
  expect(readdirSync(join(dirs.root, 'sandbox', 'state', 'drop-spool'))).toEqual([]);
  console.info(
    `bridge sync peak RSS: ${small.process.peakRssMb} MB for a 2 MB file (${smallRows} rows), ${big.process.peakRssMb} MB for a ${BIG / 2 ** 20} MiB file (${rows} rows, ${big.counts.blocks} blocks)`,
  );
  // 128× the input (1000× with BRIDGE_TEST_2GB); the process differs by its buffers (a 1 MiB read chunk, the ~30 MB
  // block in flight, the heap V8 grows around them), not by the file. Measured differences ran 44–65 MB on the CI
  // machine; holding the file would add at least its 256 MiB.
  expect(big.process.peakRssMb - small.process.peakRssMb).toBeLessThan(96);
}, 600_000);
