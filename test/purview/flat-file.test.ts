/** Normalising an operator's export into a spool: BOM, LF/CR/CRLF, empty lines, chunk edges, and refusals. */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LineScanner } from '../../src/connector-file/index.js';
import { BridgeError } from '../../src/errors.js';
import { MANDATORY_COLUMNS, normalizeFlatFile } from '../../src/purview/index.js';
import { tempDir } from './support.js';

const dir = tempDir('bridge-flat-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HEADER = MANDATORY_COLUMNS.epic.join('\t');
const ROW = Array.from({ length: MANDATORY_COLUMNS.epic.length }, (_, i) => `v${i}`).join('\t');
/** Another row of as many fields, with UTF-8 in it. */
const row = (first: string): string => [first, ...Array.from({ length: MANDATORY_COLUMNS.epic.length - 1 }, () => 'x')].join('\t');

async function normalize(content: string | Buffer, schema: 'epic' | 'healthcare' = 'epic') {
  const input = join(dir, 'input.txt');
  const spool = join(dir, 'spool.txt');
  writeFileSync(input, content);
  const summary = await normalizeFlatFile(input, spool, schema);
  return { summary, spool, text: readFileSync(spool, 'latin1') };
}

async function refusal(content: string | Buffer, options: { maxLineBytes?: number } = {}): Promise<{ message: string; spoolLeft: boolean }> {
  const input = join(dir, 'bad.txt');
  const spool = join(dir, 'bad-spool.txt');
  writeFileSync(input, content);
  const error = await normalizeFlatFile(input, spool, 'epic', options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
  return { message: (error as BridgeError).message.replace(input, '<input>'), spoolLeft: existsSync(spool) };
}

describe('normalizeFlatFile', () => {
  it('drops a UTF-8 BOM and turns LF into CRLF, writing the spool 0600', async () => {
    const { summary, spool, text } = await normalize(`\uFEFF${HEADER}\n${ROW}\n${row('Åse')}\n`);
    expect(Buffer.from(text, 'latin1').toString('utf8')).toBe(`${HEADER}\r\n${ROW}\r\n${row('Åse')}\r\n`);
    expect(summary).toMatchObject({ delimiter: 'tab', rows: 2, blankLines: 0, hadBom: true });
    expect(statSync(spool).mode & 0o777).toBe(0o600);
  });

  it('drops every leading BOM (a file saved again by a tool that adds one), so none reaches the header Purview reads', async () => {
    const { summary, text } = await normalize(`\uFEFF\uFEFF${HEADER}\r\n${ROW}\r\n`);
    expect(text).toBe(`${HEADER}\r\n${ROW}\r\n`);
    expect(summary).toMatchObject({ rows: 1, hadBom: true });
  });

  it('drops a BOM that arrives in pieces (a pipe hands the bytes over as they are written), and reads a file shorter than one', () => {
    const scanner = new LineScanner('<pipe>', 'epic', 1 << 20);
    const out = [
      ...scanner.push(Buffer.from([0xef])),
      ...scanner.push(Buffer.from([0xbb])),
      ...scanner.push(Buffer.concat([Buffer.from([0xbf]), Buffer.from(`${HEADER}\r\n${ROW}\r\n`)])),
      ...scanner.end(),
    ];
    expect(Buffer.concat(out).toString('utf8')).toBe(`${HEADER}\r\n${ROW}\r\n`);
    expect(scanner.hadBom).toBe(true);
    expect(scanner.summary().rows).toBe(1);
    // Two BOMs, in pieces of any size: both dropped, whatever the reads (a pipe's are as the writer wrote).
    const twice = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), Buffer.from(`${HEADER}\r\n${ROW}\r\n`)]);
    for (let size = 1; size <= 8; size += 1) {
      const pieces = new LineScanner('<pipe>', 'epic', 1 << 20);
      const read: Buffer[] = [];
      for (let at = 0; at < twice.length; at += size) read.push(...pieces.push(twice.subarray(at, at + size)));
      read.push(...pieces.end());
      expect(Buffer.concat(read).toString('utf8'), `pieces of ${size}`).toBe(`${HEADER}\r\n${ROW}\r\n`);
    }
    // A UTF-16 BOM is refused as such as soon as its two bytes are in; two bytes, then the end, are read as any start is.
    const utf16 = new LineScanner('<pipe>', 'epic', 1 << 20);
    expect(utf16.push(Buffer.from([0xff]))).toEqual([]);
    expect(() => utf16.push(Buffer.from([0xfe]))).toThrow(expect.objectContaining({ details: expect.objectContaining({ reason: 'utf16' }) }));
    const tiny = new LineScanner('<pipe>', 'epic', 1 << 20);
    tiny.push(Buffer.from('ab'));
    expect(() => tiny.end()).toThrow(expect.objectContaining({ details: expect.objectContaining({ reason: 'no-delimiter' }) }));
  });

  it('refuses a BOM inside the header, which no trim may hide: Purview would read that column as another name', async () => {
    const columns = MANDATORY_COLUMNS.epic;
    const { message } = await refusal(`${columns[0]}\t\uFEFF${columns.slice(1).join('\t')}\r\n${ROW}\r\n`);
    expect(message).toBe(
      '<input> line 1: header field 2 holds a byte order mark (U+FEFF, invisible): save the file as UTF-8 with at most one BOM at its very start, and run again. Nothing was sent.',
    );
  });

  it('accepts CR, CRLF and a last line without an end, and drops empty lines', async () => {
    const { summary, text } = await normalize(`${HEADER}\r\n${ROW}\r\r${row('b')}\r\n\r\n${row('c')}`);
    expect(text).toBe(`${HEADER}\r\n${ROW}\r\n${row('b')}\r\n${row('c')}\r\n`);
    expect(summary).toMatchObject({ rows: 3, blankLines: 2, hadBom: false });
  });

  it('keeps a CRLF split across read chunks as one line end', async () => {
    const head = Buffer.from(`${HEADER}\r\n`);
    const tail = row('').slice(0); // the fields after a long first one
    const filler = Buffer.alloc((1 << 20) - head.length - tail.length - 1, 0x61); // the CR is the last byte of the first chunk
    const { summary, text } = await normalize(Buffer.concat([head, filler, Buffer.from(`${tail}\r\n${row('last')}\r\n`)]));
    expect(summary.rows).toBe(2);
    expect(text.endsWith(`${tail}\r\n${row('last')}\r\n`)).toBe(true);
    expect(text.length).toBe(head.length + filler.length + tail.length + 2 + row('last').length + 2);
  });

  it('takes pipe files for Epic and comma files for Healthcare', async () => {
    expect((await normalize(`${HEADER.replace(/\t/g, '|')}\n${ROW.replace(/\t/g, '|')}\n`)).summary.delimiter).toBe('pipe');
    const csv = MANDATORY_COLUMNS.healthcare.map((_, i) => (i === 1 ? '"Lookup, chart"' : `v${i}`)).join(',');
    expect((await normalize(`${MANDATORY_COLUMNS.healthcare.join(',')}\n${csv}\n`, 'healthcare')).summary.delimiter).toBe('comma');
  });

  it('refuses, naming the line, and leaves no spool behind', async () => {
    expect(await refusal(Buffer.concat([Buffer.from(`${HEADER}\n${ROW}\n`), Buffer.from([0x66, 0xe9, 0x65, 0x0a])]))).toEqual({
      message: '<input> line 3 is not valid UTF-8; save the file as UTF-8 and run again.',
      spoolLeft: false,
    });
    expect((await refusal(Buffer.from([0xff, 0xfe, 0x41, 0x00]))).message).toBe(
      '<input> line 1 is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 and run again.',
    );
    expect((await refusal('')).message).toBe('<input> line 1 is empty; the first line must be the header with the column names.');
    expect(await refusal(`ACCESS_LOG.ACCESS_TIME\tEMP.SYSTEM_LOGIN\n${ROW}\n`)).toMatchObject({ spoolLeft: false });
  });

  // Issue #14.7: a row with another field count shifts values under the wrong columns; refused before anything is sent.
  it('refuses a row whose field count differs from the header, naming the line and never a cell', async () => {
    const short = `2026-11-01T00:00:00Z\tSECRET-PATIENT-NAME`;
    const result = await refusal(`${HEADER}\n${ROW}\n${short}\n${ROW}\n`);
    expect(result).toEqual({
      message: '<input> line 3 has 2 field(s), the header has 9 (tab-separated). Fix the row or re-export the file; nothing was sent.',
      spoolLeft: false,
    });
    expect(result.message).not.toContain('SECRET');
    const extra = await refusal(`${HEADER}\n${ROW}\tone-too-many\n`);
    expect(extra.message).toContain('line 2 has 10 field(s), the header has 9');
  });

  it('names a row that uses another delimiter than the header', async () => {
    const { message } = await refusal(`${HEADER}\n${ROW}\n${ROW.replace(/\t/g, '|')}\n`);
    expect(message).toBe(
      '<input> line 3 has 1 field(s), the header has 9 (tab-separated). It looks pipe-separated while the header is tab-separated: one delimiter per file. Fix the row or re-export the file; nothing was sent.',
    );
  });

  it('counts comma fields outside quotes only', async () => {
    const header = MANDATORY_COLUMNS.healthcare.join(',');
    const ok = MANDATORY_COLUMNS.healthcare.map((_, i) => (i === 0 ? '"a, ""b"", c"' : `v${i}`)).join(',');
    await expect(normalize(`${header}\n${ok}\n`, 'healthcare')).resolves.toMatchObject({ summary: { rows: 1 } });
    const input = join(dir, 'bad.csv');
    writeFileSync(input, `${header}\n${ok},extra\n`);
    await expect(normalizeFlatFile(input, join(dir, 'bad-csv-spool.txt'), 'healthcare')).rejects.toThrow(
      'line 2 has 10 field(s), the header has 9 (comma-separated)',
    );
  });

  it('refuses a comma row whose quoted cell the line ends before it closes, naming that line, though its fields count right', async () => {
    const header = MANDATORY_COLUMNS.healthcare.join(',');
    const row = (last: string): string => [...MANDATORY_COLUMNS.healthcare.slice(1).map((_, i) => `v${i}`), last].join(',');
    const refused = async (content: string): Promise<BridgeError> => {
      const input = join(dir, 'open.csv');
      writeFileSync(input, content);
      return normalizeFlatFile(input, join(dir, 'open-spool.txt'), 'healthcare').then(
        () => new BridgeError('BRG_ERR_INTERNAL', 'accepted'),
        (e: unknown) => e as BridgeError,
      );
    };
    const said = 'opens a quoted cell that the line ends before it closes: a line break inside the cell (Purview reads one row per line) or a row cut short.';
    // A line break in the last cell: the row's first line (not the next, with 1 field) is the one named.
    const breaks = await refused(`${header}\n${row('x')}\n${row('"Smith,')}\nJo"\n`);
    expect(breaks.message).toBe(`${join(dir, 'open.csv')} line 3 ${said} Re-export the file without line breaks in cells, or fix the row; nothing was sent.`);
    expect(breaks.details).toMatchObject({ reason: 'open-quote', line: 3, field: 9, fieldName: MANDATORY_COLUMNS.healthcare[8] });
    // A row cut in a quoted cell (the last line, without its end), or one left open before the next row.
    expect((await refused(`${header}\r\n${row('x')}\r\n${row('"Smith, J')}`)).details).toMatchObject({ reason: 'open-quote', line: 3 });
    expect((await refused(`${header}\r\n${row('"Smith, J')}\r\n${row('x')}\r\n`)).details).toMatchObject({ reason: 'open-quote', line: 2 });
    // A quote inside a cell that does not start with one is no quoted cell, as before.
    await expect(normalize(`${header}\r\n${row('5\'10"')}\r\n`, 'healthcare')).resolves.toMatchObject({ summary: { rows: 1 } });
  });

  it("reads a comma header's quoted names as its rows' fields are read: a comma inside quotes, doubled quotes, and sends them so", async () => {
    const header = `${MANDATORY_COLUMNS.healthcare.map((column) => `"${column}"`).join(',')},"Dept, Sub","Unit ""A""",Plain`;
    const row = `${MANDATORY_COLUMNS.healthcare.map((_, i) => `v${i}`).join(',')},"x, y",z,w`;
    const { summary, text } = await normalize(`${header}\n${row}\n`, 'healthcare');
    expect(summary.columns.slice(-3)).toEqual(['Dept, Sub', 'Unit "A"', 'Plain']);
    expect(summary.rows).toBe(1);
    // The schema's names in its spelling; the others as RFC 4180 writes them, each one field as in the file.
    expect(text).toBe(`${MANDATORY_COLUMNS.healthcare.join(',')},"Dept, Sub","Unit ""A""",Plain\r\n${row}\r\n`);
  });

  // Issue #14.8: a 1–2 GB file with no newline grew the process to 4.28 GB.
  it('refuses a line longer than the cap without holding it in memory', async () => {
    const long = Buffer.alloc(3 * (1 << 20), 0x61);
    const before = process.memoryUsage().arrayBuffers;
    const { message, spoolLeft } = await refusal(Buffer.concat([Buffer.from(`${HEADER}\n`), long]), { maxLineBytes: 1 << 20 });
    expect(message).toBe(
      `<input> line 2 is longer than ${1 << 20} bytes without a line end; a connector file has one row per line (raise --max-line-bytes if rows really are this long).`,
    );
    expect(spoolLeft).toBe(false);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * (1 << 20));
  });

  it('hashes the normalised content and finds every row start from a few checkpoints', async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => row(`r${i}-é`));
    const { summary, spool } = await normalize(`${HEADER}\n${rows.join('\n')}\n`);
    const bytes = readFileSync(spool);
    expect(summary.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(summary.header.toString('utf8')).toBe(`${HEADER}\r\n`);
    for (const r of [0, 1, 1023, 1024, 1025, 2047, 2048, 2999, 3000]) {
      const at = summary.offsets.offsetOf(spool, r);
      const expected = r === 3000 ? bytes.length : bytes.indexOf(Buffer.from(`${row(`r${r}-é`)}\r\n`));
      expect(at, `row ${r}`).toBe(expected);
    }
  });
});
