/**
 * The line a row becomes (docs/mapping.md §8.2), built by mapEvent together with the row, from cells it has just sanitised. (A
 * pre-joined segment per patient view made the join cheaper but cost about 10 MB of peak RSS per 50,000 cached
 * patients in the 1M-event benchmark, so lines are joined from the cells.)
 */
import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';

/** RFC 4180 quoting of a sanitised cell (it holds no delimiter or line break, only perhaps a double quote). */
function quoteCsv(value: string): string {
  return value.includes('"') ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Joins sanitised cells for `delimiter`; CSV cells are quoted where needed. */
export function joinCells(cells: readonly string[], delimiter: Delimiter): string {
  if (delimiter !== 'comma') return cells.join(DELIMITER_CHARS[delimiter]);
  let out = '';
  for (let index = 0; index < cells.length; index += 1) out += (index === 0 ? '' : ',') + quoteCsv(cells[index] as string);
  return out;
}
