/**
 * The line a row becomes (docs/mapping.md §8.2), built by mapEvent together with the row, from cells it has just sanitised. (A
 * pre-joined segment per patient view made the join cheaper but cost about 10 MB of peak RSS per 50,000 cached
 * patients in the 1M-event benchmark, so lines are joined from the cells.)
 */
import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';

/**
 * A CSV field as RFC 4180 writes it: quoted, its quotes doubled, when it holds a double quote or a comma (a sanitised
 * cell holds no comma, only perhaps a quote; a header name or a value read back from a file may hold either).
 */
export function quoteCsvField(value: string): string {
  return value.includes('"') || value.includes(',') ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Joins sanitised cells for `delimiter`; CSV cells are quoted where needed. */
export function joinCells(cells: readonly string[], delimiter: Delimiter): string {
  if (delimiter !== 'comma') return cells.join(DELIMITER_CHARS[delimiter]);
  let out = '';
  for (let index = 0; index < cells.length; index += 1) out += (index === 0 ? '' : ',') + quoteCsvField(cells[index] as string);
  return out;
}
