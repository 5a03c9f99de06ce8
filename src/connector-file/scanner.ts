/**
 * The single pass over an operator's export that `bridge push` and the drop-folder source make before anything is
 * sent: line ends (LF, CRLF or a lone CR, as .NET's StreamReader splits them) become CRLF, a BOM and empty lines are
 * dropped, every line is checked as UTF-8 and every row's field count against the header, and the normalised bytes
 * are hashed with a checkpoint of row offsets kept. One JavaScript loop per byte does the line and field work, and
 * runs of lines that are already CRLF are passed through as slices of the input chunk, so a well-formed file costs
 * about one copy (see bench/push.ts).
 */
import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { BridgeError } from '../errors.js';
import { csvRowAsRead } from './csv-read.js';
import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';
import { checkHeader } from './header.js';
import { quoteCsvField } from './line.js';
import { columnAt, fieldAt, fieldStart, firstInvalidUtf8 } from './positions.js';
import { RowOffsets } from './row-offsets.js';
import { type ConnectorSchema, SCHEMA_COLUMNS } from './schemas.js';

const CRLF = Buffer.from('\r\n');
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const TAB = 0x09;
/** Below it, a byte is a control character (TAB, LF and CR aside). */
const SPACE = 0x20;

export interface ScannedHeader {
  readonly delimiter: Delimiter;
  readonly columns: string[];
}

export interface ScanOptions {
  /** The header must be the schema's columns exactly, in order (the drop-folder source); default: mandatory ones present. */
  readonly exactHeader?: boolean;
  /** Name the column (and field) of a fault in messages, not only the line (details always carry it). */
  readonly namePositions?: boolean;
  /** What raises the longest row accepted, for the message of a longer one (default `bridge push`'s flag). */
  readonly maxLineBytesSetting?: string;
}

/** What a refusal's details say besides file and line: a stable reason code and, where known, the column. */
interface Fault {
  readonly reason: string;
  readonly column?: number;
  /** 1-based field, and the header's name for it. */
  readonly field?: number;
  readonly fieldName?: string;
}

export class LineScanner {
  private carry: Buffer[] = [];
  private carried = 0;
  private pendingCr = false;
  private readonly hash = createHash('sha256');
  /**
   * The content as Purview reads it (the header in the schema's spelling; a comma file's cells quoted only where needed),
   * hashed beside `hash` from the first line that differs: a re-export that spells its header or quotes its cells another
   * way has another identity and the same rows (NormalizedFile.sentSha256).
   */
  private sentHash: Hash | undefined;
  private written = 0;
  /** The header as sent (with its CRLF), and as the file gave it (a row equal to it is the header again). */
  private headerLine: Buffer | undefined;
  private givenHeader: Buffer | undefined;
  private offsets: RowOffsets | undefined;
  private header: ScannedHeader | undefined;
  private delimiterByte = -1;
  private commaQuotes = false;
  private line = 0;
  private rows = 0;
  /** The line being scanned holds a control character (NUL and the like): refused once it ends, naming where. */
  private controlInLine = false;
  blankLines = 0;
  hadBom = false;
  private started = false;
  /** The file's first bytes while fewer than a BOM's three have come (a pipe may hand them over one read at a time). */
  private lead: Buffer | undefined;

  constructor(
    private readonly file: string,
    private readonly schema: ConnectorSchema,
    private readonly maxLineBytes: number,
    private readonly options: ScanOptions = {},
  ) {}

  /** Consumes a chunk; returns the normalised bytes it completes (slices of the chunk where nothing changed). */
  push(input: Buffer): Buffer[] {
    let chunk = input;
    if (!this.started) {
      // Whether the file (after any BOMs already dropped) starts with a BOM is known only with three bytes of it.
      const rest = this.stripBom(this.lead === undefined ? input : Buffer.concat([this.lead, input]));
      if (rest.length < BOM.length) {
        this.lead = rest;
        return [];
      }
      this.lead = undefined;
      chunk = rest;
      this.started = true;
    }
    const out: Buffer[] = [];
    let pos = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] === LF) pos = 1; // the LF of a CRLF split across chunks
    }
    while (this.header === undefined && pos < chunk.length) pos = this.headerStep(chunk, pos, out);
    if (this.header !== undefined && pos < chunk.length) pos = this.scanRows(chunk, pos, out);
    if (pos < chunk.length) this.keep(chunk.subarray(pos));
    return out;
  }

  /** The last line may lack its end; a file without a header is refused. */
  end(): Buffer[] {
    const out: Buffer[] = [];
    if (!this.started && this.lead !== undefined) {
      // One or two bytes after any BOMs (push dropped those, and refused a UTF-16 BOM): read as any start is.
      const lead = this.lead;
      this.lead = undefined;
      this.started = true;
      out.push(...this.push(lead));
    }
    if (this.carried > 0) this.lineEnded(Buffer.alloc(0), 0, 0, out);
    if (!this.header) this.fail(1, 'is empty; the first line must be the header with the column names.', { reason: 'empty' });
    return out;
  }

  summary(): {
    header: ScannedHeader;
    rows: number;
    sha256: string;
    sentSha256: string;
    headerLine: Buffer;
    hashedHeader: Buffer;
    bytes: number;
    offsets: RowOffsets;
  } {
    const sha256 = this.hash.digest('hex');
    return {
      header: this.header as ScannedHeader,
      rows: this.rows,
      sha256,
      sentSha256: this.sentHash?.digest('hex') ?? sha256,
      headerLine: this.headerLine as Buffer,
      hashedHeader: Buffer.concat([this.givenHeader as Buffer, CRLF]),
      bytes: this.written,
      offsets: this.offsets as RowOffsets,
    };
  }

  /** Until the header is known there is no delimiter to count: find its end the simple way. */
  private headerStep(chunk: Buffer, pos: number, out: Buffer[]): number {
    const end = nextLineEnd(chunk, pos);
    if (end === -1) {
      this.keep(chunk.subarray(pos));
      return chunk.length;
    }
    this.lineEnded(chunk, pos, end, out);
    return this.afterEnd(chunk, end);
  }

  /** The hot loop: counts fields and finds line ends in one pass; untouched CRLF lines stay one slice. */
  private scanRows(chunk: Buffer, start: number, out: Buffer[]): number {
    const delimiter = this.delimiterByte;
    const quotes = this.commaQuotes;
    let lineStart = start;
    let runStart = start;
    let fields = 1;
    let quoted = false;
    /** A comma line with a quote goes through lineEnded: its cells may be quoted where they need not be (sentHash). */
    let sawQuote = false;
    const n = chunk.length;
    for (let i = start; i < n; i++) {
      const c = chunk[i] as number;
      if (c === delimiter) {
        if (!quoted) fields += 1;
        continue;
      }
      if (c === QUOTE && quotes) {
        quoted = !quoted;
        sawQuote = true;
        continue;
      }
      if (c >= SPACE) continue;
      if (c !== LF && c !== CR) {
        if (c !== TAB) this.controlInLine = true;
        continue;
      }
      const crlf = c === CR && i + 1 < n && chunk[i + 1] === LF;
      const plain = crlf && this.carried === 0 && i > lineStart && !sawQuote;
      if (plain) {
        this.row(chunk, lineStart, i, fields);
      } else {
        if (lineStart > runStart) this.emitRun(chunk, runStart, lineStart, out);
        this.lineEnded(chunk, lineStart, i, out, this.carried === 0 ? fields : undefined);
      }
      i = this.afterEnd(chunk, i) - 1;
      lineStart = i + 1;
      if (!plain) runStart = lineStart;
      fields = 1;
      this.controlInLine = false;
      quoted = false;
      sawQuote = false;
    }
    if (lineStart > runStart) this.emitRun(chunk, runStart, lineStart, out);
    return lineStart;
  }

  /** A CRLF line of the chunk that passed through untouched. */
  private row(chunk: Buffer, start: number, end: number, fields: number): void {
    this.line += 1;
    if (end - start > this.maxLineBytes) this.tooLong();
    if (this.controlInLine) this.controlCharacter(chunk.subarray(start, end));
    if (this.isHeaderAgain(chunk, start, end)) this.headerAgain();
    if (fields !== (this.header as ScannedHeader).columns.length) this.fieldsWrong(fields, chunk.subarray(start, end));
    this.rows += 1;
    this.written += end - start + 2;
    (this.offsets as RowOffsets).rowEnded(this.written);
  }

  /** Passes [start, end) of the chunk, whole CRLF lines already counted by row(), to the output and the hash. */
  private emitRun(chunk: Buffer, start: number, end: number, out: Buffer[]): void {
    const run = chunk.subarray(start, end);
    if (!isUtf8(run)) this.findBadUtf8(run);
    this.hash.update(run);
    this.sentHash?.update(run);
    out.push(run);
  }

  /** Any other line: carried over a chunk edge, LF or CR ended, empty, or the header. */
  private lineEnded(chunk: Buffer, start: number, end: number, out: Buffer[], knownFields?: number): void {
    this.keep(chunk.subarray(start, end));
    let line = this.carry.length === 1 ? (this.carry[0] as Buffer) : Buffer.concat(this.carry);
    this.carry = [];
    this.carried = 0;
    this.line += 1;
    if (!isUtf8(line)) this.notUtf8(this.line, line);
    if (this.controlInLine) this.controlCharacter(line);
    // The content hash (the file's identity in the ledger) reads the header as the file gives it, as it always did: a
    // file sent before the header went in the schema's spelling keeps its identity, and its rows are not sent again.
    const hashed = line;
    let read = line;
    if (!this.header) {
      line = this.startRows(line);
      read = line;
    } else if (line.length === 0) {
      this.blankLines += 1;
      return;
    } else {
      if (this.isHeaderAgain(line, 0, line.length)) this.headerAgain();
      if (this.commaQuotes) this.refuseOpenQuote(line);
      const fields = knownFields ?? countFields(line, this.header.delimiter);
      if (fields !== this.header.columns.length) this.fieldsWrong(fields, line);
      this.rows += 1;
      read = this.asRead(line);
    }
    this.hash.update(hashed);
    this.hash.update(CRLF);
    // The header as sent, then the rows as read (the header line is `line` here: startRows gave the sent spelling).
    this.sentHash?.update(read);
    this.sentHash?.update(CRLF);
    this.written += line.length + 2;
    if (this.offsets) this.offsets.rowEnded(this.written);
    else this.offsets = new RowOffsets(this.written);
    out.push(line, CRLF);
  }

  /**
   * A comma row as a CSV reader reads it (csv-read.ts). The first row that differs starts `sentHash` from `hash`, which
   * holds the content read so far: every earlier line read as given, or `sentHash` would have started before.
   */
  private asRead(line: Buffer): Buffer {
    if (!this.commaQuotes) return line;
    const read = csvRowAsRead(line);
    if (read !== line && !read.equals(line)) this.sentHash ??= this.hash.copy();
    return read;
  }

  /** Checks the header line; returns the header to send: each column the schema has in the schema's own spelling. */
  private startRows(line: Buffer): Buffer {
    const exact = this.options.exactHeader === true;
    this.header = checkHeader(line.toString('utf8'), this.schema, this.file, { exact, namePositions: this.options.namePositions === true });
    // A copy: the line may be a view of a chunk whose buffer the reader reuses.
    this.givenHeader = Buffer.from(line);
    // The check takes names in any case, quoted, padded; Purview reads a tab or pipe file's quotes and spaces as part of
    // the name, and a job takes one header spelling: a column the check took as the schema's goes in the schema's
    // spelling, any other as the check read it (unquoted, trimmed).
    const spelling = new Map(SCHEMA_COLUMNS[this.schema].map((column) => [column.name.toLowerCase(), column.name]));
    const names = this.header.columns.map((column) => spelling.get(column.toLowerCase()) ?? column);
    // A comma file's other name that holds a comma or a quote goes quoted, as RFC 4180 says, or it would be other columns.
    const written = this.header.delimiter === 'comma' ? names.map(quoteCsvField) : names;
    const sent = Buffer.from(written.join(DELIMITER_CHARS[this.header.delimiter]));
    this.headerLine = Buffer.concat([sent, CRLF]);
    if (!sent.equals(this.givenHeader)) this.sentHash = createHash('sha256');
    this.delimiterByte = DELIMITER_CHARS[this.header.delimiter].charCodeAt(0);
    this.commaQuotes = this.header.delimiter === 'comma';
    return sent;
  }

  /** The position after the line end at `end` (LF, CR or CRLF); a CR that ends the chunk may be half a CRLF. */
  private afterEnd(chunk: Buffer, end: number): number {
    if (chunk[end] === LF) return end + 1;
    if (end + 1 === chunk.length) {
      this.pendingCr = true;
      return end + 1;
    }
    return chunk[end + 1] === LF ? end + 2 : end + 1;
  }

  /** Carries part of a line to the next chunk, refusing a line that never ends before it fills memory. */
  private keep(part: Buffer): void {
    if (part.length === 0) return;
    this.carried += part.length;
    if (this.carried > this.maxLineBytes) this.tooLong(this.line + 1);
    this.carry.push(part);
  }

  /**
   * Every row has as many fields as the header: a shifted row would put values under the wrong columns in Purview.
   * Only counts are reported (cells are PHI), and whether another delimiter would fit.
   */
  private fieldsWrong(fields: number, line: Buffer): never {
    const header = this.header as ScannedHeader;
    const other = (Object.keys(DELIMITER_CHARS) as Delimiter[]).find((d) => d !== header.delimiter && countFields(line, d) === header.columns.length);
    const hint = other ? ` It looks ${other}-separated while the header is ${header.delimiter}-separated: one delimiter per file.` : '';
    const expected = header.columns.length;
    // Too many: where the first extra field starts; too few: where the row ends.
    const start = fields > expected ? fieldStart(line, expected + 1, header.delimiter) : -1;
    const fault: Fault =
      start >= 0
        ? { reason: 'field-count', column: columnAt(line, start), field: expected + 1 }
        : { reason: 'field-count', column: columnAt(line, line.length) };
    const where = !this.options.namePositions
      ? ''
      : start >= 0
        ? ` Field ${expected + 1} starts at column ${fault.column}.`
        : ` The row ends at column ${fault.column}.`;
    this.fail(
      this.line,
      `has ${fields} field(s), the header has ${expected} (${header.delimiter}-separated).${where}${hint} Fix the row or re-export the file; nothing was sent.`,
      fault,
    );
  }

  /**
   * A comma row whose last cell opens a quote and the line ends before it closes: a line break inside a quoted cell (the
   * rest of the cell, and of the row, is on the next line), or a row cut short. Its fields may even count right, and it
   * would go out with its quote open: a reader that honours quotes reads the next rows into that cell. Only a cell that
   * starts with its quote is taken as quoted; a stray quote inside a cell is left to the field count.
   */
  private refuseOpenQuote(line: Buffer): void {
    const at = openQuotedCell(line);
    if (at < 0) return;
    const header = this.header as ScannedHeader;
    const field = fieldAt(line, at, header.delimiter);
    const fieldName = header.columns[field - 1];
    this.fail(
      this.line,
      'opens a quoted cell that the line ends before it closes: a line break inside the cell (Purview reads one row per line) or a row cut short. Re-export the file without line breaks in cells, or fix the row; nothing was sent.',
      { reason: 'open-quote', column: columnAt(line, at), field, ...(fieldName ? { fieldName } : {}) },
    );
  }

  /**
   * The header once more, as a row: two exports joined into one file, or an export that appends to its last. It would
   * reach Purview as a row of column names (its byte order mark included).
   */
  private isHeaderAgain(chunk: Buffer, start: number, end: number): boolean {
    const from = chunk[start] === 0xef && chunk[start + 1] === 0xbb && chunk[start + 2] === 0xbf ? start + 3 : start;
    const header = this.givenHeader as Buffer;
    return end - from === header.length && chunk.compare(header, 0, header.length, from, end) === 0;
  }

  private headerAgain(): never {
    this.fail(this.line, 'is the header again (two exports joined into one file?): split the file at that line, or remove it, and run again.', {
      reason: 'header-again',
    });
  }

  /**
   * A NUL or another C0 control character (TAB aside) in a row: a corrupt or binary export, never a name or a time.
   * Purview's parser may take it for a line end or refuse the whole block; it is refused here, saying where.
   */
  private controlCharacter(line: Buffer): never {
    let at = 0;
    while (at < line.length && ((line[at] as number) >= SPACE || line[at] === TAB)) at++;
    const header = this.header;
    const field = header ? fieldAt(line, at, header.delimiter) : undefined;
    const fieldName = field !== undefined ? header?.columns[field - 1] : undefined;
    const byte = `0x${(line[at] ?? 0).toString(16).padStart(2, '0')}`;
    this.fail(this.line, `holds a control character (byte ${byte}), which no export column holds: re-export the file or remove it, and run again.`, {
      reason: 'control-character',
      column: columnAt(line, at),
      ...(field !== undefined ? { field } : {}),
      ...(fieldName ? { fieldName } : {}),
    });
  }

  private notUtf8(lineNumber: number, line: Buffer): never {
    const bad = firstInvalidUtf8(line);
    const header = this.header;
    const field = header && bad >= 0 ? fieldAt(line, bad, header.delimiter) : undefined;
    const fieldName = field !== undefined ? header?.columns[field - 1] : undefined;
    const fault: Fault =
      bad < 0
        ? { reason: 'not-utf8' }
        : { reason: 'not-utf8', column: columnAt(line, bad), ...(field !== undefined ? { field } : {}), ...(fieldName ? { fieldName } : {}) };
    this.fail(lineNumber, 'is not valid UTF-8; save the file as UTF-8 and run again.', fault);
  }

  private findBadUtf8(run: Buffer): never {
    let line = this.line - countLines(run);
    let start = 0;
    for (let lf = run.indexOf(LF); lf !== -1; lf = run.indexOf(LF, lf + 1)) {
      line += 1;
      if (!isUtf8(run.subarray(start, lf))) this.notUtf8(line, run.subarray(start, lf));
      start = lf + 1;
    }
    this.fail(this.line, 'is not valid UTF-8; save the file as UTF-8 and run again.', { reason: 'not-utf8' });
  }

  private tooLong(line = this.line): never {
    this.fail(
      line,
      `is longer than ${this.maxLineBytes} bytes without a line end; a connector file has one row per line (raise ${this.options.maxLineBytesSetting ?? '--max-line-bytes'} if rows really are this long).`,
      { reason: 'line-too-long' },
    );
  }

  private stripBom(chunk: Buffer): Buffer {
    // Every leading BOM goes (a file saved again by a tool that adds one keeps the first): a BOM left at the start of
    // the header would make its first column another name to Purview, and the file would not be imported.
    let start = 0;
    while (chunk[start] === 0xef && chunk[start + 1] === 0xbb && chunk[start + 2] === 0xbf) start += BOM.length;
    if (start > 0) {
      this.hadBom = true;
      return chunk.subarray(start);
    }
    if ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff)) {
      this.fail(1, 'is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 and run again.', { reason: 'utf16' });
    }
    return chunk;
  }

  private fail(line: number, what: string, fault: Fault): never {
    const named = this.options.namePositions && fault.column !== undefined && NAMED_AT_COLUMN.has(fault.reason);
    const field = fault.field !== undefined ? ` (field ${fault.field}${fault.fieldName ? ` "${fault.fieldName}"` : ''})` : '';
    const where = named ? `line ${line}, column ${fault.column}${field}` : `line ${line}`;
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${this.file} ${where} ${what}`, { details: { file: this.file, line, ...fault } });
  }
}

/** Refusals whose message names the column (and field) when asked to; others say it in their own words. */
const NAMED_AT_COLUMN: ReadonlySet<string> = new Set(['not-utf8', 'control-character', 'open-quote']);

/**
 * Where the last cell of a comma line opens a quote the line does not close (that cell starts with it), or -1: as the
 * field count reads quotes, a cell's quotes toggle, and only commas outside them split cells.
 */
export function openQuotedCell(line: Buffer): number {
  if (!line.includes(QUOTE)) return -1;
  const comma = DELIMITER_CHARS.comma.charCodeAt(0);
  let quoted = false;
  let cellStart = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === QUOTE) quoted = !quoted;
    else if (c === comma && !quoted) cellStart = i + 1;
  }
  return quoted && line[cellStart] === QUOTE ? cellStart : -1;
}

/**
 * Fields in one line. Comma files may quote fields ("a, b"), so commas inside quotes do not count; tab and pipe
 * files are split as Purview's tab- and pipe-separated formats are, on every delimiter.
 */
export function countFields(line: Buffer, delimiter: Delimiter): number {
  const byte = DELIMITER_CHARS[delimiter].charCodeAt(0);
  let fields = 1;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === QUOTE && delimiter === 'comma') quoted = !quoted;
    else if (c === byte && !quoted) fields += 1;
  }
  return fields;
}

function nextLineEnd(chunk: Buffer, from: number): number {
  const lf = chunk.indexOf(LF, from);
  const cr = chunk.indexOf(CR, from);
  return cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
}

function countLines(run: Buffer): number {
  let n = 0;
  for (let lf = run.indexOf(LF); lf !== -1; lf = run.indexOf(LF, lf + 1)) n += 1;
  return n;
}
