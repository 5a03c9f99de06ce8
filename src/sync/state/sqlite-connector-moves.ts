/**
 * A connector's name keys everything the state remembers of it: its watermark, its runs, the overlap's seen events, its
 * source state (a Bulk export's checkpoint) and its delivery-ledger claims (the ledger's `sources` row). Renaming a
 * connector in the config without moving them would make it start afresh and send again what Purview already holds.
 * These are the two operator moves (`bridge state rename`, `bridge state retire`) and the query the pipeline's guard
 * asks (src/sync/connector-identity.ts). Flat files are keyed by their content (`file:<sha256>`), not by connector.
 */
import type Database from 'better-sqlite3';
import { BridgeError } from '../../errors.js';
import type { LeaseRef } from '../../purview/ledger.js';
import { connectorLeaseName } from '../lease.js';
import type { SqliteLeaseStore } from './sqlite-lease.js';
import type { ConnectorMove, ConnectorMoveOptions } from './types.js';

/** The source_state name of the kept unknown users (src/composition/unknown-users.ts). */
export const UNKNOWN_USERS = 'unknown-users';
/** Ledger sources that are connectors, retired ones (`retired:…`) included: not a flat file's `file:…`. */
const CONNECTOR_SOURCE = "s.key NOT LIKE 'file:%'";

/** Whether a ledger source holds anything for one destination (or, with `d.id` unbound, for any). */
const HOLDS_DELIVERIES = (destination: string): string =>
  ['delivery_blocks', 'delivered_events', 'delivery_marks', 'delivery_horizons']
    .map((table) => `EXISTS (SELECT 1 FROM ${table} t WHERE t.source_id = s.id${destination})`)
    .join(' OR ');

export class SqliteConnectorMoves {
  private readonly stmt;

  constructor(
    private readonly db: Database.Database,
    private readonly leases: Pick<SqliteLeaseStore, 'requireHeld'>,
  ) {
    this.stmt = {
      deliveredTo: db.prepare<[string], { key: string }>(
        `SELECT s.key FROM sources s, destinations d WHERE d.key = ? AND ${CONNECTOR_SOURCE} AND (${HOLDS_DELIVERIES(' AND t.destination_id = d.id')}) ORDER BY s.key`,
      ),
      source: db.prepare<[string], { id: number; used: number }>(`SELECT s.id, (${HOLDS_DELIVERIES('')}) AS used FROM sources s WHERE s.key = ?`),
      usedFor: db.prepare<[number, string], { one: number }>(
        `SELECT 1 AS one FROM sources s, destinations d WHERE s.id = ? AND d.key = ? AND (${HOLDS_DELIVERIES(' AND t.destination_id = d.id')})`,
      ),
      dropSource: db.prepare('DELETE FROM sources WHERE id = ?'),
      renameSource: db.prepare('UPDATE sources SET key = ? WHERE id = ?'),
      watermark: db.prepare<[string], { watermark: string }>('SELECT watermark FROM watermarks WHERE connector = ?'),
      runs: db.prepare<[string], { runs: number; unfinished: number }>(
        "SELECT count(*) AS runs, count(CASE WHEN state IN ('running', 'pushing') THEN 1 END) AS unfinished FROM runs WHERE connector = ?",
      ),
      seen: db.prepare<[string], { seen: number }>('SELECT count(*) AS seen FROM seen_events WHERE connector = ?'),
      // The unknown users a resolver keeps (composition/unknown-users.ts) are a cache, not a history: they neither make a
      // name's state its own nor stop a move onto it, and do not move (a retired name's would never expire; a renamed
      // connector searches for its staff once again).
      sourceState: db.prepare<[string], { names: number }>(`SELECT count(*) AS names FROM source_state WHERE connector = ? AND name <> '${UNKNOWN_USERS}'`),
      dropCache: db.prepare(`DELETE FROM source_state WHERE connector = ? AND name = '${UNKNOWN_USERS}'`),
      moves: ['watermarks', 'runs', 'seen_events', 'source_state'].map((table) => db.prepare(`UPDATE ${table} SET connector = ? WHERE connector = ?`)),
      // The new name's runs refused for want of this move pulled and pushed nothing: kept, the newest of them would keep
      // its health "failing" until its next run.
      dropRefusedRuns: db.prepare(`DELETE FROM runs WHERE connector = ? AND state = 'failed' AND json_extract(error, '$.code') = 'BRG_ERR_CONNECTOR_STATE'`),
      // A block remembers the lease it was opened under: the new name's runs take its unattempted blocks as their own.
      moveBlockLeases: db.prepare('UPDATE delivery_blocks SET lease_name = ? WHERE lease_name = ?'),
    };
  }

  /** Connector names (retired ones as `retired:<name>:<time>`) with anything in the delivery ledger for `destination`. */
  connectorsDeliveredTo(destination: string): string[] {
    return this.stmt.deliveredTo.all(destination).map((row) => row.key);
  }

  /**
   * Moves all of `from` to `to` in one transaction, under both names' leases (checked inside it). Refuses when `from`
   * has a run in flight or nothing at all, when its deliveries went to another Purview job than `options.destination`,
   * or when `to` already has state of its own (its finished runs excepted). `options.files` moves what lives outside
   * the database, last, inside the transaction: if it throws, nothing moved.
   */
  move(from: string, to: string, leases: readonly LeaseRef[], options: ConnectorMoveOptions = {}): ConnectorMove {
    return this.db
      .transaction((): ConnectorMove => {
        for (const lease of leases) this.leases.requireHeld(lease, `moving the state of connector "${from}"`);
        const old = this.traces(from);
        if (old.unfinished > 0) {
          throw refused(
            `connector "${from}" has a run that did not finish (a crash or a stop left it to resume). Put "${from}" back in the config, run \`bridge sync --connector ${from}\` until it completes, then move it`,
            from,
            to,
          );
        }
        if (old.watermark === undefined && old.runs === 0 && old.seen === 0 && old.sourceState === 0 && old.source === undefined) {
          throw refused(`the state has nothing under connector "${from}"; check the name with \`bridge runs\``, from, to);
        }
        if (options.destination !== undefined && old.source?.used && !this.stmt.usedFor.get(old.source.id, options.destination)) {
          throw refused(
            `"${from}" pushed to another Purview job than "${to}" does (purview.tenantId, jobId or ingestionBase differ): its watermark would make "${to}" skip every event before it in its own job. Use \`bridge state retire ${from}\` instead`,
            from,
            to,
          );
        }
        const target = this.traces(to);
        const own = [
          target.watermark === undefined ? '' : `a watermark (${target.watermark})`,
          target.seen > 0 ? 'seen events' : '',
          target.sourceState > 0 ? 'a Bulk export checkpoint' : '',
          target.source?.used ? 'deliveries in the ledger' : '',
          target.unfinished > 0 ? 'an unfinished run' : '',
        ].filter((what) => what !== '');
        if (own.length > 0) {
          throw refused(`connector "${to}" already has state of its own (${own.join(', ')}); moving "${from}" onto it would mix two histories`, from, to);
        }
        // A run of the new name refused by the pipeline's guard may have made its (empty) ledger source already.
        if (target.source) this.stmt.dropSource.run(target.source.id);
        this.stmt.dropCache.run(to);
        this.stmt.dropCache.run(from);
        this.stmt.dropRefusedRuns.run(to);
        for (const statement of this.stmt.moves) statement.run(to, from);
        if (old.source) this.stmt.renameSource.run(to, old.source.id);
        this.stmt.moveBlockLeases.run(connectorLeaseName(to), connectorLeaseName(from));
        options.files?.();
        return {
          ...(old.watermark === undefined ? {} : { watermark: old.watermark }),
          runs: old.runs,
          seenEvents: old.seen,
          ledger: old.source?.used === 1,
        };
      })
      .immediate();
  }

  private traces(connector: string) {
    const runs = this.stmt.runs.get(connector);
    return {
      watermark: this.stmt.watermark.get(connector)?.watermark,
      runs: runs?.runs ?? 0,
      unfinished: runs?.unfinished ?? 0,
      seen: this.stmt.seen.get(connector)?.seen ?? 0,
      sourceState: this.stmt.sourceState.get(connector)?.names ?? 0,
      source: this.stmt.source.get(connector),
    };
  }
}

function refused(why: string, from: string, to: string): BridgeError {
  return new BridgeError('BRG_ERR_CONNECTOR_STATE', `Cannot move the state of connector "${from}" to "${to}": ${why}.`, { details: { from, to } });
}
