/** The streaming spool scan: hash of the bytes, header, plans across 1 MiB read chunks, and refusals before sending. */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { planBlocks, scanSpool } from '../../src/purview/index.js';
import { HEADER, makeRows, tempDir, writeSpool } from './support.js';

const dir = tempDir('bridge-spool-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(content: string | Buffer): Promise<string> {
  const path = join(dir, 'bad.txt');
  writeFileSync(path, content);
  const error = await scanSpool(path, 10).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
  return (error as BridgeError).message.replace(path, '<spool>');
}

describe('scanSpool', () => {
  it('hashes the bytes and plans the same blocks as planBlocks over every line end, across read chunks', async () => {
    const rows = makeRows(30_000); // ~1.6 MB: lines straddle the 1 MiB read chunks
    const path = writeSpool(dir, rows);
    const bytes = readFileSync(path);
    const scan = await scanSpool(path, 7_000);
    const ends: number[] = [];
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) ends.push(i + 1);
    expect(scan.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(scan.header.toString('utf8')).toBe(`${HEADER}\r\n`);
    expect(scan.rows).toBe(30_000);
    expect(scan.bytes).toBe(bytes.length);
    expect(scan.plans).toEqual(planBlocks(ends, 7_000));
    expect(scan.plans.map((p) => p.rows)).toEqual([7_000, 7_000, 7_000, 7_000, 2_000]);
  });

  it('finds a CRLF split exactly across a chunk boundary', async () => {
    const path = join(dir, 'edge.txt');
    const header = Buffer.from('A\tB\r\n');
    const filler = Buffer.alloc((1 << 20) - header.length - 1, 0x61); // the row's CR is the chunk's last byte
    writeFileSync(path, Buffer.concat([header, filler, Buffer.from('\r\nx\ty\r\n')]));
    const scan = await scanSpool(path, 10);
    expect(scan.rows).toBe(2);
    expect(scan.plans).toEqual([{ index: 0, upload: 0, firstRow: 0, rows: 2, start: header.length, end: (1 << 20) + 1 + 5 }]);
  });

  it('refuses what would make Purview see other rows than the ledger counted', async () => {
    expect(await refusal('')).toBe('Spool file <spool> is empty; a connector file starts with its header line. Nothing was sent.');
    expect(await refusal('\uFEFFA\tB\r\nx\ty\r\n')).toBe('Spool file <spool> starts with a UTF-8 byte order mark; spool files are UTF-8 without BOM. Nothing was sent.');
    expect(await refusal('A\tB\r\nx\ty\nz\tw\r\n')).toBe('Spool file <spool> line 2 ends with LF alone; spool lines end with CRLF. Nothing was sent.');
    expect(await refusal('A\tB\r\nx\ty')).toBe('Spool file <spool> line 2 (the last) has no CRLF at its end. Nothing was sent.');
    expect(await refusal('A\tB\r\nx\ty\r')).toBe('Spool file <spool> line 2 (the last) has no CRLF at its end. Nothing was sent.');
  });

  it('plans no block for a header-only spool', async () => {
    const scan = await scanSpool(writeSpool(dir, []), 10);
    expect([scan.rows, scan.plans]).toEqual([0, []]);
  });
});

describe('scanSpool at chunk edges', () => {
  const MIB = 1 << 20;
  async function scanEdge(tail: string): Promise<string> {
    const path = join(dir, 'edge-bad.txt');
    const header = Buffer.from('A\tB\r\n');
    writeFileSync(path, Buffer.concat([header, Buffer.alloc(MIB - header.length - 1, 0x61), Buffer.from(tail)]));
    return scanSpool(path, 10).then(() => 'accepted', (e: BridgeError) => e.message.replace(path, '<spool>'));
  }

  it('refuses an LF alone at a chunk start, and takes a CRLF split across two chunks', async () => {
    expect(await scanEdge('a\nx\r\n')).toBe('Spool file <spool> line 2 ends with LF alone; spool lines end with CRLF. Nothing was sent.');
    expect(await scanEdge('\r\n')).toBe('accepted');
  });
});
