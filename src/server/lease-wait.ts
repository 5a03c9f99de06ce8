/**
 * A run another process held back: a `bridge sync` from cron or an operator's backfill, a second replica, or a holder
 * killed -9 on another host (or in another container) whose lease outlives it by up to state.leaseTtlSeconds. The
 * service's start-up resume, or a scheduled tick, refused for that lease used to wait for the next tick, a day on the
 * nightly schedule, with the connector showing "failing" or "late" meanwhile. It is started again once the lease ends:
 * released by its holder, or run out. Per connector, starts queue behind the one waiting (one of each trigger: a later
 * tick replaces an earlier one), so a tick that comes during the resume's wait runs after it, not never.
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

/** One start: `run` starts it (resolving once it has begun); `wanted` says whether it is still worth starting. */
interface QueuedStart {
  readonly trigger: string;
  readonly run: () => Promise<unknown>;
  readonly wanted: () => boolean;
}

export interface LeaseWaits {
  /**
   * Calls `start`; when another process's lease refuses it, calls it again once that lease ends, for as long as
   * `stillWanted` says so. While a start of `connector` waits, this one queues behind it instead.
   */
  start(connector: string, trigger: string, start: () => Promise<unknown>, stillWanted?: () => boolean): void;
}

export function createLeaseWaits(deps: LeaseWaitDeps): LeaseWaits {
  const queues = new Map<string, QueuedStart[]>();
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
  /** Starts the queue's head until none is left; a head refused for a lease waits for it, then goes again if wanted. */
  const drain = async (connector: string, queue: QueuedStart[]): Promise<void> => {
    for (let head = queue[0]; head !== undefined && !deps.signal.aborted; head = queue[0]) {
      let held = false;
      try {
        await head.run();
      } catch (error) {
        // The runner logged the refusal (and counted a scheduled one as skipped); any other failure ends this start.
        held = heldElsewhere(error);
      }
      if (held) {
        if (!(await leaseEnds(connector))) return;
        if (head.wanted()) {
          deps.logger.info({ connector, trigger: head.trigger }, 'the process that held the connector let go: starting the run it held back');
          continue;
        }
      }
      queue.shift();
    }
  };
  return {
    start(connector, trigger, run, wanted = () => true) {
      const queued = queues.get(connector);
      if (queued !== undefined) {
        const same = queued.findIndex((entry, index) => index > 0 && entry.trigger === trigger);
        if (same >= 0) queued.splice(same, 1);
        queued.push({ trigger, run, wanted });
        deps.logger.info({ connector, trigger }, 'the run starts after the one before it, which another process holds back');
        return;
      }
      const queue: QueuedStart[] = [{ trigger, run, wanted }];
      queues.set(connector, queue);
      drain(connector, queue)
        .catch((error: unknown) => deps.logger.error({ connector, trigger, err: error }, 'waiting for the connector failed; the next tick tries again'))
        .finally(() => queues.delete(connector));
    },
  };
}

/** Refused for a lease another process holds (lease.ts names its expiry), not for a run of this process. */
function heldElsewhere(error: unknown): boolean {
  return error instanceof BridgeError && error.code === 'BRG_ERR_RUN_IN_PROGRESS' && typeof error.details['expires'] === 'string';
}
