/**
 * The delivery ledger in SQLite (see src/purview/ledger.ts for the contract). Event claims are partitioned by the
 * UTC day of `recorded`, so pruning old acknowledgements is a range delete on the primary key, and a high mark per
 * destination and source tells the pull which events can be in the ledger at all (most of a run's events cannot).
 * Writes of a block opened under a lease are checked against the leases table in the same transaction, so a holder
 * that lost its lease cannot claim or send once another holder may be sending the same events.
 */
import type Database from 'better-sqlite3';
import type { Clock } from '../../clock.js';
import type {
  ClaimCursor,
  ClaimDecision,
  DeliveryLedger,
  DeliveryTarget,
  EventClaim,
  LeaseRef,
  OpenedBlock,
  RangeRecord,
  RefusedBlock,
  RowRange,
} from '../../purview/ledger.js';
import type { SqliteLeaseStore } from './sqlite-lease.js';
import type { PossiblyDuplicated, RunDelivered } from './types.js';

const DAY_MS = 86_400_000;

/** The partition of an event's claim: its UTC day, or -1 when it has no time. */
export function claimDay(recordedMs: number | undefined): number {
  return recordedMs === undefined || !Number.isFinite(recordedMs) ? -1 : Math.floor(recordedMs / DAY_MS);
}

/** Thrown inside a transaction to roll it back when a block would be empty. */
class NothingClaimed extends Error {}

export class SqliteDeliveryLedger implements DeliveryLedger {
  private readonly stmt;
  private readonly ids = new Map<string, number>();

  constructor(
    private readonly db: Database.Database,
    private readonly clock: Clock,
    /** The same database's leases: each write of a block opened under a lease checks it in the write's transaction. */
    private readonly leases: Pick<SqliteLeaseStore, 'requireHeld'>,
  ) {
    this.stmt = {
      destination: db.prepare<[string], { id: number }>('SELECT id FROM destinations WHERE key = ?'),
      addDestination: db.prepare('INSERT OR IGNORE INTO destinations (key) VALUES (?)'),
      source: db.prepare<[string], { id: number }>('SELECT id FROM sources WHERE key = ?'),
      addSource: db.prepare('INSERT OR IGNORE INTO sources (key) VALUES (?)'),
      openBlock: db.prepare(
        "INSERT INTO delivery_blocks (destination_id, source_id, run_id, state, rows, created_ms, updated_ms, lease_name, lease_holder) VALUES (?, ?, ?, 'sending', 0, ?, ?, ?, ?)",
      ),
      sizeBlock: db.prepare('UPDATE delivery_blocks SET rows = ?, resent_rows = ? WHERE id = ?'),
      claim: db.prepare('INSERT OR IGNORE INTO delivered_events (destination_id, source_id, day, event_key, block_id) VALUES (?, ?, ?, ?, ?)'),
      // LEFT JOIN: a claim can outlive its block (pruned by age while the claim's day is still kept).
      claimed: db.prepare<
        [number, number, number, string],
        {
          block_id: number;
          maybe_sent: number;
          state: string | null;
          attempts: number | null;
          refused: number | null;
          lease_name: string | null;
          given_up_ms: number | null;
        }
      >(
        'SELECT e.block_id, e.maybe_sent, b.state, b.attempts, b.refused, b.lease_name, b.given_up_ms FROM delivered_events e LEFT JOIN delivery_blocks b ON b.id = e.block_id WHERE e.destination_id = ? AND e.source_id = ? AND e.day = ? AND e.event_key = ?',
      ),
      reclaim: db.prepare(
        'UPDATE delivered_events SET block_id = ?, maybe_sent = max(maybe_sent, ?) WHERE destination_id = ? AND source_id = ? AND day = ? AND event_key = ?',
      ),
      highMark: db.prepare<[number, number], { high_ms: number }>('SELECT high_ms FROM delivery_marks WHERE destination_id = ? AND source_id = ?'),
      raiseMark: db.prepare(
        'INSERT INTO delivery_marks (destination_id, source_id, high_ms) VALUES (?, ?, ?) ON CONFLICT (destination_id, source_id) DO UPDATE SET high_ms = max(high_ms, excluded.high_ms)',
      ),
      addRange: db.prepare('INSERT INTO delivered_ranges (destination_id, source_id, first_row, end_row, block_id) VALUES (?, ?, ?, ?, ?)'),
      ranges: db.prepare<[number, number], { first_row: number; end_row: number; state: 'sending' | 'acked'; attempts: number; refused: number }>(
        'SELECT r.first_row, r.end_row, b.state, b.attempts, b.refused FROM delivered_ranges r JOIN delivery_blocks b ON b.id = r.block_id WHERE r.destination_id = ? AND r.source_id = ?',
      ),
      flagged: db.prepare<[number, number], { event_key: string }>(
        'SELECT e.event_key FROM delivered_events e JOIN delivery_blocks b ON b.id = e.block_id WHERE e.destination_id = ? AND e.source_id = ? AND b.possibly_duplicated = 1',
      ),
      // Operator queries, one run at a time: a scan of the claims is acceptable there (no index on block_id to keep
      // every claim's insert cheap).
      flaggedOfRunEvents: db.prepare<[string], { event_key: string }>(
        'SELECT e.event_key FROM delivery_blocks b JOIN delivered_events e ON e.block_id = b.id WHERE b.run_id = ? AND b.possibly_duplicated = 1',
      ),
      flaggedOfRunRanges: db.prepare<[string], { source: string; first_row: number; end_row: number }>(
        'SELECT s.key AS source, r.first_row, r.end_row FROM delivery_blocks b JOIN delivered_ranges r ON r.block_id = b.id JOIN sources s ON s.id = r.source_id WHERE b.run_id = ? AND b.possibly_duplicated = 1 ORDER BY r.first_row',
      ),
      deliveredOfRun: db.prepare<[string], { blocks: number; rows: number; flagged: number; flagged_rows: number }>(
        "SELECT count(*) AS blocks, coalesce(sum(rows), 0) AS rows, coalesce(sum(possibly_duplicated), 0) AS flagged, coalesce(sum(CASE WHEN possibly_duplicated = 1 THEN resent_rows ELSE 0 END), 0) AS flagged_rows FROM delivery_blocks WHERE run_id = ? AND state = 'acked'",
      ),
      blockLease: db.prepare<[number], { lease_name: string | null; lease_holder: string | null }>(
        'SELECT lease_name, lease_holder FROM delivery_blocks WHERE id = ?',
      ),
      attempt: db.prepare('UPDATE delivery_blocks SET attempts = attempts + 1, updated_ms = ? WHERE id = ?'),
      // resent_rows is what the run's counts call possibly duplicated (deliveredOfRun): every row of a block whose answer
      // was lost, not only those it re-sent.
      acked: db.prepare("UPDATE delivery_blocks SET state = 'acked', possibly_duplicated = ?, resent_rows = max(resent_rows, ?), updated_ms = ? WHERE id = ?"),
      refused: db.prepare("UPDATE delivery_blocks SET refused = 1, refused_status = ?, updated_ms = ? WHERE id = ? AND state = 'sending'"),
      // Newest first; a block whose claims all moved to later blocks is no longer what stops the connector. Operator
      // queries: the scan of the source's claims per candidate is acceptable there.
      latestRefused: db.prepare<
        [number, number],
        {
          id: number;
          run_id: string | null;
          rows: number;
          refused_status: number;
          updated_ms: number;
          given_up_ms: number | null;
          given_up_note: string | null;
        }
      >(
        "SELECT b.id, b.run_id, b.rows, b.refused_status, b.updated_ms, b.given_up_ms, b.given_up_note FROM delivery_blocks b WHERE b.destination_id = ? AND b.source_id = ? AND b.refused_status = 400 AND b.state = 'sending' AND EXISTS (SELECT 1 FROM delivered_events e WHERE e.destination_id = b.destination_id AND e.source_id = b.source_id AND e.block_id = b.id) ORDER BY b.id DESC LIMIT 1",
      ),
      claimsOfBlock: db.prepare<[number, number, number], { n: number }>(
        'SELECT count(*) AS n FROM delivered_events WHERE destination_id = ? AND source_id = ? AND block_id = ?',
      ),
      answered: db.prepare("UPDATE delivery_blocks SET refused_status = ?, updated_ms = ? WHERE id = ? AND state = 'sending'"),
      giveUp: db.prepare('UPDATE delivery_blocks SET given_up_ms = ?, given_up_note = ? WHERE id = ? AND given_up_ms IS NULL'),
      // Inside the give-up's write transaction, only what is cheap: the block's own row, a newer refusal, one claim.
      refusedById: db.prepare<[number, number, number], { given_up_ms: number | null }>(
        "SELECT given_up_ms FROM delivery_blocks WHERE id = ? AND destination_id = ? AND source_id = ? AND refused_status = 400 AND state = 'sending'",
      ),
      newerRefused: db.prepare<[number, number, number], { id: number }>(
        "SELECT id FROM delivery_blocks WHERE destination_id = ? AND source_id = ? AND id > ? AND refused_status = 400 AND state = 'sending' LIMIT 1",
      ),
      // Newest days first along the primary key: a refused block's claims are on the latest days (no index on block_id).
      anyClaim: db.prepare<[number, number, number], { one: number }>(
        'SELECT 1 AS one FROM delivered_events WHERE destination_id = ? AND source_id = ? AND block_id = ? ORDER BY day DESC LIMIT 1',
      ),
      // Claims of days before the horizon, unless their block is younger than it: an event recorded long ago but sent
      // recently (a backlog load found by _lastUpdated) stays known until its own push is as old as the horizon.
      pruneEvents: db.prepare(
        'DELETE FROM delivered_events WHERE destination_id = ? AND source_id = ? AND day >= 0 AND day < ? AND block_id NOT IN (SELECT id FROM delivery_blocks WHERE destination_id = ? AND source_id = ? AND created_ms >= ?)',
      ),
      pruneRanges: db.prepare(
        'DELETE FROM delivered_ranges WHERE block_id IN (SELECT id FROM delivery_blocks WHERE destination_id = ? AND source_id = ? AND created_ms < ?)',
      ),
      // Never the table's newest block: SQLite gives a new row the highest id plus one, so deleting it would hand its id
      // (and those below it) to the next blocks, and a claim that outlived its old block would read a new one's state.
      pruneBlocks: db.prepare(
        'DELETE FROM delivery_blocks WHERE destination_id = ? AND source_id = ? AND created_ms < ? AND id < (SELECT max(id) FROM delivery_blocks)',
      ),
      horizon: db.prepare<[number, number], { pruned_before_ms: number }>(
        'SELECT pruned_before_ms FROM delivery_horizons WHERE destination_id = ? AND source_id = ?',
      ),
      raiseHorizon: db.prepare(
        'INSERT INTO delivery_horizons (destination_id, source_id, pruned_before_ms) VALUES (?, ?, ?) ON CONFLICT (destination_id, source_id) DO UPDATE SET pruned_before_ms = max(pruned_before_ms, excluded.pruned_before_ms)',
      ),
    };
  }

  openEventBlock<T extends EventClaim>(
    target: DeliveryTarget,
    cursor: ClaimCursor<T>,
    maxRows: number,
    onDecision: (event: T, decision: ClaimDecision) => void,
  ): OpenedBlock | undefined {
    const destination = this.destinationId(target.destination);
    const source = this.sourceId(target.source);
    try {
      return this.db
        .transaction((): OpenedBlock => {
          this.requireLease(target.lease, 'claiming another block');
          const blockId = this.insertBlock(destination, source, target);
          const forgotten = this.stmt.horizon.get(destination, source)?.pruned_before_ms;
          const forgottenDay = forgotten === undefined ? -1 : claimDay(forgotten);
          let rows = 0;
          let resentRows = 0;
          let high = Number.NEGATIVE_INFINITY;
          for (let event = cursor.peek(); event !== undefined; event = cursor.peek()) {
            if (rows > 0 && rows + event.rows > maxRows) break;
            cursor.take();
            const decision = this.claimOne(destination, source, blockId, event, target.lease, forgottenDay);
            if (decision === 'send' || decision === 'resend') {
              rows += event.rows;
              if (decision === 'resend') resentRows += event.rows;
              if (event.recordedMs !== undefined && event.recordedMs > high) high = event.recordedMs;
            }
            onDecision(event, decision);
          }
          if (rows === 0) throw new NothingClaimed();
          this.stmt.sizeBlock.run(rows, resentRows, blockId);
          if (Number.isFinite(high)) this.stmt.raiseMark.run(destination, source, high);
          return { id: blockId, rows, resentRows };
        })
        .immediate();
    } catch (error) {
      if (error instanceof NothingClaimed) return undefined;
      throw error;
    }
  }

  /**
   * @param forgottenDay - the claim day before which a prune forgot claims (delivery_horizons), or -1 when none did.
   */
  private claimOne(destination: number, source: number, blockId: number, event: EventClaim, lease: LeaseRef | undefined, forgottenDay: number): ClaimDecision {
    const day = claimDay(event.recordedMs);
    if (this.stmt.claim.run(destination, source, day, event.key, blockId).changes === 1) {
      if (day < 0 || day >= forgottenDay) return 'send';
      // Recorded on a day whose claims a prune forgot: this event may have been acknowledged then. It comes back when a
      // Bulk export's _since (by lastUpdated) meets an old event the server re-stamped, or a backlog loaded late; no one
      // can tell which, so it goes out flagged, and stays so through any later re-claim.
      this.stmt.reclaim.run(blockId, 1, destination, source, day, event.key);
      return 'resend';
    }
    const existing = this.stmt.claimed.get(destination, source, day, event.key);
    if (!existing || existing.block_id === blockId) return 'duplicate';
    if (existing.state === 'acked') return 'delivered';
    // Given up by the operator after Purview refused it as invalid: the claim stays on that block, for every later run.
    if (existing.given_up_ms !== null) return 'given-up';
    // Not acknowledged: it may have reached Purview if its block was ever attempted, if an earlier block carrying it
    // was (maybe_sent sticks across moves), or if its block is gone and nobody can tell. A block never attempted can
    // still be, unless its writer held the lease the caller holds now (checked in this transaction): its markAttempt
    // is then refused, so the block can never go out. Opened without a lease or under another one, its writer may be
    // a run that has not noticed it lost the connector (paused, or on a machine whose clock runs behind).
    // A block Purview definitely refused (markRefused) never reached it and is never attempted again.
    const refused = existing.refused === 1;
    const attemptable = !refused && existing.state === 'sending' && (lease === undefined || existing.lease_name !== lease.name);
    const maybeSent = existing.state === null || (!refused && (existing.attempts ?? 0) > 0) || existing.maybe_sent === 1 || attemptable;
    this.stmt.reclaim.run(blockId, maybeSent ? 1 : 0, destination, source, day, event.key);
    return maybeSent ? 'resend' : 'send';
  }

  openRangeBlock(target: DeliveryTarget, ranges: readonly RowRange[], resentRows: number): OpenedBlock {
    const destination = this.destinationId(target.destination);
    const source = this.sourceId(target.source);
    return this.db
      .transaction((): OpenedBlock => {
        this.requireLease(target.lease, 'claiming another block');
        const blockId = this.insertBlock(destination, source, target);
        let rows = 0;
        for (const range of ranges) {
          this.stmt.addRange.run(destination, source, range.first, range.end, blockId);
          rows += range.end - range.first;
        }
        this.stmt.sizeBlock.run(rows, resentRows, blockId);
        return { id: blockId, rows, resentRows };
      })
      .immediate();
  }

  rangesOf(target: DeliveryTarget): RangeRecord[] {
    const rows = this.stmt.ranges.all(this.destinationId(target.destination), this.sourceId(target.source));
    return rows.map((r) => ({
      first: r.first_row,
      end: r.end_row,
      state: r.state === 'acked' ? 'acked' : r.attempts > 0 && r.refused !== 1 ? 'unknown' : 'unsent',
    }));
  }

  markAttempt(blockId: number): void {
    this.db
      .transaction(() => {
        // The lease the block was opened under, not one the caller names: a writer cannot send a block of a lease
        // it lost by forgetting to say which one it holds.
        const block = this.stmt.blockLease.get(blockId);
        if (block?.lease_name && block.lease_holder) this.requireLease({ name: block.lease_name, holderId: block.lease_holder }, 'sending a block');
        this.stmt.attempt.run(this.clock.now(), blockId);
      })
      .immediate();
  }

  markAcked(blockId: number, possiblyDuplicatedRows: number): void {
    this.stmt.acked.run(possiblyDuplicatedRows > 0 ? 1 : 0, possiblyDuplicatedRows, this.clock.now(), blockId);
  }

  markRefused(blockId: number, status?: number): void {
    this.stmt.refused.run(status ?? null, this.clock.now(), blockId);
  }

  markAnswered(blockId: number, status: number): void {
    this.stmt.answered.run(status, this.clock.now(), blockId);
  }

  refusedBlock(target: Pick<DeliveryTarget, 'destination' | 'source'>): RefusedBlock | undefined {
    const ids = this.existingIds(target);
    if (!ids) return undefined;
    const { destination, source } = ids;
    const block = this.stmt.latestRefused.get(destination, source);
    if (!block) return undefined;
    return {
      blockId: block.id,
      runId: block.run_id ?? undefined,
      events: this.stmt.claimsOfBlock.get(destination, source, block.id)?.n ?? 0,
      rows: block.rows,
      status: block.refused_status,
      refusedMs: block.updated_ms,
      ...(block.given_up_ms === null ? {} : { givenUpMs: block.given_up_ms }),
      ...(block.given_up_note === null ? {} : { note: block.given_up_note }),
    };
  }

  giveUpRefused(target: Pick<DeliveryTarget, 'destination' | 'source'>, lease: LeaseRef, note: string, blockId: number): boolean {
    const ids = this.existingIds(target);
    if (!ids) return false;
    const { destination, source } = ids;
    // refusedBlock's scans ran before, outside this lock: other connectors sharing the database keep writing meanwhile.
    return this.db
      .transaction((): boolean => {
        // Under the connector's lease, checked here: a run holding it may be claiming these very events for a new block.
        this.requireLease(lease, 'giving up a refused block');
        const block = this.stmt.refusedById.get(blockId, destination, source);
        if (!block || block.given_up_ms !== null) return false;
        if (this.stmt.newerRefused.get(destination, source, blockId) || !this.stmt.anyClaim.get(destination, source, blockId)) return false;
        return this.stmt.giveUp.run(this.clock.now(), note, blockId).changes === 1;
      })
      .immediate();
  }

  acknowledgedEvents(target: DeliveryTarget, events: ReadonlyArray<Pick<EventClaim, 'key' | 'recordedMs'>>): Set<string> {
    const destination = this.destinationId(target.destination);
    const source = this.sourceId(target.source);
    const acknowledged = new Set<string>();
    for (const event of events) {
      if (this.stmt.claimed.get(destination, source, claimDay(event.recordedMs), event.key)?.state === 'acked') acknowledged.add(event.key);
    }
    return acknowledged;
  }

  /** Keys of the events in blocks flagged possibly duplicated: what an operator may find twice in Purview. */
  flaggedEventKeys(target: Pick<DeliveryTarget, 'destination' | 'source'>): Set<string> {
    const rows = this.stmt.flagged.all(this.destinationId(target.destination), this.sourceId(target.source));
    return new Set(rows.map((r) => r.event_key));
  }

  *possiblyDuplicatedOf(runId: string): IterableIterator<PossiblyDuplicated> {
    for (const row of this.stmt.flaggedOfRunEvents.iterate(runId)) yield { kind: 'event', key: row.event_key };
    for (const row of this.stmt.flaggedOfRunRanges.iterate(runId)) yield { kind: 'rows', source: row.source, first: row.first_row, end: row.end_row };
  }

  deliveredOf(runId: string): RunDelivered {
    const row = this.stmt.deliveredOfRun.get(runId);
    return { blocks: row?.blocks ?? 0, rows: row?.rows ?? 0, possiblyDuplicated: row?.flagged ?? 0, rowsPossiblyDuplicated: row?.flagged_rows ?? 0 };
  }

  highMark(target: DeliveryTarget): number | undefined {
    return this.stmt.highMark.get(this.destinationId(target.destination), this.sourceId(target.source))?.high_ms;
  }

  /**
   * Forgets acknowledgements older than `beforeMs` (event claims by day of `recorded` once their block is as old too,
   * file ranges by block age): a backfill reaching before it can no longer be de-duplicated, so the pipeline refuses one.
   */
  prune(target: Pick<DeliveryTarget, 'destination' | 'source'>, beforeMs: number): void {
    const destination = this.destinationId(target.destination);
    const source = this.sourceId(target.source);
    this.db.transaction(() => {
      const forgotten =
        this.stmt.pruneEvents.run(destination, source, claimDay(beforeMs), destination, source, beforeMs).changes +
        this.stmt.pruneRanges.run(destination, source, beforeMs).changes;
      // Blocks alone are not forgetting: a claim that outlives its block is re-sent flagged, never silently.
      this.stmt.pruneBlocks.run(destination, source, beforeMs);
      // Remembered with the prune, never lowered: a later run with a longer retention cannot bring the claims back.
      if (forgotten > 0) this.stmt.raiseHorizon.run(destination, source, beforeMs);
    })();
  }

  /** The latest `beforeMs` a prune forgot claims before, for the destination and source (undefined: none forgotten). */
  prunedBefore(target: Pick<DeliveryTarget, 'destination' | 'source'>): number | undefined {
    return this.stmt.horizon.get(this.destinationId(target.destination), this.sourceId(target.source))?.pruned_before_ms;
  }

  private insertBlock(destination: number, source: number, target: DeliveryTarget): number {
    const now = this.clock.now();
    const { lease } = target;
    return Number(this.stmt.openBlock.run(destination, source, target.runId ?? null, now, now, lease?.name ?? null, lease?.holderId ?? null).lastInsertRowid);
  }

  /** The ids of the destination and source, looked up, never created: an operator's look at a connector writes nothing. */
  private existingIds(target: Pick<DeliveryTarget, 'destination' | 'source'>): { destination: number; source: number } | undefined {
    const destination = this.stmt.destination.get(target.destination)?.id;
    const source = this.stmt.source.get(target.source)?.id;
    return destination === undefined || source === undefined ? undefined : { destination, source };
  }

  /** Called inside the write's transaction, which orders the check against another process taking the lease over. */
  private requireLease(lease: LeaseRef | undefined, doing: string): void {
    if (lease !== undefined) this.leases.requireHeld(lease, doing);
  }

  private destinationId(key: string): number {
    return this.idOf(
      `d:${key}`,
      () => this.stmt.destination.get(key)?.id,
      () => this.stmt.addDestination.run(key),
    );
  }

  /**
   * Not cached, unlike destinations: `bridge state rename` may give a source's row another key from another process
   * (sqlite-connector-moves.ts), and an id remembered under the old key would file acknowledgements where no run
   * looks for them. One indexed read per block or batch.
   */
  private sourceId(key: string): number {
    const id = this.stmt.source.get(key)?.id;
    if (id !== undefined) return id;
    this.stmt.addSource.run(key);
    return this.stmt.source.get(key)?.id as number;
  }

  /** Ids are created on first use; another process may create the same one at the same moment (OR IGNORE). */
  private idOf(cacheKey: string, find: () => number | undefined, add: () => unknown): number {
    let id = this.ids.get(cacheKey) ?? find();
    if (id === undefined) {
      add();
      id = find() as number;
    }
    this.ids.set(cacheKey, id);
    return id;
  }
}
