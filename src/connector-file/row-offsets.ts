/**
 * Where each row of a normalised connector file starts, without keeping every offset: one checkpoint per 1,024 rows
 * is recorded while the file is written, and a row's offset is found by reading forward from its checkpoint (at
 * most 1,023 lines). Block boundaries then cost one short read each, whatever the file's size.
 */
import { closeSync, openSync, readSync } from 'node:fs';

const STEP = 1024;
const LF = 0x0a;

export class RowOffsets {
  /** checkpoints[k] = byte offset where row k × STEP starts. */
  private readonly checkpoints: number[];
  private rows = 0;
  private bytes: number;

  constructor(headerEnd: number) {
    this.checkpoints = [headerEnd];
    this.bytes = headerEnd;
  }

  /** A data row ended (exclusive) at `end`. */
  rowEnded(end: number): void {
    this.rows += 1;
    this.bytes = end;
    if (this.rows % STEP === 0) this.checkpoints.push(end);
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Start offset of row `row` (0-based); `row === rowCount` gives the end of the file. */
  offsetOf(path: string, row: number): number {
    if (!Number.isInteger(row) || row < 0 || row > this.rows) throw new RangeError(`row ${row} is outside 0…${this.rows}`);
    if (row === this.rows) return this.bytes;
    const k = Math.floor(row / STEP);
    let offset = this.checkpoints[k] as number;
    let toSkip = row - k * STEP;
    if (toSkip === 0) return offset;
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.allocUnsafe(1 << 16);
      for (;;) {
        const read = readSync(fd, buffer, 0, buffer.length, offset);
        if (read === 0) throw new RangeError(`${path} ended before row ${row}`);
        for (let lf = buffer.indexOf(LF); lf !== -1 && lf < read; lf = buffer.indexOf(LF, lf + 1)) {
          toSkip -= 1;
          if (toSkip === 0) return offset + lf + 1;
        }
        offset += read;
      }
    } finally {
      closeSync(fd);
    }
  }
}
