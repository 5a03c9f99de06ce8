/**
 * A run another process held back: a `bridge sync` from cron or an operator's backfill, a second replica, or a holder
 * killed -9 on another host (or in another container) whose lease outlives it by up to state.leaseTtlSeconds. The
 * service's start-up resume, or a scheduled tick, refused for that lease used to wait for the next tick, a day on the
 * nightly schedule, with the connector showing "failing" or "late" meanwhile. It is started again once the lease ends:
 * released by its holder, or run out. One wait per connector; a tick that comes while one waits adds nothing to it.
 */
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';

/** How often a held lease is looked at again before it runs out: a holder that finishes releases it early. */
const POLL_MS = 30_000;

export interface LeaseWaitDeps {
  /** The connector's lease as the state store holds it now, or undefined when none is held. */
  readonly readLease: (connector: string) => { readonly expiresMs: number } | undefined;
  readonly clock: Clock;
  /** Aborted when the service closes: every wait ends. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

export interface LeaseWaits {
  /**
   * Calls `start`; when another process's lease refuses it, calls it again once that lease ends, for as long as
   * `stillWanted` says so. No-op while a wait for `connector` is already going.
   */
  start(connector: string, trigger: string, start: () => Promise<unknown>, stillWanted?: () => boolean): void;
  isWaiting(connector: string): boolean;
}

export function createLeaseWaits(deps: LeaseWaitDeps): LeaseWaits {
  const waiting = new Set<string>();
  const leaseEnds = async (connector: string): Promise<boolean> => {
    for (;;) {
      const lease = deps.readLease(connector);
      const now = deps.clock.now();
      if (lease === undefined || lease.expiresMs <= now) return true;
      try {
        await deps.clock.sleep(Math.min(lease.expiresMs - now + 1_000, POLL_MS), deps.signal);
      } catch {
        return false; // the service closes
      }
    }
  };
  const run = async (connector: string, trigger: string, start: () => Promise<unknown>, stillWanted: () => boolean): Promise<void> => {
    while (!deps.signal.aborted) {
      try {
        await start();
        return;
      } catch (error) {
        // The runner logged the refusal (and counted a scheduled one as skipped); any other failure ends here too.
        if (!heldElsewhere(error)) return;
      }
      waiting.add(connector);
      try {
        if (!(await leaseEnds(connector)) || !stillWanted()) return;
      } finally {
        waiting.delete(connector);
      }
      deps.logger.info({ connector, trigger }, 'the process that held the connector let go: starting the run it held back');
    }
  };
  return {
    start(connector, trigger, start, stillWanted = () => true) {
      if (waiting.has(connector)) return;
      void run(connector, trigger, start, stillWanted);
    },
    isWaiting: (connector) => waiting.has(connector),
  };
}

/** Refused for a lease another process holds (lease.ts names its expiry), not for a run of this process. */
function heldElsewhere(error: unknown): boolean {
  return error instanceof BridgeError && error.code === 'BRG_ERR_RUN_IN_PROGRESS' && typeof error.details['expires'] === 'string';
}
