/** Pure block planning: rows minus what the ledger holds, any block size, resends flagged, uploads within the limits. */
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { appendSegment, type ByteRange, createUploadCounter, fileSource, planRowBlocks, type RangeRecord, rowsSentOf } from '../../src/purview/index.js';
import { Rng } from '../../src/sandbox/generator-random.js';

const acked = (first: number, end: number): RangeRecord => ({ first, end, state: 'acked' });
const unknown = (first: number, end: number): RangeRecord => ({ first, end, state: 'unknown' });
const unsent = (first: number, end: number): RangeRecord => ({ first, end, state: 'unsent' });

describe('rowsSentOf', () => {
  it('counts each row of a file once: a range sent without an answer, then sent again and acknowledged, is acknowledged', () => {
    const ledger = (ranges: RangeRecord[]) => ({
      rangesOf: (target: { destination: string; source: string }) => (target.source === fileSource('abc') && target.destination === 'd' ? ranges : []),
    });
    // A killed block (rows 0–1, no answer), the rerun's blocks (0–1 and 2–3 acknowledged), a stop before 4–5.
    expect(rowsSentOf(ledger([unknown(0, 2), acked(0, 2), acked(2, 4), unsent(4, 6)]), 'd', 'abc')).toEqual({ acked: 4, unknown: 0 });
    // Two attempts of one range without an answer, one overlapping an acknowledged range.
    expect(rowsSentOf(ledger([acked(0, 2), unknown(1, 4), unknown(2, 4), unknown(6, 7)]), 'd', 'abc')).toEqual({ acked: 2, unknown: 3 });
    expect(rowsSentOf(ledger([]), 'd', 'abc')).toEqual({ acked: 0, unknown: 0 });
  });
});

describe('planRowBlocks', () => {
  it('cuts a fresh file every blockRows rows', () => {
    expect(planRowBlocks(7, 3, [])).toEqual({
      deliveredRows: 0,
      blocks: [
        { ranges: [{ first: 0, end: 3 }], rows: 3, resentRows: 0, resentRanges: [] },
        { ranges: [{ first: 3, end: 6 }], rows: 3, resentRows: 0, resentRanges: [] },
        { ranges: [{ first: 6, end: 7 }], rows: 1, resentRows: 0, resentRanges: [] },
      ],
    });
    expect(planRowBlocks(0, 3, [])).toEqual({ deliveredRows: 0, blocks: [] });
  });

  it('leaves out acknowledged rows, whatever block size acknowledged them, and fills blocks across the gaps', () => {
    const plan = planRowBlocks(20, 10, [acked(0, 7), acked(10, 14)]);
    expect(plan.deliveredRows).toBe(11);
    expect(plan.blocks).toEqual([
      {
        ranges: [
          { first: 7, end: 10 },
          { first: 14, end: 20 },
        ],
        rows: 9,
        resentRows: 0,
        resentRanges: [],
      },
    ]);
  });

  it('re-sends rows sent without an answer and counts them; acknowledged wins over any other record', () => {
    const plan = planRowBlocks(12, 5, [unknown(0, 6), acked(3, 5), unsent(8, 12)]);
    expect(plan.deliveredRows).toBe(2);
    expect(plan.blocks).toEqual([
      {
        ranges: [
          { first: 0, end: 3 },
          { first: 5, end: 7 },
        ],
        rows: 5,
        resentRows: 4,
        resentRanges: [
          { first: 0, end: 3 },
          { first: 5, end: 6 },
        ],
      },
      { ranges: [{ first: 7, end: 12 }], rows: 5, resentRows: 0, resentRanges: [] },
    ]);
  });

  it('property: every row of the file is either delivered or planned exactly once, with any history', () => {
    const random = new Rng(7);
    for (let round = 0; round < 300; round++) {
      const total = random.int(61);
      const history: RangeRecord[] = Array.from({ length: random.int(7) }, () => {
        const first = random.int(total + 1);
        const state = random.pick(['acked', 'unknown', 'unsent'] as const);
        return { first, end: Math.min(total, first + random.int(21)), state };
      });
      const blockRows = 1 + random.int(25);
      const plan = planRowBlocks(total, blockRows, history);
      const planned = plan.blocks.flatMap((b) => b.ranges.flatMap((r) => Array.from({ length: r.end - r.first }, (_, i) => r.first + i)));
      const isAcked = (row: number): boolean => history.some((h) => h.state === 'acked' && h.first <= row && row < h.end);
      const expected = Array.from({ length: total }, (_, i) => i).filter((row) => !isAcked(row));
      expect(planned).toEqual(expected);
      expect(plan.deliveredRows).toBe(total - expected.length);
      for (const block of plan.blocks) {
        expect(block.rows).toBeLessThanOrEqual(blockRows);
        const resent = block.ranges
          .flatMap((r) => Array.from({ length: r.end - r.first }, (_, i) => r.first + i))
          .filter((row) => history.some((h) => h.state === 'unknown' && h.first <= row && row < h.end));
        expect(block.resentRows).toBe(resent.length);
        expect(block.resentRanges.flatMap((r) => Array.from({ length: r.end - r.first }, (_, i) => r.first + i))).toEqual(resent);
      }
    }
  });

  it('refuses a block size that is not a whole number ≥ 1', () => {
    expect(() => planRowBlocks(5, 0, [])).toThrow(BridgeError);
    expect(() => planRowBlocks(5, 1.5, [])).toThrow('Expected blockRows to be an integer ≥ 1, got 1.5 (number).');
  });
});

describe('createUploadCounter', () => {
  it('starts a new upload when a block would pass the row or byte limit, numbering blocks per upload', () => {
    const byRows = createUploadCounter(10, { maxRowsPerUpload: 6 });
    expect([byRows(4, 40), byRows(4, 40), byRows(2, 20), byRows(1, 10)]).toEqual([
      { upload: 0, number: 1 },
      { upload: 1, number: 1 },
      { upload: 1, number: 2 },
      { upload: 2, number: 1 },
    ]);
    const byBytes = createUploadCounter(10, { maxBytesPerUpload: 100 });
    expect([byBytes(1, 80), byBytes(1, 20), byBytes(1, 500)]).toEqual([
      { upload: 0, number: 1 },
      { upload: 1, number: 1 },
      { upload: 2, number: 1 },
    ]);
  });
});

describe('appendSegment', () => {
  it('merges touching byte ranges so consecutive rows are one read', () => {
    const segments: ByteRange[] = [];
    appendSegment(segments, 10, 20);
    appendSegment(segments, 20, 35);
    appendSegment(segments, 50, 60);
    expect(segments).toEqual([
      { start: 10, end: 35 },
      { start: 50, end: 60 },
    ]);
  });
});
