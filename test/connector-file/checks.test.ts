/**
 * The drop-folder checks of a connector file (issue #19 §1): the header equal to the schema's columns (names and order,
 * any case), encodings converted to UTF-8 as they stream (a BOM deciding), and every refusal naming line and column —
 * never a cell. `bridge push` keeps its own rules (mandatory columns only, UTF-8 only): test/purview/flat-file.test.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkHeader,
  columnAt,
  encodeField,
  encodingName,
  fieldAt,
  fieldStart,
  fieldValue,
  firstInvalidUtf8,
  isEmptyField,
  LineScanner,
  type NormalizeOptions,
  normalizeFlatFile,
  prefixSha256s,
  splitFields,
} from '../../src/connector-file/index.js';
import { BridgeError } from '../../src/errors.js';
import { countDataLines, globMatcher } from '../../src/sync/file-drop-folder.js';
import { tempDir } from '../purview/support.js';
import { EPIC_COLUMNS, EPIC_HEADER, epicRows, fileText, headerOf } from './drop-support.js';

const dir = tempDir('bridge-checks-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DROP: NormalizeOptions = { encoding: 'utf-8', exactHeader: true, namePositions: true };

async function check(content: string | Buffer, options: NormalizeOptions = DROP, schema: 'epic' | 'healthcare' = 'epic') {
  const input = join(dir, 'in.txt');
  writeFileSync(input, content);
  const file = await normalizeFlatFile(input, join(dir, 'spool.txt'), schema, options);
  return { file, text: readFileSync(file.spoolPath, 'utf8') };
}

async function refusal(content: string | Buffer, options: NormalizeOptions = DROP): Promise<BridgeError> {
  const input = join(dir, 'bad.txt');
  writeFileSync(input, content);
  const error = await normalizeFlatFile(input, join(dir, 'bad-spool.txt'), 'epic', options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BridgeError);
  return error as BridgeError;
}

describe("the header must be the schema's columns, in order", () => {
  const header = (columns: readonly string[]) => () => checkHeader(columns.join('\t'), 'epic', 'x.txt', { exact: true, namePositions: true });

  it('takes the exact header in any case, tab or pipe', () => {
    expect(header(EPIC_COLUMNS.map((c) => c.toLowerCase()))().columns).toHaveLength(22);
    expect(checkHeader(EPIC_COLUMNS.join('|'), 'epic', 'x.txt', { exact: true }).delimiter).toBe('pipe');
    expect(checkHeader(headerOf('healthcare', ','), 'healthcare', 'x.csv', { exact: true }).delimiter).toBe('comma');
  });

  it('names the first wrong field, its column and what belongs there', () => {
    const swapped = [...EPIC_COLUMNS];
    [swapped[0], swapped[1]] = [swapped[1] as string, swapped[0] as string];
    expect(header(swapped)).toThrow(
      'x.txt line 1, column 1: field 1 must be "ACCESS_LOG.ACCESS_TIME"; found "ACCESS_LOG_METRIC.METRIC_NAME", which belongs at field 2',
    );
    expect(header(EPIC_COLUMNS.slice(0, 21))).toThrow(
      `x.txt line 1, column ${EPIC_HEADER.length - 'employee_first_name'.length}: the header ends after 21 field(s); field 22 must be "employee_first_name"`,
    );
    expect(header([...EPIC_COLUMNS, 'EXTRA'])).toThrow(
      "the header has 23 fields; the header must be the epic schema's 22 columns in their documented order, and field 23 is one too many",
    );
    expect(header(EPIC_COLUMNS.map((c, i) => (i === 1 ? 'Event Name' : c)))).toThrow(
      'field 2 must be "ACCESS_LOG_METRIC.METRIC_NAME"; found "Event Name", a column of the healthcare schema',
    );
  });

  it('splits a comma header as its rows are split: a quoted name holding a comma is one field, named at its column', () => {
    const names = headerOf('healthcare', ',').split(',');
    const line = names.map((name, i) => (i === 1 ? '"Event, Name"' : `"${name}"`)).join(',');
    expect(() => checkHeader(line, 'healthcare', 'x.csv', { exact: true, namePositions: true })).toThrow(
      `x.csv line 1, column ${'"Creation Time",'.length + 1}: field 2 must be "Event Name"; found a name that is no healthcare column`,
    );
    expect(checkHeader(`${headerOf('healthcare', ',')},"Dept, Sub"`, 'healthcare', 'x.csv').columns).toHaveLength(names.length + 1);
  });

  it('never quotes a name that is no schema column: without a header, line 1 is a data row (PHI)', () => {
    const row = (epicRows(1, 'phi')[0] as string).replace('Åse-phi0', 'SECRET-NAME');
    const error = (() => {
      try {
        checkHeader(row, 'epic', 'x.txt', { exact: true, namePositions: true });
      } catch (e) {
        return e as BridgeError;
      }
      return undefined;
    })();
    expect(error?.message).toContain('field 1 must be "ACCESS_LOG.ACCESS_TIME"; found a name that is no epic column');
    expect(error?.message).not.toMatch(/SECRET|2026-11-01/);
    expect(error?.details).toMatchObject({ reason: 'wrong-header', line: 1, column: 1 });
  });

  it('bridge push keeps its rule: mandatory columns anywhere, and its messages', () => {
    expect(checkHeader(['PATIENT.CITY', ...EPIC_COLUMNS.filter((c) => c !== 'PATIENT.CITY')].join('\t'), 'epic', 'x.txt').columns[0]).toBe('PATIENT.CITY');
  });
});

describe('a header in another spelling', () => {
  it("is sent in the schema's, while the content hash (the file's identity in the ledger) still reads it as the file gives it", async () => {
    const quoted = EPIC_COLUMNS.map((column) => `"${column}"`).join('\t');
    const rows = epicRows(3, 'spelled');
    for (const options of [DROP, { encoding: 'utf-8' }] as NormalizeOptions[]) {
      const { file, text } = await check(fileText(rows, quoted), options);
      expect(text.split('\r\n')[0]).toBe(EPIC_HEADER);
      // The hash a release that sent the header as written gave the file: a file it sent keeps its identity.
      expect(file.sha256).toBe(
        createHash('sha256')
          .update(`${quoted}\r\n${rows.map((row) => `${row}\r\n`).join('')}`)
          .digest('hex'),
      );
      expect((await prefixSha256s(file, 3)).asGiven).toBe(file.sha256);
      expect((await prefixSha256s(file, 1)).asGiven).toBe(createHash('sha256').update(`${quoted}\r\n${rows[0]}\r\n`).digest('hex'));
    }
  });

  it("hashes alike as sent: the same rows under a quoted, a lower-case or the schema's header have one sentSha256", async () => {
    const rows = epicRows(3, 'as-sent');
    const asSent = createHash('sha256').update(fileText(rows)).digest('hex');
    const spellings = [EPIC_HEADER, EPIC_HEADER.toLowerCase(), EPIC_COLUMNS.map((column) => ` "${column}" `).join('\t')];
    const files = [];
    for (const header of spellings) files.push((await check(fileText(rows, header))).file);
    expect(files.map((file) => file.sentSha256)).toEqual([asSent, asSent, asSent]);
    expect(new Set(files.map((file) => file.sha256)).size).toBe(3);
    // The schema's spelling: one identity, as it always was.
    expect(files[0]?.sha256).toBe(asSent);
    const grown = (await check(fileText([...rows, ...epicRows(1, 'as-sent-more')], spellings[2]))).file;
    expect(await prefixSha256s(grown, 3)).toEqual({ asGiven: files[2]?.sha256, asSent });
  });
});

describe("a comma file's cells quoted otherwise", () => {
  const names = headerOf('healthcare', ',').split(',');
  /** Rows as an export that quotes only where it must writes them: a comma and a double quote in two cells. */
  const cells = (i: number): string[] => names.map((_, c) => (c === 6 ? `Smith, Jo${i}` : c === 7 ? `say "hi" ${i}` : `v${i}.${c}`));
  const minimal = (i: number): string =>
    cells(i)
      .map((cell) => (/[",]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell))
      .join(',');
  const everyCell = (i: number): string =>
    cells(i)
      .map((cell) => `"${cell.replaceAll('"', '""')}"`)
      .join(',');
  const csv = (header: string, rows: string[], eol = '\r\n'): string => [header, ...rows].map((line) => `${line}${eol}`).join('');

  it('reads as the same rows: one sentSha256 whichever cells an export quotes, its identity (sha256) unchanged', async () => {
    const plain = (await check(csv(names.join(','), [0, 1, 2].map(minimal)), DROP, 'healthcare')).file;
    // Quoted only where it must be: the content as read is the content, as it always was.
    expect(plain.sentSha256).toBe(plain.sha256);
    const quoted = (await check(csv(names.join(','), [0, 1, 2].map(everyCell), '\n'), DROP, 'healthcare')).file;
    const both = (await check(csv(names.map((n) => `"${n}"`).join(','), [0, 1, 2].map(everyCell)), DROP, 'healthcare')).file;
    expect([quoted.sentSha256, both.sentSha256]).toEqual([plain.sentSha256, plain.sentSha256]);
    expect(new Set([plain.sha256, quoted.sha256, both.sha256]).size).toBe(3);
    // What is sent is the rows as the file gave them.
    const { text } = await check(csv(names.join(','), [everyCell(0)]), DROP, 'healthcare');
    expect(text.split('\r\n')[1]).toBe(everyCell(0));
    // Its first rows, rows added after them, read alike.
    const grown = (await check(csv(names.join(','), [0, 1, 2, 3].map(everyCell)), DROP, 'healthcare')).file;
    expect((await prefixSha256s(grown, 3)).asSent).toBe(plain.sentSha256);
    expect((await prefixSha256s(grown, 4)).asSent).toBe(grown.sentSha256);
  });

  it('reads alike whatever the reads: a quoted row across chunk edges, after rows read as given', () => {
    const content = Buffer.from(csv(names.join(','), [minimal(0), everyCell(1), minimal(2)]));
    const whole = new LineScanner('<whole>', 'healthcare', 1 << 20);
    whole.push(content);
    whole.end();
    const expected = whole.summary();
    expect(expected.sentSha256).toBe(
      createHash('sha256')
        .update(csv(names.join(','), [0, 1, 2].map(minimal)))
        .digest('hex'),
    );
    for (const size of [1, 7, 64]) {
      const pieces = new LineScanner('<pieces>', 'healthcare', 1 << 20);
      for (let at = 0; at < content.length; at += size) pieces.push(content.subarray(at, at + size));
      pieces.end();
      expect(pieces.summary(), `pieces of ${size}`).toMatchObject({ sha256: expected.sha256, sentSha256: expected.sentSha256, rows: 3 });
    }
  });
});

describe('encodings', () => {
  const rows = epicRows(3, 'enc');

  it('knows WHATWG labels and refuses others', () => {
    expect([encodingName('UTF8'), encodingName('latin1'), encodingName('cp1252'), encodingName('utf-16')]).toEqual([
      'utf-8',
      'windows-1252',
      'windows-1252',
      'utf-16le',
    ]);
    expect(encodingName('klingon')).toBeUndefined();
  });

  it('converts windows-1252, UTF-16LE and UTF-16BE (by their BOM, whatever is configured) to UTF-8', async () => {
    const want = fileText(rows);
    expect((await check(Buffer.from(want, 'latin1'), { ...DROP, encoding: 'windows-1252' })).text).toBe(want);
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(want, 'utf16le')]);
    const result = await check(le);
    expect(result.text).toBe(want);
    expect(result.file.hadBom).toBe(true);
    const be = Buffer.from(want, 'utf16le').swap16();
    expect((await check(Buffer.concat([Buffer.from([0xfe, 0xff]), be]))).text).toBe(want);
    // A UTF-8 BOM wins over a configured windows-1252: the file says what it is.
    expect((await check(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(want)]), { ...DROP, encoding: 'windows-1252' })).text).toBe(want);
  });

  it('refuses a UTF-8 file read as windows-1252 (a decoder that takes any byte would garble every accented name)', async () => {
    const accented = fileText(rows.map((row, i) => (i === 0 ? row.replace(/^([^\t]*\t[^\t]*\t)/, '$1Åse Ødegård ') : row)));
    expect(accented).toContain('Åse');
    const error = await refusal(Buffer.from(accented, 'utf8'), { ...DROP, encoding: 'windows-1252' });
    expect(error.details).toMatchObject({ reason: 'looks-utf8', encoding: 'windows-1252' });
    expect(error.message).toContain('is valid UTF-8 with characters beyond ASCII, but it is read as windows-1252');
    expect(error.message).not.toContain('Ødegård');
    // A CJK name or an emoji elsewhere in the file does not hide it: it is UTF-8 all the same.
    for (const other of ['张伟', 'ok 👍']) {
      const mixed = accented.replace(/(\r\n[^\t]*\t[^\t]*\t)/, `$1${other} `);
      expect(mixed).toContain(other);
      expect((await refusal(Buffer.from(mixed, 'utf8'), { ...DROP, encoding: 'windows-1252' })).details, other).toMatchObject({ reason: 'looks-utf8' });
    }
    // The same text written in windows-1252 is read as it should be; plain ASCII in either is the same file.
    expect((await check(Buffer.from(accented, 'latin1'), { ...DROP, encoding: 'windows-1252' })).text).toBe(accented);
    // Genuine windows-1252 whose bytes happen to pair up as UTF-8 ("É–" is C9 96, U+0256 in UTF-8): let through.
    for (const name of ['CAFÉ–BAR', 'JOSÉ’S']) {
      const text = fileText(rows.map((row, i) => (i === 0 ? row.replace(/^([^\t]*\t[^\t]*\t)/, `$1${name} `) : row))).replace(/[\u0100-\uffff]/g, (c) =>
        c === '–' || c === '’' ? c : 'x',
      );
      const cp1252 = Buffer.from(text.replace('–', '\u0096').replace('’', '\u0092'), 'latin1');
      expect((await check(cp1252, { ...DROP, encoding: 'windows-1252' })).text).toBe(text);
    }
    const ascii = fileText(rows).replace(/[\u0080-\uffff]/g, 'x');
    expect((await check(Buffer.from(ascii, 'utf8'), { ...DROP, encoding: 'windows-1252' })).text).toBe(ascii);
  });

  it('converts across 1 MiB chunk edges, the same hash as the file written in UTF-8', async () => {
    const many = epicRows(6000, 'edge');
    const utf8 = await check(fileText(many));
    const utf16 = await check(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(fileText(many, EPIC_HEADER, '\n'), 'utf16le')]));
    expect(utf16.file.sha256).toBe(utf8.file.sha256);
    expect(utf16.file.rows).toBe(6000);
  });

  it('names line and column of a sequence that is not valid in the encoding', async () => {
    const good = Buffer.from(fileText(rows.slice(0, 1)), 'utf16le');
    const bad = Buffer.concat([Buffer.from([0xff, 0xfe]), good, Buffer.from('abc', 'utf16le'), Buffer.from([0x00, 0xd8]), Buffer.from('x\n', 'utf16le')]);
    const error = await refusal(bad);
    expect(error.message).toMatch(/bad\.txt line 3, column 4 is not valid utf-16le/);
    expect(error.details).toMatchObject({ reason: 'encoding', line: 3, column: 4 });
  });
});

describe('line and column of a bad row', () => {
  it('invalid UTF-8 in a CRLF run and in an LF line: line, character column, field', async () => {
    const row = epicRows(2, 'u')[1] as string;
    const cells = row.split('\t');
    const before = `${cells.slice(0, 6).join('\t')}\tÅ`;
    const bad = Buffer.concat([Buffer.from(before), Buffer.from([0xc3, 0x28]), Buffer.from(`\t${cells.slice(7).join('\t')}`)]);
    for (const eol of ['\r\n', '\n']) {
      const error = await refusal(Buffer.concat([Buffer.from(fileText(epicRows(1, 'x'), EPIC_HEADER, eol)), bad, Buffer.from(eol)]));
      expect(error.message).toContain(`line 3, column ${[...before].length + 1} (field 7 "PATIENT.PAT_FIRST_NAME") is not valid UTF-8`);
      expect(error.details).toMatchObject({ reason: 'not-utf8', line: 3, column: [...before].length + 1, field: 7 });
    }
  });

  it('a NUL or another control character in a row: refused with line, column and field, in a CRLF run and an LF line', async () => {
    const row = epicRows(2, 'c')[1] as string;
    const cells = row.split('\t');
    const before = `${cells.slice(0, 6).join('\t')}\tJo`;
    for (const [control, eol] of [
      ['\u0000', '\r\n'],
      ['\u001b', '\n'],
    ] as const) {
      const bad = `${before}${control}e\t${cells.slice(7).join('\t')}`;
      const error = await refusal(Buffer.from(`${fileText(epicRows(1, 'x'), EPIC_HEADER, eol)}${bad}${eol}`));
      expect(error.message, JSON.stringify(control)).toContain(
        `line 3, column ${[...before].length + 1} (field 7 "PATIENT.PAT_FIRST_NAME") holds a control character`,
      );
      expect(error.details).toMatchObject({ reason: 'control-character', line: 3, field: 7 });
      expect(error.message).not.toContain(`Jo${control}e`);
    }
    // A tab in a pipe-separated file is no control character there: it is taken as written.
    const pipe = fileText(
      epicRows(1, 'p').map((r) => r.replace(/\t/g, '|').replace('|', '\tx|')),
      EPIC_HEADER.replace(/\t/g, '|'),
    );
    expect((await check(pipe)).text).toBe(pipe);
  });

  it('the header again as a row (two exports joined), with or without its byte order mark: refused at that line', async () => {
    const [first, second] = epicRows(2, 'h') as [string, string];
    for (const [again, eol] of [
      [EPIC_HEADER, '\r\n'],
      [`\ufeff${EPIC_HEADER}`, '\r\n'],
      [EPIC_HEADER, '\n'],
    ] as const) {
      const joined = `${EPIC_HEADER}${eol}${first}${eol}${again}${eol}${second}${eol}`;
      const error = await refusal(Buffer.from(joined));
      expect(error.details, JSON.stringify(again.slice(0, 2))).toMatchObject({ reason: 'header-again', line: 3 });
      expect(error.message).toContain('line 3 is the header again (two exports joined into one file?)');
    }
    // A row that only starts with a byte order mark is no header: taken as written.
    const marked = fileText([first, `\ufeff${second}`]);
    expect((await check(marked)).text).toBe(marked);
  });

  it('too many and too few fields: where the extra field starts, where the short row ends', async () => {
    const row = epicRows(1, 'f')[0] as string;
    const many = await refusal(fileText([row, `${row}\tSECRET`]));
    expect(many.message).toContain(`line 3 has 23 field(s), the header has 22 (tab-separated). Field 23 starts at column ${[...row].length + 2}.`);
    expect(many.message).not.toContain('SECRET');
    const few = await refusal(fileText([row.split('\t').slice(0, 5).join('\t')]));
    expect(few.details).toMatchObject({ reason: 'field-count', line: 2, column: [...row.split('\t').slice(0, 5).join('\t')].length + 1 });
  });

  it('bridge push messages stay as they were (no column in the text)', async () => {
    const error = await refusal(Buffer.concat([Buffer.from(`${EPIC_HEADER}\n`), Buffer.from([0x66, 0xe9, 0x65, 0x0a])]), {});
    expect(error.message).toMatch(/bad\.txt line 2 is not valid UTF-8; save the file as UTF-8 and run again\.$/);
    expect(error.details).toMatchObject({ column: 2 });
  });

  it('positions', () => {
    expect(firstInvalidUtf8(Buffer.from('aÅ€😀'))).toBe(-1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong
    expect(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0); // surrogate
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xf0, 0x9f, 0x98]))).toBe(1); // cut short
    expect(firstInvalidUtf8(Buffer.from([0xf5, 0x80, 0x80, 0x80]))).toBe(0);
    expect(columnAt(Buffer.from('Åse\tx'), 4)).toBe(4);
    const csv = Buffer.from('a,"b, c",d');
    expect([fieldAt(csv, 9, 'comma'), fieldStart(csv, 3, 'comma'), fieldStart(csv, 4, 'comma')]).toEqual([3, 9, -1]);
  });
});

describe('fields of a row (enrichment rewrites empty cells only)', () => {
  it('splits as the scanner counts, and re-encodes a value for the delimiter', () => {
    expect(splitFields('a,"b, ""c""",,""', 'comma')).toEqual(['a', '"b, ""c"""', '', '""']);
    expect(['', ' ', '""'].map((f) => isEmptyField(f, 'comma'))).toEqual([true, true, true]);
    expect(isEmptyField('""', 'tab')).toBe(false);
    expect(fieldValue(' "b, ""c""" ', 'comma')).toBe('b, "c"');
    expect(encodeField('O"Neil, Jo', 'comma')).toBe('"O""Neil Jo"');
    expect(encodeField('a|b\tc', 'pipe')).toBe('a b c');
  });
});

describe('the drop folder', () => {
  it('matches names like a shell glob', () => {
    const m = globMatcher('access_log_[0-9]*.t?t');
    expect(['access_log_1.txt', 'access_log_20261101.tst', 'access_log_x.txt', '.access_log_1.txt', 'access_log_1.txt.part'].map(m)).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
    expect(globMatcher('*')('.hidden')).toBe(false);
    expect(globMatcher('[!a]*.txt')('b.txt')).toBe(true);
  });

  it('counts the data lines of a refused file, whatever its line ends', async () => {
    const path = join(dir, 'count.txt');
    writeFileSync(path, `h\r\na\r\n\r\nb\rc\nd`);
    expect(await countDataLines(path)).toBe(4);
    writeFileSync(path, Buffer.from('h\na\nb\n', 'utf16le'));
    expect(await countDataLines(path)).toBe(2);
  });
});

describe('a copy that cannot be written', () => {
  it('is the state directory’s fault (BRG_ERR_STATE, what to free), not the input’s; nothing is left behind', async () => {
    const input = join(dir, 'fine.txt');
    writeFileSync(input, fileText(epicRows(2, 'copy')));
    const error = await normalizeFlatFile(input, join(dir, 'no-such-dir', 'spool.txt'), 'epic', DROP).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BRG_ERR_STATE', message: expect.stringContaining(`Cannot write the normalised copy of ${input}`) });
    expect((error as BridgeError).message).toContain('(ENOENT); nothing of the file was sent');
  });
});
