/**
 * The push stage's one event vocabulary. The pipeline forwards these with its run id (src/sync/events.ts), the CLI
 * prints them, metrics count them. Counts and opaque numbers only: no rows, no PHI.
 */

export interface PushEventMap {
  /** `index` counts this push's blocks from 0; `attempt` from 1. */
  block_sent: { index: number; rows: number; attempt: number };
  /** `attempt` is the attempt that failed; the next one starts after `delayMs`. */
  block_retry: { index: number; attempt: number; delayMs: number; reason: string };
  /** `possiblyDuplicatedRows`: of `rows`, those Purview may already hold (all of them, or only those re-sent). */
  block_acked: { index: number; rows: number; status: number; ms: number; possiblyDuplicated: boolean; possiblyDuplicatedRows: number };
  /** Rows the ledger already records as acknowledged for this destination: not sent again. */
  rows_already_delivered: { rows: number };
  /** Rows of events the operator gave up after Purview refused them (`bridge state give-up`): not sent. */
  rows_given_up: { rows: number };
}

export type PushEventName = keyof PushEventMap;
export type PushEvent = { [K in PushEventName]: { type: K } & PushEventMap[K] }[PushEventName];

export interface PushReport {
  /** Blocks sent and acknowledged by this push. */
  readonly blocks: number;
  readonly rowsSent: number;
  /** Rows found acknowledged earlier (a resumed or repeated push): not sent again. */
  readonly rowsAlreadyDelivered: number;
  /** Rows sent or found delivered: every row of the input once. */
  readonly rowsAcked: number;
  /** Rows the input held twice (the same event twice in a spool): sent once. */
  readonly duplicateRows: number;
  /** Rows of events the operator gave up after Purview refused them as invalid (`bridge state give-up`): not sent. */
  readonly rowsGivenUp: number;
  /** Indexes (in this push) of blocks that re-sent rows whose earlier send had no recorded answer. */
  readonly possiblyDuplicated: number[];
  readonly rowsPossiblyDuplicated: number;
}

export function emptyReport(): { -readonly [K in keyof PushReport]: PushReport[K] } {
  return { blocks: 0, rowsSent: 0, rowsAlreadyDelivered: 0, rowsAcked: 0, duplicateRows: 0, rowsGivenUp: 0, possiblyDuplicated: [], rowsPossiblyDuplicated: 0 };
}
