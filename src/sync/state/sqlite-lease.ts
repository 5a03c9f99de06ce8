/**
 * Leases in SQLite: one holder per name (one run per connector) across processes and machines sharing the state.
 * A lease expires unless its holder renews it, so a crashed holder blocks others for at most its time to live; a
 * holder on the same host whose process is gone is taken over at once.
 */
import type Database from 'better-sqlite3';
import type { Clock } from '../../clock.js';
import { BridgeError } from '../../errors.js';
import type { LeaseRef } from '../../purview/ledger.js';
import { refuseNewerSchema } from './schema.js';
import type { LeaseHolder, LeaseOutcome, LeaseStore } from './types.js';

export class SqliteLeaseStore implements LeaseStore {
  private readonly stmt;

  constructor(
    private readonly db: Database.Database,
    private readonly clock: Clock,
  ) {
    this.stmt = {
      get: db.prepare<[string], { owner_id: string; owner: string; expires_ms: number }>('SELECT owner_id, owner, expires_ms FROM leases WHERE name = ?'),
      put: db.prepare(
        'INSERT INTO leases (name, owner_id, owner, expires_ms) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner_id = excluded.owner_id, owner = excluded.owner, expires_ms = excluded.expires_ms',
      ),
      renew: db.prepare('UPDATE leases SET expires_ms = ? WHERE name = ? AND owner_id = ?'),
      release: db.prepare('DELETE FROM leases WHERE name = ? AND owner_id = ?'),
    };
  }

  /**
   * Every run, push and state command starts here, so this is where a process that opened the store long ago (a service
   * between runs holds no lease, so a newer bridge's upgrade is not refused) finds the schema changed under it: refused
   * with BRG_ERR_STATE_SCHEMA, read under the write lock, before it holds anything.
   */
  acquireLease(name: string, holder: LeaseHolder, ttlMs: number, isStale: (current: LeaseHolder) => boolean): LeaseOutcome {
    return this.db
      .transaction((): LeaseOutcome => {
        refuseNewerSchema(this.db, true);
        const now = this.clock.now();
        const row = this.stmt.get.get(name);
        if (row && row.owner_id !== holder.id && row.expires_ms > now) {
          const current = JSON.parse(row.owner) as LeaseHolder;
          if (!isStale(current)) return { acquired: false, holder: current, expiresMs: row.expires_ms };
        }
        this.stmt.put.run(name, holder.id, JSON.stringify(holder), now + ttlMs);
        return { acquired: true, ...(row && row.owner_id !== holder.id ? { tookOverFrom: JSON.parse(row.owner) as LeaseHolder } : {}) };
      })
      .immediate();
  }

  renewLease(name: string, holderId: string, ttlMs: number): boolean {
    return this.stmt.renew.run(this.clock.now() + ttlMs, name, holderId).changes === 1;
  }

  releaseLease(name: string, holderId: string): void {
    this.stmt.release.run(name, holderId);
  }

  /**
   * Throws BRG_ERR_RUN_IN_PROGRESS unless `lease` is held by its holder and unexpired now (the store's clock): a writer
   * that lost its lease must stop before `doing`, whatever its heartbeat has noticed so far. Called inside the write's
   * transaction, which orders the check against another process taking the lease over. A schema a newer bridge
   * upgraded meanwhile (after this holder's lease lapsed while it was paused) stops it too (BRG_ERR_STATE_SCHEMA).
   */
  requireHeld(lease: LeaseRef, doing: string): void {
    refuseNewerSchema(this.db, true);
    const row = this.stmt.get.get(lease.name);
    if (row && row.owner_id === lease.holderId && row.expires_ms > this.clock.now()) return;
    let why: string;
    if (!row) why = 'it was released';
    else if (row.owner_id !== lease.holderId) {
      const holder = JSON.parse(row.owner) as LeaseHolder;
      why = `${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.since}) holds it now`;
    } else why = `it expired at ${new Date(row.expires_ms).toISOString()} without a renewal`;
    throw new BridgeError(
      'BRG_ERR_RUN_IN_PROGRESS',
      `This run lost its lease "${lease.name}" (${why}); it stopped before ${doing} so two never push at once. ` +
        'It sends nothing more; the run that holds the lease now, or the next run, sends what Purview has not acknowledged.',
      { details: { lease: lease.name } },
    );
  }

  readLease(name: string): { holder: LeaseHolder; expiresMs: number } | undefined {
    const row = this.stmt.get.get(name);
    return row ? { holder: JSON.parse(row.owner) as LeaseHolder, expiresMs: row.expires_ms } : undefined;
  }
}
