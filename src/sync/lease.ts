/**
 * One run per connector at a time across processes and machines sharing the state: the run holds a lease in the
 * state store, renews it while it works, and releases it when it ends. A holder that crashed blocks others for at
 * most the lease's time to live (at once when it was a process on this host that is gone). A run that loses its
 * lease (paused longer than the TTL and taken over) stops at once rather than race the new holder. The holder ids of
 * the leases this process holds are known here (heldByThisProcess): a lease naming this process's pid is not this
 * process's unless it is one of them.
 */
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import type { IdSource } from '../ids.js';
import type { LeaseRef } from '../purview/ledger.js';
import type { LeaseHolder, LeaseStore } from './state/index.js';

export interface LeasePolicy {
  /** How long a lease lasts without renewal. */
  readonly ttlMs: number;
  /** Who we are (host, pid, command), for the message another process prints. */
  readonly identity: Omit<LeaseHolder, 'id' | 'since'>;
  /**
   * True when a holder is certainly gone (e.g. a process of this host that no longer exists, or one that had this
   * process's pid before it: see heldByThisProcess).
   */
  readonly isStale: (holder: LeaseHolder) => boolean;
  /**
   * Runs `renew` every `ms` of wall time until the returned function is called. A heartbeat is wall time by nature
   * (the holder must renew before others see it expire), so it is not driven by the run's clock, whose sleeps tests
   * may fast-forward.
   */
  readonly every: (ms: number, renew: () => void) => () => void;
}

export interface HeldLease {
  /**
   * Which lease, held by whom: given to the delivery ledger with every block (DeliveryTarget.lease), which refuses to
   * claim or send once it is not ours — the heartbeat alone notices a loss up to a beat late.
   */
  readonly ref: LeaseRef;
  /** Aborted when the lease was lost to another holder. */
  readonly lost: AbortSignal;
  release(): void;
}

export function connectorLeaseName(connector: string): string {
  return `connector:${connector}`;
}

/** One push of one file's content to one destination at a time (`bridge push` and the drop folder alike). */
export function fileLeaseName(destination: string, sha256: string): string {
  return `push:${destination}:${sha256}`;
}

/**
 * The holder ids of the leases this process holds, from their taking to their release (or their loss to another
 * holder). Process-wide on purpose: whichever policy took a lease, it is this process's.
 */
const heldHere = new Set<string>();

/**
 * Whether `holderId` is the holder of a lease this process holds now. A lease naming this host, PID namespace and pid
 * is this process's only then; otherwise an earlier process had the same pid and is gone: a container restarted after
 * a kill -9 or an OOM kill runs the bridge as pid 1 again, as the one that died did.
 */
export function heldByThisProcess(holderId: string): boolean {
  return heldHere.has(holderId);
}

/** How long a renewal can wait on a busy state database before it fails (sqlite.ts: busy_timeout). */
const BUSY_WAIT_MS = 5_000;

/** Takes the lease or throws BRG_ERR_RUN_IN_PROGRESS naming the holder; renews it every quarter of its TTL. */
export function holdLease(store: LeaseStore, name: string, policy: LeasePolicy, clock: Clock, newId: IdSource, what: string): HeldLease {
  const holder: LeaseHolder = { ...policy.identity, id: newId(), since: new Date(clock.now()).toISOString() };
  const outcome = store.acquireLease(name, holder, policy.ttlMs, policy.isStale);
  if (!outcome.acquired) throw inProgress(what, outcome.holder, outcome.expiresMs);
  heldHere.add(holder.id);
  const lost = new AbortController();
  // A quarter: a renewal that fails once (one beat, plus up to the database's 5 s busy wait) still leaves two beats.
  const beatMs = Math.max(1, Math.floor(policy.ttlMs / 4));
  let renewedMs = clock.now();
  const stop = policy.every(beatMs, () => {
    if (lost.signal.aborted) return;
    // The store dates the new expiry from before its statement runs (and a busy database may hold the statement for
    // seconds), so the renewal counts from the start of the attempt.
    const attemptMs = clock.now();
    let renewed: boolean;
    try {
      renewed = store.renewLease(name, holder.id, policy.ttlMs);
    } catch (error) {
      // The state database busy (another process writing a long transaction): try again at the next beat while that
      // beat, and its own busy wait, still land inside the lease with a whole beat to spare for a late timer. Past
      // that point another process may take the lease before we could renew it, so the run is given up now, while it
      // is still ours (with a TTL under 40 s, at the first renewal that waits out the busy timeout). A throw here would end the process from a timer.
      const sinceMs = clock.now() - renewedMs;
      if (policy.ttlMs - sinceMs >= 2 * beatMs + BUSY_WAIT_MS) return;
      const reason = error instanceof Error ? error.message : String(error);
      lost.abort(
        new BridgeError(
          'BRG_ERR_STATE',
          `The lease of ${what} could not be renewed for ${Math.round(sinceMs / 1000)} s and would lapse (after ${Math.round(policy.ttlMs / 1000)} s) before the next try (${reason}); ` +
            'this run stopped so two never push at once. Find what holds the state database busy, then run it again.',
          { cause: error },
        ),
      );
      return;
    }
    if (renewed) {
      renewedMs = attemptMs;
      return;
    }
    heldHere.delete(holder.id); // another holder's now
    lost.abort(
      new BridgeError(
        'BRG_ERR_RUN_IN_PROGRESS',
        `The lease of ${what} was taken over by another process while this run was paused; this run stopped so two never push at once.`,
      ),
    );
  });
  return {
    ref: { name, holderId: holder.id },
    lost: lost.signal,
    release() {
      stop();
      store.releaseLease(name, holder.id);
      // Only once the store let it go: a lease whose release failed stays this process's until it expires.
      heldHere.delete(holder.id);
    },
  };
}

function inProgress(what: string, holder: LeaseHolder, expiresMs: number): BridgeError {
  return new BridgeError(
    'BRG_ERR_RUN_IN_PROGRESS',
    `${what} is already running: ${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.since}). Wait for it to finish; ` +
      `if that process is gone on another machine or in another container, its lease expires at ${new Date(expiresMs).toISOString()}.`,
    { details: { host: holder.host, pid: holder.pid, expires: new Date(expiresMs).toISOString() } },
  );
}
