/**
 * This process, as the composition root sees it: its identity as a lease holder (host, pid), whether another holder
 * on this host is still alive, and the wall-clock heartbeat that renews a lease. The only place the lease code meets
 * `process` and timers.
 */
import { hostname } from 'node:os';
import type { LeasePolicy } from '../sync/lease.js';

/** This process, as a lease holder; a holder on this host whose process is gone is stale at once. */
export function leasePolicy(ttlMs: number, command: string): LeasePolicy {
  const host = hostname();
  return {
    ttlMs,
    identity: { host, pid: process.pid, command },
    isStale: (holder) => holder.host === host && holder.pid !== process.pid && !processAlive(holder.pid),
    every: (ms, renew) => {
      const timer = setInterval(renew, ms);
      timer.unref(); // the heartbeat alone never keeps the process alive
      return () => clearInterval(timer);
    },
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
