/**
 * Pure block planning. Microsoft's script splits a connector file line by line: the header line, then
 * `RecordsPerCall` rows per block, the header repeated at the top of every block (purview-protocol.md §3.1). Files
 * over the documented limits (5,000,000 rows or 3 GB, §4) are split into separate uploads, each a valid connector
 * file of its own; a block never spans two uploads.
 */
import { BridgeError } from '../errors.js';

export interface BlockPlan {
  /** 0-based index over the whole spool; the ledger key with the spool's SHA-256. */
  readonly index: number;
  /** 0-based upload (file) the block belongs to. */
  readonly upload: number;
  /** 0-based index of the block's first data row (the header is not a row). */
  readonly firstRow: number;
  readonly rows: number;
  /** Byte range [start, end) of the block's rows in the spool; the header is sent in front of it. */
  readonly start: number;
  readonly end: number;
}

export interface UploadLimits {
  /** Rows per upload (file). Default 5,000,000 (Microsoft's documented maximum per file). */
  readonly maxRowsPerUpload?: number;
  /** Bytes per upload, header included. Default 3,000,000,000 (the documented 3 GB). */
  readonly maxBytesPerUpload?: number;
}

export const MAX_ROWS_PER_UPLOAD = 5_000_000;
export const MAX_BYTES_PER_UPLOAD = 3_000_000_000;

/** Returned for the common "no block closed" case, so planning a million rows allocates nothing per row. */
const NONE: readonly BlockPlan[] = Object.freeze([]);

/** Feeds row ends one at a time so a multi-gigabyte spool is planned without holding its line offsets. */
export interface BlockPlanner {
  /** Adds the data row ending (exclusive) at byte `end`; returns the blocks this row closed, if any. */
  addRow(end: number): readonly BlockPlan[];
  /** Closes the last, partial block. */
  finish(): readonly BlockPlan[];
}

/**
 * @param headerEnd - Byte offset where the header line (with its CRLF) ends, i.e. where the first row starts.
 * @param blockRows - Rows per block, an integer ≥ 1.
 */
export function createBlockPlanner(headerEnd: number, blockRows: number, limits: UploadLimits = {}): BlockPlanner {
  const maxRows = positiveInteger(limits.maxRowsPerUpload ?? MAX_ROWS_PER_UPLOAD, 'maxRowsPerUpload');
  const maxBytes = positiveInteger(limits.maxBytesPerUpload ?? MAX_BYTES_PER_UPLOAD, 'maxBytesPerUpload');
  positiveInteger(blockRows, 'blockRows');
  let index = 0;
  let upload = 0;
  let uploadRows = 0;
  let uploadBytes = headerEnd;
  let rowCount = 0;
  let block = { firstRow: 0, rows: 0, start: headerEnd, end: headerEnd };

  const close = (): BlockPlan[] => {
    if (block.rows === 0) return [];
    const plan: BlockPlan = { index: index++, upload, ...block };
    block = { firstRow: rowCount, rows: 0, start: block.end, end: block.end };
    return [plan];
  };

  return {
    addRow(end) {
      const rowBytes = end - block.end;
      let closed: readonly BlockPlan[] = NONE;
      // A row that would overflow the current upload starts the next one (a lone oversized row still gets sent).
      if (uploadRows > 0 && (uploadRows + 1 > maxRows || uploadBytes + rowBytes > maxBytes)) {
        closed = close();
        upload += 1;
        uploadRows = 0;
        uploadBytes = headerEnd;
      }
      block.rows += 1;
      block.end = end;
      rowCount += 1;
      uploadRows += 1;
      uploadBytes += rowBytes;
      if (block.rows === blockRows) closed = closed.length === 0 ? close() : [...closed, ...close()];
      return closed;
    },
    finish: close,
  };
}

/**
 * Plans the blocks of a spool from its line ends.
 * @param lineEnds - Exclusive end offset of every line, the header line first.
 */
export function planBlocks(lineEnds: ReadonlyArray<number>, blockRows: number, limits?: UploadLimits): BlockPlan[] {
  if (lineEnds.length === 0) return [];
  const planner = createBlockPlanner(lineEnds[0] as number, blockRows, limits);
  const plans: BlockPlan[] = [];
  for (let i = 1; i < lineEnds.length; i++) plans.push(...planner.addRow(lineEnds[i] as number));
  plans.push(...planner.finish());
  return plans;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Expected ${name} to be an integer ≥ 1, got ${String(value)} (${typeof value}).`);
  }
  return value;
}
