/** Pure block planning: block sizes, byte ranges, upload splits at the row and byte limits, and bad input. */
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createBlockPlanner, planBlocks, type BlockPlan } from '../../src/purview/index.js';

/** Line ends of a file whose header is 10 bytes and whose rows are each `rowBytes` long. */
function lineEnds(rows: number, rowBytes = 5, headerBytes = 10): number[] {
  return [headerBytes, ...Array.from({ length: rows }, (_, i) => headerBytes + (i + 1) * rowBytes)];
}

describe('planBlocks', () => {
  it('cuts every blockRows rows and gives each block its byte range', () => {
    expect(planBlocks(lineEnds(7), 3)).toEqual<BlockPlan[]>([
      { index: 0, upload: 0, firstRow: 0, rows: 3, start: 10, end: 25 },
      { index: 1, upload: 0, firstRow: 3, rows: 3, start: 25, end: 40 },
      { index: 2, upload: 0, firstRow: 6, rows: 1, start: 40, end: 45 },
    ]);
  });

  it('plans nothing for a header-only file or an empty one', () => {
    expect(planBlocks(lineEnds(0), 3)).toEqual([]);
    expect(planBlocks([], 3)).toEqual([]);
  });

  it('starts a new upload before the row limit, cutting the block short', () => {
    const plans = planBlocks(lineEnds(10), 4, { maxRowsPerUpload: 6 });
    expect(plans.map((p) => [p.upload, p.firstRow, p.rows])).toEqual([[0, 0, 4], [0, 4, 2], [1, 6, 4]]);
  });

  it('starts a new upload before the byte limit, header bytes included', () => {
    // 10-byte header + rows of 5 bytes: 40 bytes hold the header and 6 rows.
    const plans = planBlocks(lineEnds(9), 100, { maxBytesPerUpload: 40 });
    expect(plans.map((p) => [p.index, p.upload, p.firstRow, p.rows, p.start, p.end])).toEqual([
      [0, 0, 0, 6, 10, 40],
      [1, 1, 6, 3, 40, 55],
    ]);
  });

  it('sends a lone row bigger than the byte limit in an upload of its own', () => {
    const plans = planBlocks([10, 15, 115, 120], 10, { maxBytesPerUpload: 50 });
    expect(plans.map((p) => [p.upload, p.firstRow, p.rows])).toEqual([[0, 0, 1], [1, 1, 1], [2, 2, 1]]);
  });

  it('closes two blocks on one row when the upload limit and blockRows meet', () => {
    const planner = createBlockPlanner(10, 1, { maxRowsPerUpload: 1 });
    expect(planner.addRow(15).map((p) => p.index)).toEqual([0]);
    expect(planner.addRow(20).map((p) => [p.index, p.upload])).toEqual([[1, 1]]);
    expect(planner.finish()).toEqual([]);
  });

  it('refuses a block size that is not a whole number ≥ 1, naming it', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      const error = (() => {
        try {
          planBlocks(lineEnds(2), bad);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).message).toBe(`Expected blockRows to be an integer ≥ 1, got ${String(bad)} (number).`);
    }
  });
});
