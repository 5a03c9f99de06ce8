/** The state contract. SQLite implements it (sqlite.ts); the delivery-ledger half is what the push stage needs. */
import type { FillReport } from '../../mapping/index.js';
import type { DeliveryLedger, DeliveryTarget, LeaseRef, RefusedBlocks } from '../../purview/ledger.js';
import type { EnrichReport } from '../file-enrich.js';

export type RunState = 'running' | 'pushing' | 'completed' | 'failed';
export type RunTrigger = 'cli' | 'schedule' | 'http' | 'resume';

export interface RunCounts {
  events: number;
  duplicates: number;
  skipped: number;
  rows: number;
  rejects: number;
  /** Blocks the run's last push sent (a resumed run's earlier pushes are in blocksAcked). */
  blocks: number;
  blocksAcked: number;
  /** Rows of the spool acknowledged by Purview, in this run or (found in the ledger) earlier. */
  rowsAcked: number;
  /** Blocks flagged possibly duplicated: they re-sent rows whose earlier send had no recorded answer, or sent events recorded on a day the delivery ledger forgot. */
  possiblyDuplicated: number;
  /** Rows not sent because the ledger says Purview acknowledged them before (a resumed or repeated push). */
  rowsAlreadyDelivered: number;
  /** Rows re-sent after an unknown outcome, or recorded on a day the delivery ledger forgot: Purview may hold them twice. */
  rowsPossiblyDuplicated: number;
}

export const ZERO_COUNTS: Readonly<RunCounts> = Object.freeze({
  events: 0,
  duplicates: 0,
  skipped: 0,
  rows: 0,
  rejects: 0,
  blocks: 0,
  blocksAcked: 0,
  rowsAcked: 0,
  possiblyDuplicated: 0,
  rowsAlreadyDelivered: 0,
  rowsPossiblyDuplicated: 0,
});

/** What a run found besides counts: reasons and column fill, for the run's detail view. No PHI. */
export interface RunDetails {
  readonly skipReasons?: Readonly<Record<string, number>>;
  readonly rejectReasons?: Readonly<Record<string, number>>;
  readonly possiblyDuplicatedBlocks?: readonly number[];
  /**
   * Resources the FHIR server reported it could not export (OperationOutcomes in a Bulk export's error files): not in
   * Purview, and the watermark moved past them.
   */
  readonly unexported?: number;
  /**
   * The source the run's events were pulled from (the FHIR search source's base URL): whoever completes the run, on
   * whichever machine, records the watermark as a point in it (watermark-source.ts).
   */
  readonly pulledFrom?: string;
  /** Per mandatory or key column, how many rows were left empty (src/mapping/fill.ts). */
  readonly fill?: FillReport;
  /** A flat-file source's files of the run and what became of each (src/sync/file-drop.ts); names and counts only. */
  readonly files?: ReadonlyArray<{ readonly file: string; readonly outcome: string; readonly rows: number; readonly reason?: string }>;
  /** A flat-file source's tally: files ready, still settling, delivered, already delivered, rejected, left. */
  readonly drop?: Readonly<Record<string, number>>;
  /** A flat-file source's FHIR enrichment: per column, cells filled and lookups that found nothing. */
  readonly enrich?: EnrichReport;
}

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
  /** An explicit window (--since, or the HTTP trigger's since/until): it never moves the watermark backwards. */
  readonly backfill?: boolean;
  readonly details?: RunDetails;
}

export interface SeenEvent {
  readonly key: string;
  /**
   * The time the source selected the event by (`recorded`, or `meta.lastUpdated` for a `_lastUpdated` search), in ms
   * since the epoch: the seen set is kept, and pruned, by the same time the windows are cut by.
   */
  readonly windowMs: number;
}

/** Who holds a lease, for the message the loser prints. No PHI, no secrets. */
export interface LeaseHolder {
  /** Unique per holder (a random id per process and run). */
  readonly id: string;
  readonly host: string;
  /**
   * The holder's PID namespace in its host's current boot (Linux: the inode of /proc/self/ns/pid and the boot id,
   * src/composition/process.ts), when known: a pid is only meaningful within it (containers sharing a host name each
   * count from 1). Absent where /proc could not be read, and in leases of builds before this field.
   */
  readonly pidNamespace?: string;
  readonly pid: number;
  /** What holds it, e.g. "bridge sync" or "bridge serve (schedule)". */
  readonly command: string;
  readonly since: string;
}

export type LeaseOutcome =
  | { readonly acquired: true; readonly tookOverFrom?: LeaseHolder }
  | { readonly acquired: false; readonly holder: LeaseHolder; readonly expiresMs: number };

/** One event, or one range of a file's rows, that Purview may hold twice. */
export type PossiblyDuplicated =
  | { readonly kind: 'event'; readonly key: string }
  | { readonly kind: 'rows'; readonly source: string; readonly first: number; readonly end: number };

export interface LeaseStore {
  /**
   * Takes the named lease unless another holder's lease is unexpired and not `isStale` (e.g. a dead process on this
   * host). Atomic across processes.
   */
  acquireLease(name: string, holder: LeaseHolder, ttlMs: number, isStale: (current: LeaseHolder) => boolean): LeaseOutcome;
  /** Extends the lease; false when it is no longer ours (expired and taken over). */
  renewLease(name: string, holderId: string, ttlMs: number): boolean;
  releaseLease(name: string, holderId: string): void;
  readLease(name: string): { holder: LeaseHolder; expiresMs: number } | undefined;
}

/** What `moveConnector` moved: the old name's watermark, how many runs and seen events, and whether it had ledger claims. */
export interface ConnectorMove {
  readonly watermark?: string;
  readonly runs: number;
  readonly seenEvents: number;
  readonly ledger: boolean;
}

export interface ConnectorMoveOptions {
  /** The Purview job the new name pushes to: the old name's deliveries, if any, must have gone there. */
  readonly destination?: string;
  /** Moves the connector's files (a Bulk export's downloads), last, inside the transaction: if it throws, nothing moved. */
  readonly files?: () => void;
}

/**
 * A run's blocks Purview acknowledged (state acked in the ledger), their rows, how many were flagged possibly
 * duplicated, and the rows those re-sent.
 */
export interface RunDelivered {
  readonly blocks: number;
  readonly rows: number;
  readonly possiblyDuplicated: number;
  readonly rowsPossiblyDuplicated: number;
}

export interface StateStore extends DeliveryLedger, RefusedBlocks, LeaseStore {
  getWatermark(connector: string): string | undefined;
  createRun(run: RunRecord): void;
  /**
   * Patches a run, read and written in one transaction. A completed run is final: a patch from a process that did not
   * see it complete (one that lost its lease records its failure) changes nothing. A run patched to 'failed' drops
   * the event keys it staged (they are only ever promoted by its own completion).
   */
  updateRun(id: string, patch: Partial<Omit<RunRecord, 'id' | 'connector'>>): void;
  getRun(id: string): RunRecord | undefined;
  /** Newest first; `idPrefix`: only runs whose id starts with it. */
  listRuns(options?: { connector?: string; idPrefix?: string; limit?: number }): RunRecord[];
  /**
   * The connector's last completed run that was not a dry run (the one that finished last): "last success" however many
   * runs failed since, which a look at the newest runs would miss.
   */
  lastCompletedRun(connector: string): RunRecord | undefined;
  /** The newest run of the connector left in 'running' or 'pushing' by a crash or a stop. */
  findUnfinishedRun(connector: string): RunRecord | undefined;
  /** Every run of the connector left in 'running' or 'pushing', newest first. */
  findUnfinishedRuns(connector: string): RunRecord[];
  /**
   * Which of these event keys an earlier completed run already processed (overlap de-duplication) for this destination
   * (destinationKey): an event pushed only to another Purview job is not seen for this one.
   */
  seenEvents(connector: string, destination: string, keys: readonly string[]): Set<string>;
  /**
   * Moves a run to 'pushing' (with its spool, counts and details) and stages its seen event keys in one transaction:
   * a run resumed after a kill between the two would complete without them, and the next run would map and count the
   * skipped and rejected events of its overlap again.
   */
  beginPush(runId: string, patch: Partial<Omit<RunRecord, 'id' | 'connector' | 'state'>>, seen: readonly SeenEvent[]): void;
  /**
   * Completes a run atomically: counts, state, watermark, and the staged event keys move to the seen set (under
   * `destination`, where the run pushed); a stale error of an earlier attempt is cleared. The watermark moves only here, after every row up to it was acknowledged
   * or rejected with a reason, and never backwards (a backfill completing leaves a later watermark alone).
   * `details` are merged over the run's; `sourceState` is recorded in the same transaction when the watermark is then
   * the run's `watermark` (what the watermark is a point in: watermark-source.ts). A run already completed is left as it is.
   */
  completeRun(
    id: string,
    completion: {
      counts: RunCounts;
      watermark?: string;
      pruneSeenBeforeMs?: number;
      destination?: string;
      details?: RunDetails;
      sourceState?: { readonly name: string; readonly value: string };
    },
  ): void;
  /**
   * A source's own resumable state, by connector and name (JSON text, no PHI): e.g. a Bulk Data export's status URL and
   * the files already read, so a run that died on one machine is finished on another. Undefined deletes it.
   */
  getSourceState(connector: string, name: string): string | undefined;
  setSourceState(connector: string, name: string, value: string | undefined): void;
  /** Keys of the events in blocks flagged possibly duplicated: what Purview may hold twice. */
  flaggedEventKeys(target: Pick<DeliveryTarget, 'destination' | 'source'>): Set<string>;
  /**
   * What one run sent in blocks flagged possibly duplicated, read from the ledger a row at a time: event keys
   * (`id|versionId`) or file row ranges (`file:<sha256>` rows first–end, 0-based, end exclusive).
   */
  possiblyDuplicatedOf(runId: string): IterableIterator<PossiblyDuplicated>;
  /**
   * What Purview acknowledged of one run so far, over all its attempts, as the ledger keeps it: a run killed or failed
   * during its push has no counts of its push in its record (they are written when it completes).
   */
  deliveredOf(runId: string): RunDelivered;
  /**
   * Forgets delivery acknowledgements older than `beforeMs` for one destination and source, and remembers how far back
   * it forgot (never lowered).
   */
  pruneDeliveries(target: Pick<DeliveryTarget, 'destination' | 'source'>, beforeMs: number): void;
  /**
   * Before this instant the ledger of the destination and source has forgotten acknowledgements (the latest horizon a
   * prune actually applied, whatever the retention set now); undefined when nothing was forgotten.
   */
  prunedBefore(target: Pick<DeliveryTarget, 'destination' | 'source'>): number | undefined;
  /**
   * Connector names (retired ones as `retired:<name>:<time>`; not flat files) with anything in the delivery ledger for
   * `destination`: what a connector without a watermark checks before it sends what another name may have sent already.
   */
  connectorsDeliveredTo(destination: string): string[];
  /**
   * Moves connector `from`'s watermark, runs, seen events, source state and ledger claims to the name `to` in one
   * transaction, under the leases given (checked inside it): a renamed connector goes on where the old name stopped.
   * Refuses (BRG_ERR_CONNECTOR_STATE) when `from` has a run in flight or nothing, when it pushed to another job than
   * `options.destination`, or when `to` has state of its own. `options.files` runs last inside the transaction.
   */
  moveConnector(from: string, to: string, leases: readonly LeaseRef[], options?: ConnectorMoveOptions): ConnectorMove;
  close(): void;
}
