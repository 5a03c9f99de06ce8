/**
 * The delivery ledger: what Purview has acknowledged, keyed by destination and by the identity of what was sent —
 * an AuditEvent (id + versionId) for the FHIR sources, a row range of a file (its content hash + row numbers) for flat
 * files — never by one machine's spool bytes or block numbers. So a push resumes with any block size, a file pushed to
 * another job is pushed in full, and a run that died on one machine is finished on another by pulling its window again:
 * whatever the ledger says was acknowledged is skipped, whatever was sent without a recorded answer is sent again and
 * flagged "possibly duplicated". See docs/purview-protocol.md §6 (exactly once).
 *
 * A block is opened in one durable transaction together with the claims of everything in it, before its request goes
 * out; it is marked acknowledged only after a 2xx. The SQLite state store implements this contract.
 */
import { mergeRanges } from './blocks.js';

/** Where rows go: the job (the app id is implied: Purview ties a job to one app; the tenant only asks for the token, the host only reaches it). */
export interface DeliveryTarget {
  /** From `destinationKey()`. */
  readonly destination: string;
  /** What the rows come from: the connector name for FHIR sources, `file:<sha256>` for a flat file. */
  readonly source: string;
  /** The run the blocks belong to, for reports. */
  readonly runId?: string;
  /**
   * The lease the writer holds (src/sync/lease.ts): every block it opens is refused once the lease is no longer its
   * own, and remembers the lease, so another holder can tell a block that can never go out from one that may have.
   */
  readonly lease?: LeaseRef;
}

/**
 * The identity of a held lease. A writer that lost its lease (paused past the TTL, a clock ahead on another machine, a
 * wrong staleness verdict) learns it at its next heartbeat at the earliest; the ledger checks it in the same transaction
 * as each write, so the old holder cannot claim or send a block once the new one may be sending the same events.
 */
export interface LeaseRef {
  /** e.g. `connector:<name>` or `push:<destination>:<sha256>`. */
  readonly name: string;
  /** The holder's unique id (LeaseHolder.id). */
  readonly holderId: string;
}

/** One event of a spool, as the ledger sees it. */
export interface EventClaim {
  /** `<id>|<versionId>` of the AuditEvent. */
  readonly key: string;
  /** `recorded` in ms since the epoch (instants compare as numbers, never as text); undefined when absent. */
  readonly recordedMs: number | undefined;
  /** Rows the event produced in the spool. */
  readonly rows: number;
}

/**
 * What the ledger decided for one claimed event:
 * - `send`: never sent to this destination; claimed for the new block.
 * - `resend`: sent before without a recorded answer; claimed for the new block, which is flagged possibly duplicated.
 *   Also when its block was never attempted but still could be: opened without a lease, or under another lease than
 *   the caller's, its writer may send it at any moment. (Claimed by a block that can no longer go out — the caller's
 *   own, or one of an earlier holder of the lease the caller now holds — it is plainly `send`.)
 *   Also when it was never claimed but was recorded on a day whose claims a prune forgot (state.ledgerRetentionDays):
 *   it may have been acknowledged before the prune (an old event a Bulk export brings again, re-stamped).
 * - `delivered`: acknowledged earlier; not sent again.
 * - `duplicate`: the same event already stands earlier in this block; not sent twice.
 * - `given-up`: Purview refused a block holding it as invalid and the operator gave its events up
 *   (`bridge state give-up`): not sent; the run records it as rejected (`purview-refused`).
 */
export type ClaimDecision = 'send' | 'resend' | 'delivered' | 'duplicate' | 'given-up';

/** A synchronous cursor the ledger reads inside its transaction, taking events while they fit in the block. */
export interface ClaimCursor<T extends EventClaim> {
  peek(): T | undefined;
  take(): void;
}

export interface OpenedBlock {
  readonly id: number;
  /** Rows claimed for this block (`send` + `resend`). */
  readonly rows: number;
  /** Rows claimed again after an unknown outcome (or, for events, recorded on a day the ledger forgot). */
  readonly resentRows: number;
}

/** A half-open range [first, end) of data rows of a file (0-based, the header is not a row). */
export interface RowRange {
  readonly first: number;
  readonly end: number;
}

export interface RangeRecord extends RowRange {
  /** `unknown`: sent without a recorded answer; `unsent`: claimed, but its block never went out. */
  readonly state: 'acked' | 'unknown' | 'unsent';
}

export interface DeliveryLedger {
  /**
   * Opens a block and claims events from the cursor for it in one durable transaction, while their rows fit in
   * `maxRows` (the first claimable event always fits, so one event is never split). Events decided `delivered` or
   * `duplicate` are taken and reported but not claimed. Returns undefined when nothing was claimed (the transaction is
   * then rolled back); the cursor is exhausted or holds more events. Throws BRG_ERR_RUN_IN_PROGRESS, claiming nothing,
   * when `target.lease` is no longer held by its holder.
   */
  openEventBlock<T extends EventClaim>(
    target: DeliveryTarget,
    cursor: ClaimCursor<T>,
    maxRows: number,
    onDecision: (event: T, decision: ClaimDecision) => void,
  ): OpenedBlock | undefined;
  /**
   * Opens a block for rows of a file in one durable transaction; `resentRows` of them were sent before without an
   * answer. Throws BRG_ERR_RUN_IN_PROGRESS when `target.lease` is no longer held by its holder.
   */
  openRangeBlock(target: DeliveryTarget, ranges: readonly RowRange[], resentRows: number): OpenedBlock;
  /** Ranges of the file recorded for the destination, acknowledged or not, in any order. */
  rangesOf(target: DeliveryTarget): RangeRecord[];
  /**
   * One more attempt of the block is going out (durable before the request). Throws BRG_ERR_RUN_IN_PROGRESS instead,
   * recording nothing, when the block was opened under a lease its holder no longer holds: the request must then not
   * go out. The block's own lease is checked, so a caller cannot skip the check by not naming one.
   */
  markAttempt(blockId: number): void;
  /**
   * Purview answered 2xx for the block (recorded whoever holds the lease now: it is what Purview has).
   * `possiblyDuplicatedRows`: how many of its rows Purview may hold twice (those it re-sent, or all of them once an
   * attempt lost its answer); more than none flags the block. The run's counts read it from here, whichever process
   * finishes the run.
   */
  markAcked(blockId: number, possiblyDuplicatedRows: number): void;
  /**
   * Purview definitely does not have the block: its last attempt got an HTTP answer saying it was not processed (a 3xx or 4xx),
   * or never got its whole body out (a refused connection), and no attempt's outcome is unknown. Its rows count as not
   * sent by it, so their next block is not flagged for it; rows it re-sent keep their flag from the earlier send (an
   * event's claim remembers it; a file's rows, the earlier block's record). A crash before this call leaves the block attempted,
   * and the rows flagged: never the other way round. `status`: Purview's HTTP answer (none for a connection that failed
   * before the body went out); a block refused with 400 is one an operator may give up (RefusedBlocks).
   */
  markRefused(blockId: number, status?: number): void;
  /**
   * Purview's last answer to the block was this 3xx or 4xx, though an earlier attempt's outcome is unknown (the block stays as
   * it was: its rows are flagged when sent again). Recorded so a block refused with 400 can still be given up.
   */
  markAnswered(blockId: number, status: number): void;
  /**
   * Of these events, the ones acknowledged for the destination (pull-time de-duplication). Only events recorded at or
   * before `highMark()` can be in the ledger, so callers ask for those alone.
   */
  acknowledgedEvents(target: DeliveryTarget, events: ReadonlyArray<Pick<EventClaim, 'key' | 'recordedMs'>>): Set<string>;
  /** The latest `recordedMs` ever claimed for the destination and source (undefined: none). */
  highMark(target: DeliveryTarget): number | undefined;
}

/** What stops a connector whose block Purview refuses as invalid, as `bridge state refused` shows it. No PHI. */
export interface RefusedBlock {
  readonly blockId: number;
  readonly runId: string | undefined;
  /** Events whose latest block this is (claims not moved to a later block since). */
  readonly events: number;
  /** Rows of the block when it was opened. */
  readonly rows: number;
  readonly status: number;
  readonly refusedMs: number;
  /** Set once given up: when, and the operator's note. */
  readonly givenUpMs?: number;
  readonly note?: string;
}

/**
 * The operator's way out of a block Purview refuses every time (a 400 for something in its rows): its events are given
 * up, recorded as rejected by every later run instead of sent. Only the newest block refused with 400 whose events were
 * not claimed again since: the one that stops the connector. A lower `purview.blockRows` on the next run narrows it.
 */
export interface RefusedBlocks {
  /** The newest block of the destination and source refused with 400 that still holds events, given up or not. */
  refusedBlock(target: Pick<DeliveryTarget, 'destination' | 'source'>): RefusedBlock | undefined;
  /**
   * Gives up the events of block `blockId`, the one refusedBlock() showed, in one short transaction under `lease`
   * (checked inside it: no run may be sending them). False, changing nothing, unless it is still the newest block
   * refused with 400, holds events and was not given up: the operator looks again.
   */
  giveUpRefused(target: Pick<DeliveryTarget, 'destination' | 'source'>, lease: LeaseRef, note: string, blockId: number): boolean;
}

/** The ledger's source of a flat file: its content, so the same rows under another name are the same rows. */
export function fileSource(sha256: string): string {
  return `file:${sha256}`;
}

/** Rows of the file with this content that Purview holds (acknowledged) or may hold (sent without a recorded answer). */
export function rowsSentOf(
  ledger: Pick<DeliveryLedger, 'rangesOf'>,
  destination: string,
  sha256: string,
): { readonly acked: number; readonly unknown: number } {
  // Rows are counted once each: a range sent without an answer and sent again (or acknowledged) in a later block is in
  // several records, and an acknowledgement wins over any other.
  const ranges = ledger.rangesOf({ destination, source: fileSource(sha256) });
  const rowsOf = (state: (record: RangeRecord) => boolean): number =>
    mergeRanges(ranges.filter(state), Number.POSITIVE_INFINITY).reduce((rows, range) => rows + range.end - range.first, 0);
  const acked = rowsOf((range) => range.state === 'acked');
  return { acked, unknown: rowsOf((range) => range.state !== 'unsent') - acked };
}

/**
 * The job id, normalised (case-insensitive like the ingestion service's own job lookup): it alone names the job on the
 * wire (`/api/signals?jobid=`), a GUID the portal gives. Neither the tenant (Entra takes it in several spellings: the
 * GUID, `contoso.onmicrosoft.com`) nor the ingestion host (an alias, a private endpoint, an explicit base against the
 * cloud's preset) is part of it: a key with either made one job two destinations, and a rerun after the spelling
 * changed sent every row again, unflagged. `ingestionBase` is taken for the callers' sake and not used.
 */
export function destinationKey(parts: { ingestionBase: string; jobId: string }): string {
  return parts.jobId.toLowerCase();
}

/** The ledger key of one version of one AuditEvent (the same key the overlap de-duplication uses). */
export function eventClaimKey(event: { id?: string | undefined; meta?: { versionId?: string | undefined } | undefined }): string {
  return `${event.id ?? ''}|${event.meta?.versionId ?? ''}`;
}

/** The AuditEvent id and versionId (empty when the event had none) an eventClaimKey was made of. */
export function parseEventClaimKey(key: string): { id: string; versionId: string } {
  const bar = key.lastIndexOf('|');
  return { id: key.slice(0, bar), versionId: key.slice(bar + 1) };
}
