/**
 * This process, as the composition root sees it: its identity as a lease holder (host, pid), whether another holder
 * on this host is still alive, and the wall-clock heartbeat that renews a lease. The only place the lease code meets
 * `process` and timers.
 */
import { hostname } from 'node:os';
import type { LeasePolicy } from '../sync/lease.js';
import type { LeaseHolder } from '../sync/state/index.js';

/** This process, as a lease holder; a holder on this host whose process is gone is stale at once. */
export function leasePolicy(ttlMs: number, command: string): LeasePolicy {
  return {
    ttlMs,
    identity: { host: hostname(), pid: process.pid, command },
    isStale: holderIsGone,
    every: (ms, renew) => {
      const timer = setInterval(renew, ms);
      timer.unref(); // the heartbeat alone never keeps the process alive
      return () => clearInterval(timer);
    },
  };
}

/** A lease holder on this host whose process no longer runs (killed -9, OOM-killed): its lease is let go at once. */
export function holderIsGone(holder: LeaseHolder): boolean {
  return holder.host === hostname() && holder.pid !== process.pid && !processAlive(holder.pid);
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
