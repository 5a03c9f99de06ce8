/**
 * Writes a connector file: the header line, then rows, each ended by CRLF, UTF-8 without BOM, mode 0600 (rows hold
 * PHI). Lines are gathered into ~64 KiB writes; the byte offset after each append is returned so callers can index
 * where rows lie (the event spool's index). Synchronous: it is called between pages, and a push reads the file only
 * after `finish()` made it durable.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { BridgeError } from '../errors.js';

/** Bytes gathered before a write; the buffer is allocated once per file and reused. */
const BUFFER_BYTES = 1 << 16;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units). */
const MAX_UTF8_PER_UNIT = 3;

export class ConnectorFileWriter {
  private readonly fd: number;
  private offset = 0;
  /**
   * Lines are encoded straight into one reusable buffer: concatenating strings and encoding them per flush cost
   * `bridge map` a tenth of its time (a cons string flattened, a new Buffer and a byte count per line).
   */
  private readonly buffer = Buffer.allocUnsafeSlow(BUFFER_BYTES);
  private used = 0;
  private closed = false;

  /** Creates (or truncates) `path` 0600, also when it existed with a wider mode, and writes the header line. */
  constructor(
    readonly path: string,
    headerLine: string,
  ) {
    this.fd = openPrivateFile(path);
    this.append([headerLine]);
  }

  /** Where the header ends and the first row starts (after the constructor). */
  get bytes(): number {
    return this.offset;
  }

  /** Appends lines (each gets CRLF); returns the byte offset after the last one. */
  append(lines: readonly string[]): number {
    for (const line of lines) {
      const most = line.length * MAX_UTF8_PER_UNIT + 2;
      if (this.used + most > BUFFER_BYTES) this.flush();
      if (most > BUFFER_BYTES) {
        const bytes = Buffer.from(`${line}\r\n`, 'utf8');
        this.writeAll(bytes, bytes.length);
        this.offset += bytes.length;
        continue;
      }
      const written = this.buffer.write(line, this.used, 'utf8');
      this.buffer[this.used + written] = 0x0d;
      this.buffer[this.used + written + 1] = 0x0a;
      this.used += written + 2;
      this.offset += written + 2;
    }
    return this.offset;
  }

  /** Writes what is gathered and makes the file durable (fsync). */
  finish(): void {
    this.flush();
    fsyncSync(this.fd);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private flush(): void {
    if (this.used === 0) return;
    const used = this.used;
    this.used = 0;
    this.writeAll(this.buffer, used);
  }

  private writeAll(bytes: Buffer, length: number): void {
    for (let written = 0; written < length; ) written += writeSync(this.fd, bytes, written, length - written);
  }
}

/**
 * Creates (or truncates) `path` for writing with mode 0600, also when it existed with a wider mode (the files written
 * here hold PHI); returns the descriptor. BRG_ERR_INPUT_INVALID naming the path when it cannot be written.
 */
export function openPrivateFile(path: string): number {
  try {
    const fd = openSync(path, 'w', 0o600);
    fchmodSync(fd, 0o600);
    return fd;
  } catch (cause) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `Cannot write ${path} (${(cause as NodeJS.ErrnoException).code ?? 'error'}); check the directory exists and is writable.`,
      { cause, details: { file: path } },
    );
  }
}
