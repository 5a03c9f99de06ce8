/**
 * A drop folder's files in another text encoding than UTF-8 (a Clarity export on Windows is often windows-1252 or
 * UTF-16), converted to UTF-8 as they stream, before the scanner sees them. A byte order mark wins over the configured
 * encoding, as in .NET's StreamReader (which Microsoft's script reads files with): EF BB BF is UTF-8, FF FE UTF-16LE,
 * FE FF UTF-16BE. UTF-8 input passes through untouched: the scanner checks it byte by byte and names the bad column.
 * Node's TextDecoder (full ICU) does the work; the WHATWG names are what it accepts (latin1 is windows-1252 there).
 */
import { createReadStream } from 'node:fs';
import { TextDecoder } from 'node:util';
import { BridgeError } from '../errors.js';

const CHUNK = 1 << 20;

/** The canonical WHATWG name of an encoding label (`utf8` → `utf-8`, `latin1` → `windows-1252`), or undefined. */
export function encodingName(label: string): string | undefined {
  try {
    return new TextDecoder(label.trim()).encoding;
  } catch {
    return undefined;
  }
}

/** What the decoding found out, read after the stream ended. */
export interface DecodeInfo {
  /** The encoding the bytes were read as (the BOM's, else the configured one). */
  encoding: string;
  /** A UTF-16 BOM was removed here (a UTF-8 BOM is left for the scanner, which reports it). */
  hadBom: boolean;
}

/**
 * Chunks of the file as UTF-8. Throws BRG_ERR_INPUT_INVALID naming the file, line and (about) the column of the
 * first byte sequence that is not valid in the encoding; never the bytes.
 */
export async function* utf8Chunks(path: string, encoding: string, info: DecodeInfo, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const configured = encodingName(encoding);
  if (!configured)
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `"${encoding}" is not a text encoding Node knows; use e.g. utf-8, windows-1252, latin1 or utf-16le.`);
  info.encoding = configured;
  let decoder: TextDecoder | undefined;
  let lookalike: Utf8Lookalike | undefined;
  const lines = new LineCounter();
  let first = true;
  for await (const raw of createReadStream(path, { highWaterMark: CHUNK })) {
    signal?.throwIfAborted();
    const chunk = raw as Buffer;
    if (first) {
      first = false;
      info.encoding = bomEncoding(chunk) ?? configured;
      if (info.encoding !== 'utf-8') {
        decoder = new TextDecoder(info.encoding, { fatal: true });
        info.hadBom = info.encoding.startsWith('utf-16') && bomEncoding(chunk) !== undefined;
        if (SINGLE_BYTE.test(info.encoding)) lookalike = new Utf8Lookalike();
      }
    }
    if (!decoder) {
      yield chunk;
      continue;
    }
    lookalike?.feed(chunk);
    yield Buffer.from(decodeOrFail(decoder, chunk, true, lines, path, info.encoding), 'utf8');
  }
  if (decoder) {
    const rest = decodeOrFail(decoder, Buffer.alloc(0), false, lines, path, info.encoding);
    if (rest.length > 0) yield Buffer.from(rest, 'utf8');
  }
  if (lookalike?.end()) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${path} is valid UTF-8 with characters beyond ASCII, but it is read as ${info.encoding} (the encoding set for it): its names and addresses would reach Purview garbled ("Åse" as "Ã…se"). ` +
        `Set the encoding to utf-8, or re-export the file in ${info.encoding}. Nothing was sent.`,
      { details: { file: path, reason: 'looks-utf8', encoding: info.encoding } },
    );
  }
}

/** WHATWG's single-byte encodings: every byte is a character, so a decoder of one never fails. */
const SINGLE_BYTE = /^(ibm866|iso-8859-\d+|koi8-[ru]|macintosh|windows-\d+|x-mac-cyrillic)$/;

/**
 * Watches a file read in a single-byte encoding (windows-1252, latin1, …): one that is valid UTF-8 as a whole and
 * holds at least one character names are written in (Latin, Greek, Cyrillic, dashes, quotes, €) was written as UTF-8.
 * Such a decoder accepts any byte, so nothing else would say so. Other characters (a CJK name, an emoji in a
 * break-the-glass comment) do not outweigh that: single-byte text with accented letters is almost never valid UTF-8 at
 * all, and a file that only pairs up into IPA or CJK ("É–" is U+0256) by chance holds no such character and passes.
 */
class Utf8Lookalike {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private valid = true;
  private plausible = false;

  feed(chunk: Buffer): void {
    if (!this.valid) return;
    try {
      this.look(this.decoder.decode(chunk, { stream: true }));
    } catch {
      this.valid = false;
    }
  }

  /** True when the whole file was valid UTF-8 holding a character beyond ASCII that looks like a written name's. */
  end(): boolean {
    if (!this.valid) return false;
    try {
      this.look(this.decoder.decode());
    } catch {
      return false;
    }
    return this.plausible;
  }

  private look(text: string): void {
    if (!this.plausible && PLAUSIBLE.test(text)) this.plausible = true;
  }
}

/** Beyond ASCII: Latin-1 letters and signs, Latin Extended-A/B, Greek, Cyrillic, general punctuation, €, ™. */
const PLAUSIBLE = /[\u00a0-\u024f\u0370-\u04ff\u2010-\u2027\u2030-\u203a\u20ac\u2122]/;

function bomEncoding(chunk: Buffer): string | undefined {
  if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) return 'utf-8';
  if (chunk[0] === 0xff && chunk[1] === 0xfe) return 'utf-16le';
  if (chunk[0] === 0xfe && chunk[1] === 0xff) return 'utf-16be';
  return undefined;
}

function decodeOrFail(decoder: TextDecoder, chunk: Buffer, stream: boolean, lines: LineCounter, path: string, encoding: string): string {
  let text: string;
  try {
    text = decoder.decode(chunk, { stream });
  } catch (cause) {
    // The fatal decoder says only that the chunk is bad: a lenient decode of it shows where (U+FFFD), give or take
    // a sequence split across the chunk edge.
    const lenient = new TextDecoder(encoding).decode(chunk);
    const bad = lenient.indexOf('\ufffd');
    const at = lines.positionAfter(bad >= 0 ? lenient.slice(0, bad) : '');
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${path} line ${at.line}, column ${at.column} is not valid ${encoding} (the encoding it is read as); re-export it in that encoding, or set the encoding it really has. Nothing was sent.`,
      { cause, details: { file: path, line: at.line, column: at.column, reason: 'encoding', encoding } },
    );
  }
  lines.add(text);
  return text;
}

/** Line and column (1-based, in characters) of decoded text, counting LF, CRLF and CR as one line end each. */
class LineCounter {
  private line = 1;
  private column = 1;
  private afterCr = false;

  add(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a && this.afterCr) {
        this.afterCr = false;
        continue;
      }
      this.afterCr = c === 0x0d;
      if (c === 0x0a || c === 0x0d) {
        this.line += 1;
        this.column = 1;
      } else if (c < 0xdc00 || c > 0xdfff) this.column += 1; // a low surrogate ends a character already counted
    }
  }

  /** Where the text after everything added so far, plus `more`, ends. */
  positionAfter(more: string): { line: number; column: number } {
    const copy = new LineCounter();
    copy.line = this.line;
    copy.column = this.column;
    copy.afterCr = this.afterCr;
    copy.add(more);
    return { line: copy.line, column: copy.column };
  }
}
