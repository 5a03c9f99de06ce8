/**
 * An event spool: the connector file of one run (header + rows, CRLF, UTF-8 without BOM, 0600) and beside it an index
 * naming, for every event that produced rows, its ledger key, its time and the byte range of its rows. The push reads
 * the index to claim whole events for each block, so acknowledgements are kept per event, not per block of bytes.
 * Both files are fsync'd before the run is marked ready to push; a trailer line proves the index complete, and a
 * spool whose size disagrees with it is refused (it is then pulled again rather than pushed damaged).
 *
 * Index lines (LF): `bridge-event-spool 1<TAB><header bytes>`, then one `<recorded ms or -><TAB><rows><TAB><end
 * offset><TAB><key>` per event, then `end<TAB><rows><TAB><bytes>`.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { ConnectorFileWriter } from '../connector-file/index.js';
import { BridgeError, writingTo } from '../errors.js';
import type { ClaimCursor, EventClaim } from './ledger.js';

const MAGIC = 'bridge-event-spool 1';

/** One event of the spool with the byte range [start, end) of its rows. */
export interface SpoolEvent extends EventClaim {
  readonly start: number;
  readonly end: number;
}

export interface EventRows {
  readonly key: string;
  readonly recordedMs: number | undefined;
  readonly lines: readonly string[];
}

/**
 * Appends events to the spool and the index. Writes go straight to the files (synchronous, ~one write per page), so
 * the pipeline's memory stays at one page whatever the run's size.
 */
export class EventSpoolWriter {
  private readonly spool: ConnectorFileWriter;
  private readonly indexFd: number;
  private rows = 0;
  private closed = false;

  constructor(
    readonly spoolPath: string,
    readonly indexPath: string,
    headerLine: string,
  ) {
    this.spool = onDisk(spoolPath, () => new ConnectorFileWriter(spoolPath, headerLine));
    try {
      this.indexFd = onDisk(indexPath, () => openSync(indexPath, 'w', 0o600));
    } catch (error) {
      this.spool.close();
      throw error;
    }
    onDisk(indexPath, () => writeAll(this.indexFd, `${MAGIC}\t${this.spool.bytes}\n`));
  }

  /** Appends the rows of these events; events without rows are left out of both files. */
  append(events: readonly EventRows[]): void {
    let indexText = '';
    for (const event of events) {
      if (event.lines.length === 0) continue;
      const end = onDisk(this.spoolPath, () => this.spool.append(event.lines));
      this.rows += event.lines.length;
      indexText += `${event.recordedMs ?? '-'}\t${event.lines.length}\t${end}\t${encodeKey(event.key)}\n`;
    }
    if (indexText.length > 0) onDisk(this.indexPath, () => writeAll(this.indexFd, indexText));
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Writes the trailer and makes both files durable. */
  finish(): void {
    onDisk(this.indexPath, () => writeAll(this.indexFd, `end\t${this.rows}\t${this.spool.bytes}\n`));
    onDisk(this.spoolPath, () => this.spool.finish());
    onDisk(this.indexPath, () => fsyncSync(this.indexFd));
    this.close();
  }

  /** Closes without a trailer (a failed pull): such a spool is never pushed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.spool.close();
    closeSync(this.indexFd);
  }
}

export interface EventSpoolReader {
  /** The header line with its CRLF. */
  readonly header: Buffer;
  readonly rows: number;
  readonly cursor: ClaimCursor<SpoolEvent>;
  close(): void;
}

/** True when both files exist, the index has its trailer and the spool has the size the trailer names. */
export function isCompleteEventSpool(spoolPath: string, indexPath: string): boolean {
  try {
    const trailer = readTrailer(indexPath);
    return trailer !== undefined && statSync(spoolPath).size === trailer.bytes;
  } catch {
    return false;
  }
}

/** The header line a complete spool was written with (without its CRLF), or undefined when it cannot be read. */
export function eventSpoolHeader(spoolPath: string, indexPath: string): string | undefined {
  try {
    const spool = openEventSpool(spoolPath, indexPath);
    spool.close();
    return spool.header.toString('utf8').replace(/\r\n$/, '');
  } catch {
    return undefined;
  }
}

export function openEventSpool(spoolPath: string, indexPath: string): EventSpoolReader {
  const trailer = readTrailer(indexPath);
  const spoolSize = statSync(spoolPath).size;
  if (!trailer || spoolSize !== trailer.bytes) {
    throw new BridgeError(
      'BRG_ERR_STATE',
      `The spool ${spoolPath} is incomplete or damaged (its index ${indexPath} does not match it); it cannot be pushed. The next run pulls its window again.`,
      {
        details: { path: spoolPath },
      },
    );
  }
  const lines = new SyncLineReader(indexPath);
  const first = lines.next() ?? '';
  const [magic, headerBytes] = first.split('\t');
  const headerEnd = Number(headerBytes);
  if (magic !== MAGIC || !Number.isInteger(headerEnd)) throw damaged(indexPath, 1);
  const header = Buffer.alloc(headerEnd);
  const fd = openSync(spoolPath, 'r');
  readSync(fd, header, 0, headerEnd, 0);
  closeSync(fd);
  return { header, rows: trailer.rows, cursor: new IndexCursor(lines, headerEnd, indexPath), close: () => lines.close() };
}

class IndexCursor implements ClaimCursor<SpoolEvent> {
  private current: SpoolEvent | undefined;
  private done = false;
  private line = 1;

  constructor(
    private readonly lines: SyncLineReader,
    private start: number,
    private readonly path: string,
  ) {}

  peek(): SpoolEvent | undefined {
    if (this.current === undefined && !this.done) this.current = this.read();
    return this.current;
  }

  take(): void {
    if (this.current) this.start = this.current.end;
    this.current = undefined;
  }

  private read(): SpoolEvent | undefined {
    const text = this.lines.next();
    this.line += 1;
    if (text === undefined || text.startsWith('end\t')) {
      this.done = true;
      return undefined;
    }
    const [recorded, rows, end, key] = splitEntry(text);
    const event = { key: decodeKey(key), recordedMs: recorded === '-' ? undefined : Number(recorded), rows: Number(rows), start: this.start, end: Number(end) };
    if (!(event.rows > 0) || !(event.end > event.start) || (event.recordedMs !== undefined && !Number.isFinite(event.recordedMs))) {
      throw damaged(this.path, this.line);
    }
    return event;
  }
}

/** The last line of the index, if it is a trailer. */
function readTrailer(indexPath: string): { rows: number; bytes: number } | undefined {
  const fd = openSync(indexPath, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 256);
    const tail = Buffer.alloc(length);
    readSync(fd, tail, 0, length, size - length);
    const lines = tail.toString('utf8').split('\n');
    const last = lines[lines.length - 2] ?? '';
    const [tag, rows, bytes] = last.split('\t');
    return tag === 'end' && lines[lines.length - 1] === '' ? { rows: Number(rows), bytes: Number(bytes) } : undefined;
  } finally {
    closeSync(fd);
  }
}

function splitEntry(text: string): [string, string, string, string] {
  const a = text.indexOf('\t');
  const b = text.indexOf('\t', a + 1);
  const c = text.indexOf('\t', b + 1);
  return [text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1, c), text.slice(c + 1)];
}

/** FHIR ids cannot hold these, but a server may send anything: keep one event per line whatever its key. */
function encodeKey(key: string): string {
  return /[\t\r\n%]/.test(key) ? encodeURIComponent(key) : key;
}

function decodeKey(text: string): string {
  return text.includes('%') ? decodeURIComponent(text) : text;
}

function damaged(path: string, line: number): BridgeError {
  return new BridgeError(
    'BRG_ERR_STATE',
    `The spool index ${path} is damaged at line ${line}; the run cannot be pushed from it. The next run pulls its window again.`,
    {
      details: { path, line },
    },
  );
}

/** What a spool that could not be written leaves: it is written whole before its run pushes anything. */
export const SPOOL_UNPUSHED = 'nothing of this run was pushed, and the watermark did not move.';

/**
 * A write of `path`; the machine's refusal (a full disk, a read-only directory) comes out naming the file. The
 * connector file's own open says BRG_ERR_INPUT_INVALID (an output path of `bridge map`): here it is the state's.
 */
function onDisk<T>(path: string, write: () => T): T {
  return writingTo(path, SPOOL_UNPUSHED, write);
}

function writeAll(fd: number, text: string): void {
  const buffer = Buffer.from(text, 'utf8');
  for (let written = 0; written < buffer.length; ) written += writeSync(fd, buffer, written);
}

/** Lines of a file read synchronously in 64 KiB chunks: the ledger consumes them inside its transaction. */
class SyncLineReader {
  private readonly fd: number;
  private readonly buffer = Buffer.allocUnsafe(1 << 16);
  // A multi-byte character may straddle two chunks.
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private position = 0;
  private eof = false;
  private queue: string[] = [];
  private queueAt = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
  }

  next(): string | undefined {
    while (this.queueAt >= this.queue.length) {
      if (this.eof) return undefined;
      const read = readSync(this.fd, this.buffer, 0, this.buffer.length, this.position);
      this.position += read;
      if (read === 0) {
        this.eof = true;
        const rest = this.pending + this.decoder.end();
        this.queue = rest.length > 0 ? [rest] : [];
        this.pending = '';
      } else {
        const parts = (this.pending + this.decoder.write(this.buffer.subarray(0, read))).split('\n');
        this.pending = parts.pop() ?? '';
        this.queue = parts;
      }
      this.queueAt = 0;
    }
    return this.queue[this.queueAt++];
  }

  close(): void {
    closeSync(this.fd);
  }
}
