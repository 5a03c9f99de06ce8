/**
 * `bridge push` input: an operator's export (tab, pipe or comma; UTF-8 with or without BOM; LF, CRLF or CR line ends)
 * becomes a spool the push stage takes, CRLF and UTF-8 without BOM like every block Microsoft's script sends
 * (purview-protocol.md §3.1). Streaming, so a 3 GB export needs no more memory than a small one. The header is checked
 * before the first row is written; lines that are not UTF-8 are refused with their line number rather than mangled
 * into U+FFFD as the script does. Empty lines are dropped (they would arrive as rows without mandatory fields).
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream, createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { BridgeError } from '../errors.js';
import { checkHeader, type ConnectorSchemaName, type Delimiter } from './sniff.js';

export interface FlatFileSummary {
  readonly delimiter: Delimiter;
  readonly columns: readonly string[];
  readonly rows: number;
  readonly blankLines: number;
  /** The input started with a UTF-8 BOM (dropped). */
  readonly hadBom: boolean;
}

const CRLF = Buffer.from('\r\n');
const LF = 0x0a;
const CR = 0x0d;

/** Writes `spoolPath` (0600) from `inputPath`; on any failure the partial spool is removed. */
export async function normalizeFlatFile(inputPath: string, spoolPath: string, schema: ConnectorSchemaName): Promise<FlatFileSummary> {
  const out = createWriteStream(spoolPath, { mode: 0o600, flags: 'w' });
  const splitter = new LineSplitter(inputPath, schema);
  try {
    for await (const chunk of createReadStream(inputPath, { highWaterMark: 1 << 20 })) {
      await write(out, splitter.push(chunk as Buffer));
    }
    await write(out, splitter.end());
    out.end();
    await once(out, 'finish');
    return splitter.summary();
  } catch (error) {
    out.destroy();
    rmSync(spoolPath, { force: true });
    if (error instanceof BridgeError) throw error;
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Cannot read ${inputPath} or write ${spoolPath}.`, { cause: error, details: { file: inputPath } });
  }
}

async function write(out: WriteStream, pieces: Buffer[]): Promise<void> {
  if (pieces.length > 0 && !out.write(Buffer.concat(pieces))) await once(out, 'drain');
}

/** Splits on LF, CRLF or a lone CR (as .NET's StreamReader does), carrying partial lines across chunks. */
class LineSplitter {
  private carry: Buffer[] = [];
  private pendingCr = false;
  private line = 0;
  private rows = 0;
  private blankLines = 0;
  private hadBom = false;
  private started = false;
  private header: { delimiter: Delimiter; columns: string[] } | undefined;

  constructor(private readonly file: string, private readonly schema: ConnectorSchemaName) {}

  push(input: Buffer): Buffer[] {
    const chunk = this.started ? input : this.stripBom(input);
    this.started = true;
    const out: Buffer[] = [];
    let pos = 0;
    // A CR ended the last chunk: an LF right after it belongs to the same line end.
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] === LF) pos = 1;
    }
    // Next LF and CR positions, searched again only once passed, so a line costs O(its length).
    let lf = -2;
    let cr = -2;
    while (pos < chunk.length) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf(LF, pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf(CR, pos);
      const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
      if (end === -1) break;
      this.carry.push(chunk.subarray(pos, end));
      this.emit(out);
      if (chunk[end] === LF) {
        pos = end + 1;
      } else if (end + 1 === chunk.length) {
        this.pendingCr = true;
        pos = chunk.length;
      } else {
        pos = chunk[end + 1] === LF ? end + 2 : end + 1;
      }
    }
    if (pos < chunk.length) this.carry.push(chunk.subarray(pos));
    return out;
  }

  end(): Buffer[] {
    const out: Buffer[] = [];
    if (this.carry.some((part) => part.length > 0)) this.emit(out);
    if (!this.header) this.fail(1, 'is empty; the first line must be the header with the column names.');
    return out;
  }

  summary(): FlatFileSummary {
    const header = this.header as { delimiter: Delimiter; columns: string[] };
    return { delimiter: header.delimiter, columns: header.columns, rows: this.rows, blankLines: this.blankLines, hadBom: this.hadBom };
  }

  private emit(out: Buffer[]): void {
    const line = this.carry.length === 1 ? (this.carry[0] as Buffer) : Buffer.concat(this.carry);
    this.carry = [];
    this.line += 1;
    if (!isUtf8(line)) this.fail(this.line, 'is not valid UTF-8; save the file as UTF-8 and run again.');
    if (!this.header) {
      this.header = checkHeader(line.toString('utf8'), this.schema, this.file);
    } else if (line.length === 0) {
      this.blankLines += 1;
      return;
    } else {
      this.rows += 1;
    }
    out.push(line, CRLF);
  }

  private stripBom(chunk: Buffer): Buffer {
    if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) {
      this.hadBom = true;
      return chunk.subarray(3);
    }
    if ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff)) {
      this.fail(1, 'is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 and run again.');
    }
    return chunk;
  }

  private fail(line: number, what: string): never {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${this.file} line ${line} ${what}`, { details: { file: this.file, line } });
  }
}
