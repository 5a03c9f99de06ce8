/**
 * The line a row becomes (§8), built while the row is mapped. A run of adjacent columns memoised per patient (or
 * per user) is joined once per view into one piece, so a line is a join of the event cells and a few pre-joined
 * segments: fewer pieces, and one string read per run instead of one per cell (bench/transform.ts: the join was
 * the largest single cost once cells were memoised).
 */
import type { CellScope } from './compile.js';
import { DELIMITER_CHAR } from './sanitize.js';
import type { Delimiter } from './types.js';

/** A line piece: one event column's cell, or run `run` of `scope`'s memoised cells (column is then -1). */
interface Piece {
  readonly column: number;
  readonly scope: CellScope | undefined;
  readonly run: number;
}

/** Consecutive memoised columns: their positions [start, start + count) in the view's cells. */
interface Run {
  readonly start: number;
  readonly count: number;
}

export interface LineLayout {
  readonly separator: string;
  readonly csv: boolean;
  readonly pieces: readonly Piece[];
  readonly runs: Readonly<Record<CellScope, readonly Run[]>>;
}

/**
 * @param scopes - each column's scope, in column order.
 * @param positions - each memoised column's position in its scope's cells (-1 for event columns).
 */
export function compileLayout(scopes: ReadonlyArray<CellScope | 'event'>, positions: readonly number[], delimiter: Delimiter): LineLayout {
  const pieces: Piece[] = [];
  const runs: Record<CellScope, Run[]> = { patient: [], user: [] };
  scopes.forEach((scope, column) => {
    if (scope === 'event') {
      pieces.push({ column, scope: undefined, run: -1 });
      return;
    }
    const last = runs[scope].at(-1);
    if (scopes[column - 1] === scope && last) runs[scope][runs[scope].length - 1] = { start: last.start, count: last.count + 1 };
    else {
      runs[scope].push({ start: positions[column] as number, count: 1 });
      pieces.push({ column: -1, scope, run: runs[scope].length - 1 });
    }
  });
  return { separator: DELIMITER_CHAR[delimiter], csv: delimiter === 'csv', pieces, runs };
}

/** RFC 4180 quoting of a sanitised cell (it holds no delimiter or line break, only perhaps a double quote). */
export function quoteCsv(value: string): string {
  return value.includes('"') ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The pre-joined runs of one view's memoised cells. */
export function segmentsOf(layout: LineLayout, scope: CellScope, cells: readonly string[]): string[] {
  return layout.runs[scope].map((run) => joinCells(layout, cells, run.start, run.start + run.count));
}

/**
 * The row's line from its cells and the views' segments; without a view (unresolved resource) its runs are joined
 * from the cells here.
 */
export function buildLine(
  layout: LineLayout, cells: readonly string[], patientSegments: readonly string[] | undefined, userSegments: readonly string[] | undefined,
): string {
  const pieces = layout.pieces;
  const parts = new Array<string>(pieces.length);
  for (let index = 0; index < pieces.length; index += 1) {
    const piece = pieces[index] as Piece;
    if (piece.column >= 0) {
      const cell = cells[piece.column] as string;
      parts[index] = layout.csv ? quoteCsv(cell) : cell;
      continue;
    }
    const segments = piece.scope === 'patient' ? patientSegments : userSegments;
    if (!segments) return joinCells(layout, cells, 0, cells.length);
    parts[index] = segments[piece.run] as string;
  }
  return parts.join(layout.separator);
}

function joinCells(layout: LineLayout, cells: readonly string[], start: number, end: number): string {
  let out = '';
  for (let index = start; index < end; index += 1) {
    const cell = cells[index] as string;
    out += (index === start ? '' : layout.separator) + (layout.csv ? quoteCsv(cell) : cell);
  }
  return out;
}
