/**
 * A comma file's row as a CSV reader reads it, for recognising the same rows in another export: each cell quoted only
 * where RFC 4180 needs it (a comma or a double quote in the value). `"a","b"` and `a,b` are one row to a reader, but
 * other bytes: a re-export that quotes every cell where the first quoted none would otherwise be new rows to every
 * check that compares contents, and be sent whole again. Never used to rewrite what is sent.
 */

import { quoteCsvField } from './line.js';

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const COMMA_BYTES = Buffer.from(',');

/** The row (no line end) with each cell in its minimal RFC 4180 quoting; the row itself when it holds no quote. */
export function csvRowAsRead(line: Buffer): Buffer {
  if (!line.includes(QUOTE)) return line;
  const parts: Buffer[] = [];
  let start = 0;
  let quoted = false;
  // Cells split as the scanner counts them: on commas outside double quotes.
  for (let i = 0; i <= line.length; i++) {
    const c = line[i];
    if (i < line.length && c === QUOTE) quoted = !quoted;
    else if (i === line.length || (c === COMMA && !quoted)) {
      if (parts.length > 0) parts.push(COMMA_BYTES);
      parts.push(cellAsRead(line.subarray(start, i)));
      start = i + 1;
    }
  }
  return Buffer.concat(parts);
}

function cellAsRead(raw: Buffer): Buffer {
  // latin1 maps each byte to one character and back: UTF-8 goes through untouched.
  const enclosed = raw.length >= 2 && raw[0] === QUOTE && raw[raw.length - 1] === QUOTE;
  const value = enclosed ? raw.subarray(1, -1).toString('latin1').replaceAll('""', '"') : raw.toString('latin1');
  return Buffer.from(quoteCsvField(value), 'latin1');
}

/**
 * Feeds `update` with the CRLF-ended rows of a normalised copy as read (csvRowAsRead), from chunks cut anywhere; a row
 * goes once its line end has come (the chunks of a prefix end at a row's end).
 */
export function csvRowsAsRead(update: (bytes: Buffer) => void): { push(chunk: Buffer): void } {
  let carry: Buffer[] = [];
  return {
    push(chunk) {
      let from = 0;
      for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, from)) {
        const piece = chunk.subarray(from, lf + 1);
        const line = carry.length === 0 ? piece : Buffer.concat([...carry, piece]);
        carry = [];
        const row = line.subarray(0, line.length - 2);
        const read = csvRowAsRead(row);
        update(read === row ? line : Buffer.concat([read, line.subarray(line.length - 2)]));
        from = lf + 1;
      }
      if (from < chunk.length) carry.push(chunk.subarray(from));
    },
  };
}
