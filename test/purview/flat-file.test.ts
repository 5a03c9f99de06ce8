/** Normalising an operator's export into a spool: BOM, LF/CR/CRLF, empty lines, chunk edges, and refusals. */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { MANDATORY_COLUMNS, normalizeFlatFile } from '../../src/purview/index.js';
import { tempDir } from './support.js';

const dir = tempDir('bridge-flat-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HEADER = MANDATORY_COLUMNS.epic.join('\t');
const ROW = Array.from({ length: MANDATORY_COLUMNS.epic.length }, (_, i) => `v${i}`).join('\t');

async function normalize(content: string | Buffer, schema: 'epic' | 'healthcare' = 'epic') {
  const input = join(dir, 'input.txt');
  const spool = join(dir, 'spool.txt');
  writeFileSync(input, content);
  const summary = await normalizeFlatFile(input, spool, schema);
  return { summary, spool, text: readFileSync(spool, 'latin1') };
}

async function refusal(content: string | Buffer): Promise<{ message: string; spoolLeft: boolean }> {
  const input = join(dir, 'bad.txt');
  const spool = join(dir, 'bad-spool.txt');
  writeFileSync(input, content);
  const error = await normalizeFlatFile(input, spool, 'epic').then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
  return { message: (error as BridgeError).message.replace(input, '<input>'), spoolLeft: existsSync(spool) };
}

describe('normalizeFlatFile', () => {
  it('drops a UTF-8 BOM and turns LF into CRLF, writing the spool 0600', async () => {
    const { summary, spool, text } = await normalize(`\uFEFF${HEADER}\n${ROW}\nÅse\tx\n`);
    expect(Buffer.from(text, 'latin1').toString('utf8')).toBe(`${HEADER}\r\n${ROW}\r\nÅse\tx\r\n`);
    expect(summary).toMatchObject({ delimiter: 'tab', rows: 2, blankLines: 0, hadBom: true });
    expect(statSync(spool).mode & 0o777).toBe(0o600);
  });

  it('accepts CR, CRLF and a last line without an end, and drops empty lines', async () => {
    const { summary, text } = await normalize(`${HEADER}\r\n${ROW}\r\rb\r\n\r\nc`);
    expect(text).toBe(`${HEADER}\r\n${ROW}\r\nb\r\nc\r\n`);
    expect(summary).toMatchObject({ rows: 3, blankLines: 2, hadBom: false });
  });

  it('keeps a CRLF split across read chunks as one line end', async () => {
    const head = Buffer.from(`${HEADER}\r\n`);
    const filler = Buffer.alloc((1 << 20) - head.length - 1, 0x61); // the CR is the last byte of the first chunk
    const { summary, text } = await normalize(Buffer.concat([head, filler, Buffer.from('\r\nlast\r\n')]));
    expect(summary.rows).toBe(2);
    expect(text.endsWith(`${'a'.repeat(20)}\r\nlast\r\n`)).toBe(true);
    expect(text.length).toBe(head.length + filler.length + 2 + 6);
  });

  it('takes pipe files for Epic and comma files for Healthcare', async () => {
    expect((await normalize(`${HEADER.replace(/\t/g, '|')}\n${ROW.replace(/\t/g, '|')}\n`)).summary.delimiter).toBe('pipe');
    expect((await normalize(`${MANDATORY_COLUMNS.healthcare.join(',')}\na,b\n`, 'healthcare')).summary.delimiter).toBe('comma');
  });

  it('refuses, naming the line, and leaves no spool behind', async () => {
    expect(await refusal(Buffer.concat([Buffer.from(`${HEADER}\n${ROW}\n`), Buffer.from([0x66, 0xe9, 0x65, 0x0a])]))).toEqual({
      message: '<input> line 3 is not valid UTF-8; save the file as UTF-8 and run again.', spoolLeft: false,
    });
    expect((await refusal(Buffer.from([0xff, 0xfe, 0x41, 0x00]))).message).toBe('<input> line 1 is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 and run again.');
    expect((await refusal('')).message).toBe('<input> line 1 is empty; the first line must be the header with the column names.');
    expect(await refusal(`ACCESS_LOG.ACCESS_TIME\tEMP.SYSTEM_LOGIN\n${ROW}\n`)).toMatchObject({ spoolLeft: false });
  });
});
