/**
 * Rows → lines (§8). TAB (default) and PIPE join sanitised cells; CSV (healthcare only) follows RFC 4180 and quotes
 * a cell when it holds a double quote (the delimiter and line breaks were already replaced by sanitising).
 * No terminator: the writer adds CRLF. The header always lists every column, optional ones included.
 */
import { programOf } from './compile.js';
import { DELIMITER_CHAR, isSanitisedFor } from './sanitize.js';
import type { CompiledMapping, Row } from './types.js';

export interface Serializer {
  headerLine(): string;
  line(row: Row): string;
}

export function createSerializer(mapping: CompiledMapping): Serializer {
  const sanitize = programOf(mapping).sanitize;
  const separator = DELIMITER_CHAR[mapping.delimiter];
  const width = mapping.columns.length;
  const csv = mapping.delimiter === 'csv';
  const cell = csv ? (value: string) => quoteCsv(sanitize(value)) : sanitize;
  // Rows from mapEvent (of a mapping with this delimiter) are already clean; any other row is sanitised here, so
  // the column count is exact whoever built the row.
  const header = mapping.columns.map((column) => cell(column.label)).join(separator);
  return {
    headerLine: () => header,
    line(row) {
      const clean = row.length === width && isSanitisedFor(row, mapping.delimiter);
      if (clean && !csv) return row.join(separator);
      const format = clean ? quoteCsv : cell;
      let out = format(row[0] ?? '');
      for (let index = 1; index < width; index += 1) out += separator + format(row[index] ?? '');
      return out;
    },
  };
}

function quoteCsv(value: string): string {
  return value.includes('"') ? `"${value.replace(/"/g, '""')}"` : value;
}
