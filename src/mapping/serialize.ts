/**
 * Rows → lines (docs/mapping.md §8.2, §8.4). TAB (default) and PIPE join sanitised cells; CSV (healthcare only) follows
 * RFC 4180 and quotes a cell when it holds a double quote (the delimiter and line breaks were already replaced by
 * sanitising). No terminator: the writer adds CRLF. The header always lists every column, optional ones included.
 */
import { joinCells } from '../connector-file/index.js';
import { programOf } from './compile.js';
import { MappedEvent } from './mapped-event.js';
import type { CompiledMapping, EventMapResult, Row } from './types.js';

export interface Serializer {
  headerLine(): string;
  /** The lines of one mapEvent result, one per row: those mapEvent made with the rows, for this delimiter. */
  lines(result: EventMapResult): readonly string[];
  /** Any row: every cell is sanitised here, so the column count is exact whoever built the row. */
  line(row: Row): string;
}

export function createSerializer(mapping: CompiledMapping): Serializer {
  const sanitize = programOf(mapping).sanitize;
  const width = mapping.columns.length;
  const header = joinCells(
    mapping.columns.map((column) => sanitize(column.label)),
    mapping.delimiter,
  );
  const line = (row: Row): string =>
    joinCells(
      Array.from({ length: width }, (_, index) => sanitize(row[index] ?? '')),
      mapping.delimiter,
    );
  return {
    headerLine: () => header,
    line,
    lines: (result) => MappedEvent.linesFor(result, mapping.delimiter) ?? result.rows.map(line),
  };
}
