/**
 * Where in a line something is wrong, as an operator's editor shows it: the 1-based character column and the field.
 * Only positions leave here, never the bytes at them (cells are PHI). Used on the one failing line, so a plain loop
 * is fast enough.
 */
import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';

const QUOTE = 0x22;

/** 1-based character column of byte `offset` of a UTF-8 line: UTF-8 continuation bytes do not start characters. */
export function columnAt(line: Buffer, offset: number): number {
  let chars = 0;
  const end = Math.min(offset, line.length);
  for (let i = 0; i < end; i++) if (((line[i] as number) & 0xc0) !== 0x80) chars += 1;
  return chars + 1;
}

/**
 * Byte offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or -1 when the whole line is UTF-8.
 */
export function firstInvalidUtf8(line: Buffer): number {
  let i = 0;
  while (i < line.length) {
    const b = line[i] as number;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    const length = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (length === 0 || i + length > line.length) return i;
    // The second byte's range is narrower after E0, ED, F0 and F4 (overlongs, surrogates, beyond U+10FFFF).
    const second = line[i + 1] as number;
    const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    if (second < low || second > high) return i;
    for (let k = 2; k < length; k++) if (((line[i + k] as number) & 0xc0) !== 0x80) return i;
    i += length;
  }
  return -1;
}

/** Byte offset where field `n` (1-based) of the line starts, or -1 when the line has fewer fields. Comma files honour quotes. */
export function fieldStart(line: Buffer, n: number, delimiter: Delimiter): number {
  if (n <= 1) return 0;
  const byte = DELIMITER_CHARS[delimiter].charCodeAt(0);
  let field = 1;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === QUOTE && delimiter === 'comma') quoted = !quoted;
    else if (c === byte && !quoted) {
      field += 1;
      if (field === n) return i + 1;
    }
  }
  return -1;
}

/** 1-based field holding byte `offset`. */
export function fieldAt(line: Buffer, offset: number, delimiter: Delimiter): number {
  const byte = DELIMITER_CHARS[delimiter].charCodeAt(0);
  let field = 1;
  let quoted = false;
  for (let i = 0; i < Math.min(offset, line.length); i++) {
    const c = line[i];
    if (c === QUOTE && delimiter === 'comma') quoted = !quoted;
    else if (c === byte && !quoted) field += 1;
  }
  return field;
}
