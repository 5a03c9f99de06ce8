/** The state contract. SQLite implements it (sqlite.ts); the block-ledger half is what the push stage needs. */

export type RunState = 'running' | 'pushing' | 'completed' | 'failed';
export type RunTrigger = 'cli' | 'schedule' | 'http' | 'resume';

export interface RunCounts {
  events: number;
  duplicates: number;
  skipped: number;
  rows: number;
  rejects: number;
  blocks: number;
  blocksAcked: number;
  rowsAcked: number;
  possiblyDuplicated: number;
}

export const ZERO_COUNTS: Readonly<RunCounts> = Object.freeze({
  events: 0, duplicates: 0, skipped: 0, rows: 0, rejects: 0, blocks: 0, blocksAcked: 0, rowsAcked: 0, possiblyDuplicated: 0,
});

export interface RunRecord {
  readonly id: string;
  readonly connector: string;
  readonly state: RunState;
  readonly trigger: RunTrigger;
  readonly since: string;
  readonly until: string;
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly counts: RunCounts;
  readonly error?: { code: string; message: string };
  /** Set once the spool is complete: a crashed push resumes from here. */
  readonly spoolPath?: string;
  readonly rejectsPath?: string;
  readonly dryRun: boolean;
}

export type BlockState = 'sending' | 'acked';

/** Same shape as the push stage's BlockLedger (src/purview), so the store can be handed to it directly. */
export interface BlockLedgerStore {
  get(spoolSha256: string, index: number): { state: BlockState; attempts: number } | undefined;
  markSending(spoolSha256: string, index: number, rows: number): void;
  markAcked(spoolSha256: string, index: number, rows: number, possiblyDuplicated: boolean): void;
}

export interface SeenEvent {
  readonly key: string;
  readonly recorded: string;
}

export interface StateStore extends BlockLedgerStore {
  getWatermark(connector: string): string | undefined;
  createRun(run: RunRecord): void;
  updateRun(id: string, patch: Partial<Omit<RunRecord, 'id' | 'connector'>>): void;
  getRun(id: string): RunRecord | undefined;
  listRuns(options?: { connector?: string; limit?: number }): RunRecord[];
  /** The newest run of the connector left in 'running' or 'pushing' by a crash or a stop. */
  findUnfinishedRun(connector: string): RunRecord | undefined;
  /** Which of these event keys an earlier completed run already pushed (overlap de-duplication). */
  seenEvents(connector: string, keys: readonly string[]): Set<string>;
  /** Stores, with the finished spool, the event keys the next run's overlap must recognise; they count once the run completes. */
  stageSeenEvents(runId: string, seen: readonly SeenEvent[]): void;
  /**
   * Completes a run atomically: counts, state, watermark, and the staged event keys move to the seen set.
   * The watermark moves only here, after every row up to it was acknowledged or rejected with a reason.
   */
  completeRun(id: string, completion: { counts: RunCounts; watermark?: string; pruneBefore?: string }): void;
  close(): void;
}
