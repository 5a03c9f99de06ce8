/**
 * What mapEvent returns: the rows' cells, and their lines for the mapping's delimiter, made together (line.ts).
 * The lines are private, so the serializer hands them out only for the delimiter they were made for; any other
 * row goes through a full sanitising pass. (A per-row brand, as a WeakSet entry or a hidden property on the row
 * array, cost 0.5–0.6 µs per row in bench/transform.ts.)
 */
import type { Delimiter, EventMapResult, Row, RowReject } from './types.js';

export class MappedEvent implements EventMapResult {
  readonly #lines: readonly string[];
  readonly #delimiter: Delimiter | undefined;

  constructor(
    readonly rows: Row[],
    lines: readonly string[],
    readonly rejects: RowReject[],
    readonly warnings: string[],
    readonly skipped: string | undefined,
    delimiter: Delimiter | undefined,
  ) {
    this.#lines = lines;
    this.#delimiter = delimiter;
  }

  /** The lines of `result`'s rows for `delimiter`, when mapEvent made them so; undefined for any other result. */
  static linesFor(result: EventMapResult, delimiter: Delimiter): readonly string[] | undefined {
    return #lines in result && (result as MappedEvent).#delimiter === delimiter && result.rows.length === (result as MappedEvent).#lines.length
      ? (result as MappedEvent).#lines
      : undefined;
  }
}
