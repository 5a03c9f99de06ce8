/**
 * What mapEvent returns: the rows' cells, their lines for the mapping's delimiter and their empty-cell masks, made
 * together by the row function (row-code.ts). The lines are private, so the serializer hands them out only for the
 * delimiter they were made for; any other row goes through a full sanitising pass. (A per-row brand, as a WeakSet
 * entry or a hidden property on the row array, cost 0.5–0.6 µs per row in bench/transform.ts.) The masks let the fill
 * count skip reading the cells (fill.ts).
 */
import type { Delimiter, EventMapResult, Row, RowReject } from './types.js';

export class MappedEvent implements EventMapResult {
  readonly #lines: readonly string[];
  readonly #empties: readonly number[] | undefined;
  readonly #delimiter: Delimiter | undefined;

  /** @param empties - per row, bit i set when cell i is empty; undefined when not made. */
  constructor(
    readonly rows: Row[],
    lines: readonly string[],
    empties: readonly number[] | undefined,
    readonly rejects: readonly RowReject[],
    readonly warnings: readonly string[],
    readonly skipped: string | undefined,
    delimiter: Delimiter | undefined,
  ) {
    this.#lines = lines;
    this.#empties = empties;
    this.#delimiter = delimiter;
  }

  /** The lines of `result`'s rows for `delimiter`, when mapEvent made them so; undefined for any other result. */
  static linesFor(result: EventMapResult, delimiter: Delimiter): readonly string[] | undefined {
    return #lines in result && result.#delimiter === delimiter && result.rows.length === result.#lines.length ? result.#lines : undefined;
  }

  /** The empty-cell masks of `result`'s rows, when mapEvent made them; undefined for any other result. */
  static emptiesFor(result: EventMapResult): readonly number[] | undefined {
    return #empties in result && result.#empties !== undefined && result.rows.length === result.#empties.length ? result.#empties : undefined;
  }
}
