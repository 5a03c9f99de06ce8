/**
 * Pure block planning. Microsoft's script splits a connector file line by line: the header line, then
 * `RecordsPerCall` rows per block, the header repeated at the top of every block (docs/purview-protocol.md §3). Here a
 * block holds at most `blockRows` rows that the ledger does not already record as acknowledged for the destination,
 * so any block size can resume any earlier push. Files over the documented per-file limits (5,000,000 rows or 3 GB)
 * are sent as separate uploads, each a valid connector file of its own; a block never spans two uploads.
 */
import { BridgeError } from '../errors.js';
import type { RangeRecord, RowRange } from './ledger.js';
import type { ByteRange } from './upload.js';

export interface UploadLimits {
  /** Rows per upload (file). Default 5,000,000 (Microsoft's documented maximum per file). */
  readonly maxRowsPerUpload?: number;
  /** Bytes per upload, header included. Default 3,000,000,000 (the documented 3 GB). */
  readonly maxBytesPerUpload?: number;
}

export const MAX_ROWS_PER_UPLOAD = 5_000_000;
export const MAX_BYTES_PER_UPLOAD = 3_000_000_000;

/** The rows of one block of a file: ranges of row numbers, and those of them sent before without an answer. */
export interface RowBlockPlan {
  readonly ranges: readonly RowRange[];
  readonly rows: number;
  readonly resentRows: number;
  /** Where the `resentRows` are: the rows Purview may hold twice once the block is acknowledged. */
  readonly resentRanges: readonly RowRange[];
}

/** A row range and whether its rows went out before without a recorded answer. */
interface PendingRange extends RowRange {
  readonly resend: boolean;
}

/**
 * Plans the blocks of a file of `totalRows` rows from what the ledger recorded for it at the destination: rows in an
 * acknowledged range are left out; rows in a range sent without a recorded answer are sent again and counted as
 * resent; the rest are new. Acknowledged wins over any other record of the same row.
 */
export function planRowBlocks(totalRows: number, blockRows: number, recorded: readonly RangeRecord[]): { blocks: RowBlockPlan[]; deliveredRows: number } {
  positiveInteger(blockRows, 'blockRows');
  const pending = pendingRanges(totalRows, recorded);
  const blocks: RowBlockPlan[] = [];
  const fresh = (): { ranges: RowRange[]; rows: number; resentRows: number; resentRanges: RowRange[] } => ({
    ranges: [],
    rows: 0,
    resentRows: 0,
    resentRanges: [],
  });
  let current = fresh();
  for (const range of pending) {
    for (let first = range.first; first < range.end; ) {
      const take = Math.min(range.end - first, blockRows - current.rows);
      appendRange(current.ranges, first, first + take);
      current.rows += take;
      if (range.resend) {
        current.resentRows += take;
        appendRange(current.resentRanges, first, first + take);
      }
      first += take;
      if (current.rows === blockRows) {
        blocks.push(current);
        current = fresh();
      }
    }
  }
  if (current.rows > 0) blocks.push(current);
  const pendingRows = pending.reduce((sum, r) => sum + (r.end - r.first), 0);
  return { blocks, deliveredRows: totalRows - pendingRows };
}

/** [0, totalRows) minus the acknowledged ranges, split where "sent without an answer" starts and stops. */
function pendingRanges(totalRows: number, recorded: readonly RangeRecord[]): PendingRange[] {
  const acked = mergeRanges(
    recorded.filter((r) => r.state === 'acked'),
    totalRows,
  );
  const unknown = mergeRanges(
    recorded.filter((r) => r.state === 'unknown'),
    totalRows,
  );
  const cuts = new Set<number>([0, totalRows]);
  for (const r of [...acked, ...unknown]) cuts.add(r.first).add(r.end);
  const points = [...cuts].sort((a, b) => a - b);
  const out: PendingRange[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const first = points[i] as number;
    const end = points[i + 1] as number;
    if (first >= end || covers(acked, first)) continue;
    const resend = covers(unknown, first);
    const last = out[out.length - 1];
    if (last && last.end === first && last.resend === resend) out[out.length - 1] = { first: last.first, end, resend };
    else out.push({ first, end, resend });
  }
  return out;
}

/** The union of `ranges` within [0, totalRows), sorted and merged. */
export function mergeRanges(ranges: readonly RowRange[], totalRows: number): RowRange[] {
  const sorted = ranges
    .map((r) => ({ first: Math.max(0, r.first), end: Math.min(totalRows, r.end) }))
    .filter((r) => r.first < r.end)
    .sort((a, b) => a.first - b.first);
  const merged: Array<{ first: number; end: number }> = [];
  for (const r of sorted) {
    const last = merged[merged.length - 1];
    if (last && r.first <= last.end) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged;
}

function covers(ranges: readonly RowRange[], row: number): boolean {
  return ranges.some((r) => r.first <= row && row < r.end);
}

function appendRange(ranges: RowRange[], first: number, end: number): void {
  const last = ranges[ranges.length - 1];
  if (last && last.end === first) ranges[ranges.length - 1] = { first: last.first, end };
  else ranges.push({ first, end });
}

/** Appends a byte range, merging it into the previous one when they touch (consecutive rows become one read). */
export function appendSegment(segments: ByteRange[], start: number, end: number): void {
  const last = segments[segments.length - 1];
  if (last && last.end === start) segments[segments.length - 1] = { start: last.start, end };
  else segments.push({ start, end });
}

/**
 * Which upload (file) a block goes in and its number within it: a block that would push the current upload over the
 * per-file limits starts the next one. The numbers name the block's part `tmp_<guid><NNNN>.txt` like the script.
 */
export function createUploadCounter(headerBytes: number, limits: UploadLimits = {}): (rows: number, bytes: number) => { upload: number; number: number } {
  const maxRows = positiveInteger(limits.maxRowsPerUpload ?? MAX_ROWS_PER_UPLOAD, 'maxRowsPerUpload');
  const maxBytes = positiveInteger(limits.maxBytesPerUpload ?? MAX_BYTES_PER_UPLOAD, 'maxBytesPerUpload');
  let upload = 0;
  let number = 0;
  let rowsIn = 0;
  let bytesIn = headerBytes;
  return (rows, bytes) => {
    if (rowsIn > 0 && (rowsIn + rows > maxRows || bytesIn + bytes > maxBytes)) {
      upload += 1;
      number = 0;
      rowsIn = 0;
      bytesIn = headerBytes;
    }
    number += 1;
    rowsIn += rows;
    bytesIn += bytes;
    return { upload, number };
  };
}

export function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Expected ${name} to be an integer ≥ 1, got ${String(value)} (${typeof value}).`);
  }
  return value;
}
