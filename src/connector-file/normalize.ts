/**
 * `bridge push` input: an operator's export (tab, pipe or comma; UTF-8 with or without BOM; LF, CRLF or CR line ends)
 * becomes a spool the push stage takes, CRLF and UTF-8 without BOM like every block Microsoft's script sends
 * (docs/purview-protocol.md §2.3). Streaming, so a 3 GB export needs no more memory than a small one. The header is
 * checked before the first row is written, and every row's field count against it; lines that are not UTF-8 are
 * refused with their line number rather than mangled into U+FFFD as the script does. Empty lines are dropped (they
 * would arrive as rows without mandatory fields). The scan itself is scanner.ts.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { BridgeError } from '../errors.js';
import { csvRowsAsRead } from './csv-read.js';
import type { Delimiter } from './delimiters.js';
import { type DecodeInfo, utf8Chunks } from './encoding.js';
import type { RowOffsets } from './row-offsets.js';
import { LineScanner, type ScanOptions } from './scanner.js';
import type { ConnectorSchema } from './schemas.js';

export interface FlatFileSummary {
  readonly delimiter: Delimiter;
  readonly columns: readonly string[];
  readonly rows: number;
  readonly blankLines: number;
  /** The input started with a UTF-8 BOM (dropped). */
  readonly hadBom: boolean;
}

/** The normalised copy the push sends from, with what the ledger needs: its content hash and where rows start. */
export interface NormalizedFile extends FlatFileSummary {
  readonly spoolPath: string;
  /** SHA-256 (hex) of the normalised content: with a row number, the identity of a row for the ledger. */
  readonly sha256: string;
  /**
   * SHA-256 (hex) of the content as Purview reads it: the header line as sent, then the rows, a comma file's with each cell
   * quoted only where it must be (csv-read.ts). Equal to `sha256` when the file spells its header as the schema does and
   * quotes no cell that needs none; the same rows under a header spelled otherwise (quoted, another case), or re-exported
   * with every cell quoted, differ in `sha256` and not here (the grown-from-sent and edited-file checks compare this).
   */
  readonly sentSha256: string;
  /** The header line with its CRLF, as sent (the schema's spelling of its columns). */
  readonly header: Buffer;
  /** The header line with its CRLF as the file gave it, where `sha256` starts (a file's identity did before the respelling). */
  readonly hashedHeader: Buffer;
  readonly bytes: number;
  readonly offsets: RowOffsets;
}

export interface NormalizeOptions extends ScanOptions {
  /** A line longer than this is refused (a file with no line ends would otherwise fill memory). Default 1 MiB. */
  readonly maxLineBytes?: number;
  /**
   * Read the file in this encoding (a WHATWG label: utf-8, windows-1252, utf-16le…), converting it to UTF-8, and let a
   * byte order mark override it (encoding.ts). Default: the bytes must be UTF-8 and a UTF-16 BOM is refused (`bridge push`).
   */
  readonly encoding?: string;
  /** Stops between chunks (a cancelled run does not finish reading a 2 GB file first). */
  readonly signal?: AbortSignal;
}

export const DEFAULT_MAX_LINE_BYTES = 1 << 20;

/**
 * Writes `spoolPath` (0600) from `inputPath`, checking every row's field count against the header before anything
 * is sent; on any failure the partial spool is removed.
 */
export async function normalizeFlatFile(
  inputPath: string,
  spoolPath: string,
  schema: ConnectorSchema,
  options: NormalizeOptions = {},
): Promise<NormalizedFile> {
  const out = createWriteStream(spoolPath, { mode: 0o600, flags: 'w' });
  // A failed write rejects the next `write` below; once we gave up, late write callbacks have nothing to report.
  let failure: Error | undefined;
  out.on('error', (error) => {
    failure ??= error;
  });
  const splitter = new LineScanner(inputPath, schema, options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, options);
  const decoded: DecodeInfo = { encoding: 'utf-8', hadBom: false };
  const chunks =
    options.encoding === undefined ? createReadStream(inputPath, { highWaterMark: 1 << 20 }) : utf8Chunks(inputPath, options.encoding, decoded, options.signal);
  try {
    for await (const chunk of chunks) {
      options.signal?.throwIfAborted();
      await write(out, splitter.push(chunk as Buffer), () => failure);
    }
    await write(out, splitter.end(), () => failure);
    out.end();
    await once(out, 'finish');
    const scanned = splitter.summary();
    return {
      delimiter: scanned.header.delimiter,
      columns: scanned.header.columns,
      rows: scanned.rows,
      blankLines: splitter.blankLines,
      hadBom: splitter.hadBom || decoded.hadBom,
      spoolPath,
      sha256: scanned.sha256,
      sentSha256: scanned.sentSha256,
      header: scanned.headerLine,
      hashedHeader: scanned.hashedHeader,
      bytes: scanned.bytes,
      offsets: scanned.offsets,
    };
  } catch (error) {
    out.destroy();
    rmSync(spoolPath, { force: true });
    if (error instanceof BridgeError || options.signal?.aborted) throw error;
    // The copy could not be written (a full disk, most often): the state directory's fault, not the input's.
    if (error === failure || (error as NodeJS.ErrnoException).path === spoolPath) {
      const code = (error as NodeJS.ErrnoException).code ?? 'an I/O error';
      throw new BridgeError(
        'BRG_ERR_STATE',
        `Cannot write the normalised copy of ${inputPath} to ${spoolPath} (${code}); nothing of the file was sent. ${code === 'ENOSPC' ? 'Free space where it is written (the state directory) and run again.' : 'Check that directory is writable and run again.'}`,
        { cause: error, details: { file: inputPath } },
      );
    }
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Cannot read ${inputPath}.`, { cause: error, details: { file: inputPath } });
  }
}

async function write(out: WriteStream, pieces: Buffer[], failed: () => Error | undefined): Promise<void> {
  const error = failed();
  if (error) throw error;
  if (pieces.length === 0) return;
  // One write per chunk; a single slice of the input needs no copy.
  if (!out.write(pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces))) await once(out, 'drain');
}

/**
 * The first `rows` rows' content hash with the header as the file gave it (`asGiven`: what `sha256` would be) and as
 * Purview reads them (`asSent`: what `sentSha256` would be), from one read of those bytes of the normalised copy.
 */
export async function prefixSha256s(file: NormalizedFile, rows: number): Promise<{ readonly asGiven: string; readonly asSent: string }> {
  const end = file.offsets.offsetOf(file.spoolPath, rows);
  // The copy holds the header as sent, then the rows: each hash takes its header, and the rows from the copy (a comma
  // file's as read: each cell quoted only where it must be).
  const given = createHash('sha256').update(file.hashedHeader);
  const sent = createHash('sha256').update(file.header);
  const read = file.delimiter === 'comma' ? csvRowsAsRead((bytes) => sent.update(bytes)) : { push: (bytes: Buffer) => sent.update(bytes) };
  const start = file.header.length;
  if (end > start)
    for await (const chunk of createReadStream(file.spoolPath, { start, end: end - 1, highWaterMark: 1 << 20 })) {
      given.update(chunk as Buffer);
      read.push(chunk as Buffer);
    }
  return { asGiven: given.digest('hex'), asSent: sent.digest('hex') };
}

/** A content remembered as sent: its identity (`sha256`), its rows, and its hash as sent when that differs (`sentSha256`). */
export interface SentContentHash {
  readonly sha256: string;
  readonly rows: number;
  readonly sentSha256?: string;
}

/**
 * A file's first `earlier.rows` rows (their prefixSha256s) are the earlier content's rows, whatever either file's header
 * spelling, or which cells of a comma file either quotes. An entry without `sentSha256` (its file spelled the header as
 * sent and quoted no cell that needs none, or it was saved before that was kept) matches as it always did, under the
 * header this file gives, and also as read: a re-export that spells or quotes otherwise than a file that did not.
 */
export function holdsContent(prefix: { readonly asGiven: string; readonly asSent: string }, earlier: SentContentHash): boolean {
  return prefix.asSent === (earlier.sentSha256 ?? earlier.sha256) || prefix.asGiven === earlier.sha256;
}
