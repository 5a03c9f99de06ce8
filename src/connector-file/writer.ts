/**
 * Writes a connector file: the header line, then rows, each ended by CRLF, UTF-8 without BOM, mode 0600 (rows hold
 * PHI). Lines are gathered into ~64 KiB writes; the byte offset after each append is returned so callers can index
 * where rows lie (the event spool's index). Synchronous: it is called between pages, and a push reads the file only
 * after `finish()` made it durable.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { BridgeError } from '../errors.js';

const CRLF = '\r\n';
const FLUSH_AT = 1 << 16;

export class ConnectorFileWriter {
  private readonly fd: number;
  private offset = 0;
  private pending = '';
  private closed = false;

  /** Creates (or truncates) `path` 0600, also when it existed with a wider mode, and writes the header line. */
  constructor(readonly path: string, headerLine: string) {
    try {
      this.fd = openSync(path, 'w', 0o600);
      fchmodSync(this.fd, 0o600);
    } catch (cause) {
      throw new BridgeError('BRG_ERR_INPUT_INVALID', `Cannot write ${path} (${(cause as NodeJS.ErrnoException).code ?? 'error'}); check the directory exists and is writable.`, {
        cause, details: { file: path },
      });
    }
    this.append([headerLine]);
  }

  /** Where the header ends and the first row starts (after the constructor). */
  get bytes(): number {
    return this.offset;
  }

  /** Appends lines (each gets CRLF); returns the byte offset after the last one. */
  append(lines: readonly string[]): number {
    for (const line of lines) {
      this.pending += line + CRLF;
      this.offset += Buffer.byteLength(line) + 2;
    }
    if (this.pending.length >= FLUSH_AT) this.flush();
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
    if (this.pending.length === 0) return;
    const buffer = Buffer.from(this.pending, 'utf8');
    this.pending = '';
    for (let written = 0; written < buffer.length; ) written += writeSync(this.fd, buffer, written);
  }
}
