/**
 * SQLite state store (better-sqlite3, WAL). Synchronous on purpose: every write is durable when the call returns,
 * which is what "claim a block before its request, acknowledge it after the 2xx" needs. Runs, watermarks and the
 * overlap's seen events live here; the delivery ledger and the leases in their own files.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../../clock.js';
import { BridgeError, faultCode, stateFaultAdvice } from '../../errors.js';
import type {
  ClaimCursor,
  ClaimDecision,
  DeliveryTarget,
  EventClaim,
  LeaseRef,
  OpenedBlock,
  RangeRecord,
  RefusedBlock,
  RowRange,
} from '../../purview/ledger.js';
import { MIGRATIONS } from './migrations.js';
import { refuseNewerSchema, STATE_SCHEMA_VERSION, schemaVersion } from './schema.js';
import { SqliteConnectorMoves } from './sqlite-connector-moves.js';
import { SqliteLeaseStore } from './sqlite-lease.js';
import { SqliteDeliveryLedger } from './sqlite-ledger.js';
import {
  type ConnectorMove,
  type ConnectorMoveOptions,
  type LeaseHolder,
  type LeaseOutcome,
  type PossiblyDuplicated,
  type RunCounts,
  type RunDelivered,
  type RunDetails,
  type RunRecord,
  type SeenEvent,
  type StateStore,
  ZERO_COUNTS,
} from './types.js';

interface RunRow {
  id: string;
  connector: string;
  state: string;
  trigger: string;
  since: string;
  until: string;
  started_at: string;
  finished_at: string | null;
  counts: string;
  error: string | null;
  spool_path: string | null;
  rejects_path: string | null;
  dry_run: number;
  backfill: number;
  details: string | null;
}

/**
 * The state store of a directory a run has used: a stateDir that names no database (a typo, another host's path) is an
 * error, not a new empty database. `upgrade` false (the commands that only read it: `bridge status`, `runs`, `rejects`,
 * `state refused`) leaves an older schema as it is and refuses: a look with a newer bridge must not change the schema
 * under the bridge that still runs on it (another replica, the service not yet restarted), which could then not start
 * again. The commands that write (sync, serve, push, `state …`) upgrade it, as does `bridge state upgrade`.
 */
export function openExistingStateStore(stateDir: string, clock: Clock, options: { upgrade: boolean; isStale?: (holder: LeaseHolder) => boolean }): StateStore {
  requireDatabase(stateDir, `no run has used the state directory ${stateDir}`, ', or run a sync first');
  return openStateStore(stateDir, clock, options);
}

/** A stateDir that names no database is refused (BRG_ERR_CONFIG_INVALID), saying `why` and what else to do. */
function requireDatabase(stateDir: string, why: string, orElse = ''): void {
  const file = join(stateDir, 'bridge.sqlite');
  if (!existsSync(file)) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `No state database at ${file}: ${why}. Check stateDir in the config (or $BRIDGE__stateDir)${orElse}.`, {
      details: { file },
    });
  }
}

export { STATE_SCHEMA_VERSION } from './schema.js';

export interface SchemaUpgrade {
  readonly from: number;
  readonly to: number;
}

/**
 * Brings an existing state database to this bridge's schema (`bridge state upgrade`); says from which version this
 * process took it (`from` = `to` when it was there already, or another process upgraded it meanwhile). Refused while a
 * run holds a connector's lease (at `nowMs`; `isStale` says a holder died, as leases take it): a bridge is at work on
 * it, most likely of the older version; and, from 0.1.0, while a push it left unfinished waits (refuseUnfinishedV1Push).
 * Checked under the write lock of the first step, so no run starts in between.
 */
export function upgradeStateStore(stateDir: string, holds: { nowMs: number; isStale: (holder: LeaseHolder) => boolean }): SchemaUpgrade {
  requireDatabase(stateDir, 'there is nothing to upgrade');
  return withDatabase(stateDir, (db) => {
    const applied = migrate(db, true, () => refuseUpgrade(db, stateDir, holds.nowMs, holds.isStale));
    db.close();
    return { from: applied[0] === undefined ? STATE_SCHEMA_VERSION : applied[0] - 1, to: STATE_SCHEMA_VERSION };
  });
}

/**
 * Opens (or creates) the state store. With `upgrade` (the default: the commands that write) an older schema is brought
 * to this bridge's, as `bridge state upgrade` does, and refused the same way while a run holds a connector's lease: a
 * bridge of the older version at work on it could not go on (`isStale` says a holder died; by default only an expired
 * lease is let go); and while a push 0.1.0 left unfinished waits.
 */
export function openStateStore(
  stateDir: string,
  clock: Clock,
  options: { upgrade: boolean; isStale?: (holder: LeaseHolder) => boolean } = { upgrade: true },
): StateStore {
  return withDatabase(stateDir, (db) => {
    migrate(db, options.upgrade, () => refuseUpgrade(db, stateDir, clock.now(), options.isStale ?? (() => false)));
    return new SqliteStateStore(db, clock);
  });
}

/** Opens (or creates) the database file and runs `use` on it; the errors of both come out as BRG_ERR_STATE. */
function withDatabase<T>(stateDir: string, use: (db: Database.Database) => T): T {
  let db: Database.Database | undefined;
  try {
    if (!existsSync(stateDir)) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const file = join(stateDir, 'bridge.sqlite');
    db = new Database(file);
    chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    return use(db);
  } catch (cause) {
    if (db?.open) db.close();
    if (cause instanceof BridgeError) throw cause;
    throw openFailure(stateDir, cause);
  }
}

/**
 * Why the database could not be opened, with SQLite's (or the file system's) code: a damaged file, a full disk and a
 * read-only directory each have their own remedy, and "check the directory is writable" sent the operator of a damaged
 * one looking in the wrong place, maybe to delete it (and send everything again).
 */
function openFailure(stateDir: string, cause: unknown): BridgeError {
  const code = faultCode(cause);
  if (code?.startsWith('SQLITE_BUSY')) {
    return new BridgeError(
      'BRG_ERR_STATE',
      `The state database in ${stateDir} is locked by another process (a bridge migrating or writing it); wait for it and run again.`,
      { cause, details: { stateDir, sqlite: code } },
    );
  }
  const file = join(stateDir, 'bridge.sqlite');
  const advice = code === undefined ? '' : stateFaultAdvice(code, file);
  return new BridgeError(
    'BRG_ERR_STATE',
    `Cannot open the state database ${file}${code === undefined ? '' : ` (${code})`}.${advice || ' Check that the state directory exists and is writable.'}`,
    { cause, details: { stateDir, ...(code === undefined ? {} : { [code.startsWith('SQLITE_') ? 'sqlite' : 'errno']: code }) } },
  );
}

/** What must be over before the schema is upgraded: from 0.1.0 (v1, no leases), its unfinished pushes; later, held leases. */
function refuseUpgrade(db: Database.Database, stateDir: string, nowMs: number, isStale: (holder: LeaseHolder) => boolean): void {
  const version = schemaVersion(db);
  if (version === 1) refuseUnfinishedV1Push(db, stateDir);
  if (version >= 2) refuseHeldLeases(db, nowMs, isStale);
}

/**
 * 0.1.0 (schema v1) kept which blocks of a run's spool Purview acknowledged by the spool's hash and block index; the v2
 * step drops them, since they name no event. A `bridge sync` run it left 'pushing' (a failure, a stop or a kill during
 * its push) would then be closed by this version and its window pulled and sent again whole: the rows Purview already
 * holds a second time, unflagged. So the upgrade waits until 0.1.0 finished it. A run left 'running' died (or is still)
 * pulling: 0.1.0 sends nothing before it marks a run 'pushing', so its window pulled again sends nothing twice.
 */
function refuseUnfinishedV1Push(db: Database.Database, stateDir: string): void {
  const runs = db
    .prepare<[], { id: string; connector: string; since: string; until: string; started_at: string }>(
      "SELECT id, connector, since, until, started_at FROM runs WHERE state = 'pushing' ORDER BY started_at",
    )
    .all();
  const first = runs[0];
  if (first === undefined) return;
  const one = runs.length === 1;
  const named = runs.map((run) => `run ${run.id} of connector "${run.connector}" (window ${run.since} to ${run.until}, started ${run.started_at})`);
  const connectors = [...new Set(runs.map((run) => run.connector))];
  const file = join(stateDir, 'bridge.sqlite');
  throw new BridgeError(
    'BRG_ERR_STATE_SCHEMA',
    `The state database is bridge 0.1.0's (schema v1), and ${one ? 'a push it left unfinished waits' : `${runs.length} pushes it left unfinished wait`}: ${named.join('; ')}. ` +
      `0.1.0 recorded which of its blocks Purview acknowledged in a form this version cannot carry over: upgraded now, ${one ? 'that window' : 'those windows'} would be pulled and sent again whole, the rows Purview already holds a second time, unflagged. The schema is left at v1. ` +
      `Finish ${one ? 'it' : 'them'} with 0.1.0 first: with this version stopped, run 0.1.0's ${connectors.map((c) => `\`bridge sync --connector ${c}\``).join(' and ')} once (it resumes the push and sends only what Purview has not acknowledged; a 0.1.0 service does it at its next run), then upgrade. ` +
      `Only if that is impossible, abandon ${one ? 'it' : 'them'} knowingly: with no bridge running, \`sqlite3 ${file} "UPDATE runs SET state = 'failed' WHERE state = 'pushing'"\`, then upgrade; the next run sends ${one ? 'that window' : 'those windows'} again, and Purview may then hold rows of ${one ? 'it' : 'them'} twice, unflagged: keep the ${one ? 'window' : 'windows'} above to find them.`,
    { details: { run: first.id, connector: first.connector, unfinished: runs.length } },
  );
}

/** Held leases (schema v2 on: an older database has none to hold). */
function refuseHeldLeases(db: Database.Database, nowMs: number, isStale: (holder: LeaseHolder) => boolean): void {
  const rows = db.prepare<[number], { name: string; owner: string }>('SELECT name, owner FROM leases WHERE expires_ms > ? ORDER BY name').all(nowMs);
  const held = rows.map((row) => ({ name: row.name, holder: ownerOf(row.owner) })).filter(({ holder }) => !isStale(holder as LeaseHolder));
  const first = held[0];
  if (first === undefined) return;
  const { holder } = first;
  throw new BridgeError(
    'BRG_ERR_RUN_IN_PROGRESS',
    `${held.length === 1 ? 'A run holds' : `${held.length} runs hold`} the state: ${first.name} by ${holder.command ?? 'a bridge'} (host ${holder.host ?? '?'}, pid ${holder.pid ?? '?'}, since ${holder.since ?? '?'}). Upgrade the schema once the bridges of the older version are stopped; a holder that died lets go after state.leaseTtlSeconds.`,
    { details: { lease: first.name, holders: held.length } },
  );
}

/** A lease's owner as recorded; an owner that is not the JSON a bridge writes still holds the lease, unnamed. */
function ownerOf(text: string): Partial<LeaseHolder> {
  try {
    const owner: unknown = JSON.parse(text);
    return owner !== null && typeof owner === 'object' ? (owner as Partial<LeaseHolder>) : {};
  } catch {
    return {};
  }
}

/**
 * Each migration in its own transaction, which takes the write lock first (BEGIN IMMEDIATE) and reads the version again
 * under it: another process may have applied it since this one looked (two bridges started at once on a new or older
 * database), and then it is skipped, not run twice. A kill between two migrations leaves the last one that committed.
 * Returns the versions this process applied.
 */
function migrate(db: Database.Database, upgrade: boolean, beforeFirstStep?: () => void): number[] {
  refuseNewerSchema(db, false);
  const version = schemaVersion(db);
  if (version < STATE_SCHEMA_VERSION && !upgrade) {
    throw new BridgeError(
      'BRG_ERR_STATE_SCHEMA',
      `State database schema v${version} is older than this bridge (v${STATE_SCHEMA_VERSION}), and this command only reads it, so it leaves it as it is (a bridge of the older version may still use it, or an upgrade is under way: then run this again in a moment). Read it with that version, or upgrade it once the older bridges are stopped: \`bridge state upgrade\` (or the next sync or service start of this version does it).`,
      { details: { version, bridgeVersion: STATE_SCHEMA_VERSION } },
    );
  }
  const applied: number[] = [];
  const step = db.transaction((target: number): boolean => {
    if (schemaVersion(db) >= target) return false;
    if (applied.length === 0) beforeFirstStep?.();
    db.exec(MIGRATIONS[target - 1] as string);
    db.pragma(`user_version = ${target}`);
    return true;
  });
  for (let target = version + 1; target <= STATE_SCHEMA_VERSION; target += 1) if (step.immediate(target)) applied.push(target);
  return applied;
}

class SqliteStateStore implements StateStore {
  private readonly stmt;
  private readonly ledger: SqliteDeliveryLedger;
  private readonly leases: SqliteLeaseStore;
  private readonly moves: SqliteConnectorMoves;

  constructor(
    private readonly db: Database.Database,
    private readonly clock: Clock,
  ) {
    this.leases = new SqliteLeaseStore(db, clock);
    this.ledger = new SqliteDeliveryLedger(db, clock, this.leases);
    this.moves = new SqliteConnectorMoves(db, this.leases);
    this.stmt = {
      watermark: db.prepare<[string], { watermark: string }>('SELECT watermark FROM watermarks WHERE connector = ?'),
      setWatermark: db.prepare(
        'INSERT INTO watermarks (connector, watermark, updated_at) VALUES (?, ?, ?) ON CONFLICT (connector) DO UPDATE SET watermark = excluded.watermark, updated_at = excluded.updated_at',
      ),
      insertRun: db.prepare(
        'INSERT INTO runs (id, connector, state, trigger, since, until, started_at, finished_at, counts, error, spool_path, rejects_path, dry_run, backfill, details) VALUES (@id, @connector, @state, @trigger, @since, @until, @started_at, @finished_at, @counts, @error, @spool_path, @rejects_path, @dry_run, @backfill, @details)',
      ),
      updateRun: db.prepare(
        'UPDATE runs SET state = @state, since = @since, until = @until, finished_at = @finished_at, counts = @counts, error = @error, spool_path = @spool_path, rejects_path = @rejects_path, details = @details WHERE id = @id',
      ),
      run: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE id = ?'),
      lastCompleted: db.prepare<[string], RunRow>(
        "SELECT * FROM runs WHERE connector = ? AND state = 'completed' AND dry_run = 0 ORDER BY finished_at DESC LIMIT 1",
      ),
      unfinished: db.prepare<[string], RunRow>("SELECT * FROM runs WHERE connector = ? AND state IN ('running', 'pushing') ORDER BY started_at DESC LIMIT 1"),
      allUnfinished: db.prepare<[string], RunRow>("SELECT * FROM runs WHERE connector = ? AND state IN ('running', 'pushing') ORDER BY started_at DESC"),
      seen: db.prepare<[string, string, string], { one: number }>(
        'SELECT 1 AS one FROM seen_events WHERE connector = ? AND event_key = ? AND (destination IS NULL OR destination = ?)',
      ),
      prune: db.prepare('DELETE FROM seen_events WHERE connector = ? AND recorded_ms < ?'),
      // recorded_ms holds SeenEvent.windowMs: named before a source could select by another time; kept to spare a migration.
      stage: db.prepare('INSERT OR IGNORE INTO pending_seen (run_id, event_key, recorded_ms) VALUES (?, ?, ?)'),
      // The latest destination wins: the ledger, keyed by destination, still answers for the earlier one.
      promote: db.prepare(
        'INSERT INTO seen_events (connector, event_key, recorded_ms, destination) SELECT ?, event_key, recorded_ms, ? FROM pending_seen WHERE run_id = ? ' +
          'ON CONFLICT (connector, event_key) DO UPDATE SET recorded_ms = excluded.recorded_ms, destination = excluded.destination',
      ),
      dropStaged: db.prepare('DELETE FROM pending_seen WHERE run_id = ?'),
      dropStagedOfFailed: db.prepare("DELETE FROM pending_seen WHERE run_id IN (SELECT id FROM runs WHERE connector = ? AND state = 'failed')"),
      sourceState: db.prepare<[string, string], { value: string }>('SELECT value FROM source_state WHERE connector = ? AND name = ?'),
      setSourceState: db.prepare(
        'INSERT INTO source_state (connector, name, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (connector, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      ),
      dropSourceState: db.prepare('DELETE FROM source_state WHERE connector = ? AND name = ?'),
    };
  }

  private nowIso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  getWatermark(connector: string): string | undefined {
    return this.stmt.watermark.get(connector)?.watermark;
  }

  createRun(run: RunRecord): void {
    this.stmt.insertRun.run(toRow(run));
  }

  updateRun(id: string, patch: Partial<Omit<RunRecord, 'id' | 'connector'>>): void {
    // Read and written in one transaction: another process completing the run between the two would otherwise be
    // undone (the run back to 'pushing' or 'failed', its counts and finish lost).
    this.db
      .transaction(() => {
        const current = this.existingRun(id);
        if (current.state === 'completed') return;
        this.stmt.updateRun.run(toRow({ ...current, ...patch }));
        if (patch.state === 'failed') this.stmt.dropStaged.run(id);
      })
      .immediate();
  }

  private existingRun(id: string): RunRecord {
    const current = this.getRun(id);
    if (!current) throw new BridgeError('BRG_ERR_STATE', `Run ${id} does not exist in the state database.`);
    return current;
  }

  getRun(id: string): RunRecord | undefined {
    const row = this.stmt.run.get(id);
    return row ? fromRow(row) : undefined;
  }

  listRuns(options: { connector?: string; idPrefix?: string; limit?: number } = {}): RunRecord[] {
    const where: string[] = [];
    const values: Array<string | number> = [];
    if (options.connector !== undefined) {
      where.push('connector = ?');
      values.push(options.connector);
    }
    if (options.idPrefix !== undefined) {
      // substr, not LIKE: an operator's prefix may hold % or _.
      where.push('substr(id, 1, ?) = ?');
      values.push(options.idPrefix.length, options.idPrefix);
    }
    const sql = `SELECT * FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')} ` : ''}ORDER BY started_at DESC LIMIT ?`;
    return this.db
      .prepare<Array<string | number>, RunRow>(sql)
      .all(...values, options.limit ?? 50)
      .map(fromRow);
  }

  lastCompletedRun(connector: string): RunRecord | undefined {
    const row = this.stmt.lastCompleted.get(connector);
    return row ? fromRow(row) : undefined;
  }

  findUnfinishedRun(connector: string): RunRecord | undefined {
    const row = this.stmt.unfinished.get(connector);
    return row ? fromRow(row) : undefined;
  }

  findUnfinishedRuns(connector: string): RunRecord[] {
    return this.stmt.allUnfinished.all(connector).map(fromRow);
  }

  seenEvents(connector: string, destination: string, keys: readonly string[]): Set<string> {
    const seen = new Set<string>();
    for (const key of keys) if (this.stmt.seen.get(connector, key, destination)) seen.add(key);
    return seen;
  }

  completeRun(id: string, completion: Parameters<StateStore['completeRun']>[1]): void {
    this.db
      .transaction(() => {
        const run = this.existingRun(id);
        if (run.state === 'completed') return;
        const { error: _stale, ...rest } = run;
        const details = completion.details ? { ...run.details, ...completion.details } : run.details;
        this.stmt.updateRun.run(toRow({ ...rest, state: 'completed', counts: completion.counts, finishedAt: this.nowIso(), ...(details ? { details } : {}) }));
        if (completion.watermark) {
          this.advanceWatermark(run.connector, completion.watermark);
          const now = this.getWatermark(run.connector);
          const { sourceState } = completion;
          if (sourceState && now !== undefined && Date.parse(now) === Date.parse(completion.watermark)) {
            this.stmt.setSourceState.run(run.connector, sourceState.name, sourceState.value, this.nowIso());
          }
        }
        this.stmt.promote.run(run.connector, completion.destination ?? null, id);
        this.stmt.dropStaged.run(id);
        // Keys staged by failed runs of releases that kept them (and by runs failed by hand) go too.
        this.stmt.dropStagedOfFailed.run(run.connector);
        if (completion.pruneSeenBeforeMs !== undefined) this.stmt.prune.run(run.connector, completion.pruneSeenBeforeMs);
      })
      .immediate();
  }

  /** Never backwards: compared as instants. */
  private advanceWatermark(connector: string, watermark: string): void {
    const current = this.getWatermark(connector);
    if (current !== undefined && Date.parse(current) >= Date.parse(watermark)) return;
    this.stmt.setWatermark.run(connector, watermark, this.nowIso());
  }

  beginPush(runId: string, patch: Partial<Omit<RunRecord, 'id' | 'connector' | 'state'>>, seen: readonly SeenEvent[]): void {
    this.db
      .transaction(() => {
        this.updateRun(runId, { ...patch, state: 'pushing' });
        for (const event of seen) this.stmt.stage.run(runId, event.key, event.windowMs);
      })
      .immediate();
  }

  getSourceState(connector: string, name: string): string | undefined {
    return this.stmt.sourceState.get(connector, name)?.value;
  }

  setSourceState(connector: string, name: string, value: string | undefined): void {
    if (value === undefined) this.stmt.dropSourceState.run(connector, name);
    else this.stmt.setSourceState.run(connector, name, value, this.nowIso());
  }

  pruneDeliveries(target: Pick<DeliveryTarget, 'destination' | 'source'>, beforeMs: number): void {
    this.ledger.prune(target, beforeMs);
  }

  prunedBefore(target: Pick<DeliveryTarget, 'destination' | 'source'>): number | undefined {
    return this.ledger.prunedBefore(target);
  }

  openEventBlock<T extends EventClaim>(
    target: DeliveryTarget,
    cursor: ClaimCursor<T>,
    maxRows: number,
    onDecision: (event: T, decision: ClaimDecision) => void,
  ): OpenedBlock | undefined {
    return this.ledger.openEventBlock(target, cursor, maxRows, onDecision);
  }

  openRangeBlock(target: DeliveryTarget, ranges: readonly RowRange[], resentRows: number): OpenedBlock {
    return this.ledger.openRangeBlock(target, ranges, resentRows);
  }

  rangesOf(target: DeliveryTarget): RangeRecord[] {
    return this.ledger.rangesOf(target);
  }

  markAttempt(blockId: number): void {
    this.ledger.markAttempt(blockId);
  }

  markAcked(blockId: number, possiblyDuplicatedRows: number): void {
    this.ledger.markAcked(blockId, possiblyDuplicatedRows);
  }

  markRefused(blockId: number, status?: number): void {
    this.ledger.markRefused(blockId, status);
  }

  markAnswered(blockId: number, status: number): void {
    this.ledger.markAnswered(blockId, status);
  }

  refusedBlock(target: Pick<DeliveryTarget, 'destination' | 'source'>): RefusedBlock | undefined {
    return this.ledger.refusedBlock(target);
  }

  giveUpRefused(target: Pick<DeliveryTarget, 'destination' | 'source'>, lease: LeaseRef, note: string, blockId: number): boolean {
    return this.ledger.giveUpRefused(target, lease, note, blockId);
  }

  acknowledgedEvents(target: DeliveryTarget, events: ReadonlyArray<Pick<EventClaim, 'key' | 'recordedMs'>>): Set<string> {
    return this.ledger.acknowledgedEvents(target, events);
  }

  highMark(target: DeliveryTarget): number | undefined {
    return this.ledger.highMark(target);
  }

  flaggedEventKeys(target: Pick<DeliveryTarget, 'destination' | 'source'>): Set<string> {
    return this.ledger.flaggedEventKeys(target);
  }

  possiblyDuplicatedOf(runId: string): IterableIterator<PossiblyDuplicated> {
    return this.ledger.possiblyDuplicatedOf(runId);
  }

  deliveredOf(runId: string): RunDelivered {
    return this.ledger.deliveredOf(runId);
  }

  acquireLease(name: string, holder: LeaseHolder, ttlMs: number, isStale: (current: LeaseHolder) => boolean): LeaseOutcome {
    return this.leases.acquireLease(name, holder, ttlMs, isStale);
  }

  renewLease(name: string, holderId: string, ttlMs: number): boolean {
    return this.leases.renewLease(name, holderId, ttlMs);
  }

  releaseLease(name: string, holderId: string): void {
    this.leases.releaseLease(name, holderId);
  }

  readLease(name: string): { holder: LeaseHolder; expiresMs: number } | undefined {
    return this.leases.readLease(name);
  }

  connectorsDeliveredTo(destination: string): string[] {
    return this.moves.connectorsDeliveredTo(destination);
  }

  moveConnector(from: string, to: string, leases: readonly LeaseRef[], options?: ConnectorMoveOptions): ConnectorMove {
    return this.moves.move(from, to, leases, options);
  }

  close(): void {
    this.db.close();
  }
}

function toRow(run: RunRecord): Record<string, string | number | null> {
  return {
    id: run.id,
    connector: run.connector,
    state: run.state,
    trigger: run.trigger,
    since: run.since,
    until: run.until,
    started_at: run.startedAt,
    finished_at: run.finishedAt ?? null,
    counts: JSON.stringify(run.counts),
    error: run.error ? JSON.stringify(run.error) : null,
    spool_path: run.spoolPath ?? null,
    rejects_path: run.rejectsPath ?? null,
    dry_run: run.dryRun ? 1 : 0,
    backfill: run.backfill ? 1 : 0,
    details: run.details ? JSON.stringify(run.details) : null,
  };
}

function fromRow(row: RunRow): RunRecord {
  return {
    id: row.id,
    connector: row.connector,
    state: row.state as RunRecord['state'],
    trigger: row.trigger as RunRecord['trigger'],
    since: row.since,
    until: row.until,
    startedAt: row.started_at,
    ...(row.finished_at ? { finishedAt: row.finished_at } : {}),
    counts: { ...ZERO_COUNTS, ...(JSON.parse(row.counts) as Partial<RunCounts>) },
    ...(row.error ? { error: JSON.parse(row.error) as { code: string; message: string } } : {}),
    ...(row.spool_path ? { spoolPath: row.spool_path } : {}),
    ...(row.rejects_path ? { rejectsPath: row.rejects_path } : {}),
    dryRun: row.dry_run === 1,
    ...(row.backfill === 1 ? { backfill: true } : {}),
    ...(row.details ? { details: JSON.parse(row.details) as RunDetails } : {}),
  };
}
