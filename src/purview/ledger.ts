/**
 * The per-block checkpoint contract of the push stage. Blocks are keyed by the SHA-256 of the spool file's content and
 * the block index, so a rerun over the same content resumes at the first block Purview has not acknowledged, wherever
 * the file lives. The lead's SQLite store implements the same three methods; this in-memory one serves tests and
 * one-shot pushes.
 */

export type BlockState = 'sending' | 'acked';

export interface BlockLedgerEntry {
  readonly state: BlockState;
  /** How many times markSending was called for this block, across runs. */
  readonly attempts: number;
  /**
   * Rows recorded with the block, when the store keeps them. The push uses it to refuse resuming with a different
   * block size (the indexes would then name other rows).
   */
  readonly rows?: number;
}

export interface BlockLedger {
  get(spoolSha256: string, index: number): BlockLedgerEntry | undefined;
  /** Must be durable before the request goes out: a crash after this leaves 'sending', i.e. "outcome unknown". */
  markSending(spoolSha256: string, index: number, rows: number): void;
  /** Called only after a 2xx answer from the ingestion service. */
  markAcked(spoolSha256: string, index: number, rows: number, possiblyDuplicated: boolean): void;
}

export interface MemoryLedger extends BlockLedger {
  /** Every entry, for tests and reports: `${sha}:${index}` → state. */
  entries(): ReadonlyMap<string, BlockLedgerEntry & { possiblyDuplicated: boolean }>;
}

export function createMemoryLedger(): MemoryLedger {
  const blocks = new Map<string, BlockLedgerEntry & { possiblyDuplicated: boolean }>();
  const key = (sha: string, index: number): string => `${sha}:${index}`;
  return {
    get(sha, index) {
      const entry = blocks.get(key(sha, index));
      return entry && { state: entry.state, attempts: entry.attempts, ...(entry.rows === undefined ? {} : { rows: entry.rows }) };
    },
    markSending(sha, index, rows) {
      const previous = blocks.get(key(sha, index));
      if (previous?.state === 'acked') return;
      blocks.set(key(sha, index), { state: 'sending', attempts: (previous?.attempts ?? 0) + 1, rows, possiblyDuplicated: false });
    },
    markAcked(sha, index, rows, possiblyDuplicated) {
      const previous = blocks.get(key(sha, index));
      blocks.set(key(sha, index), { state: 'acked', attempts: previous?.attempts ?? 1, rows, possiblyDuplicated });
    },
    entries: () => blocks,
  };
}
