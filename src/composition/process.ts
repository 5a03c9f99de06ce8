/**
 * This process, as the composition root sees it: its identity as a lease holder (host, PID namespace, pid), whether
 * another holder on this host is still alive (or an earlier process that had this one's pid), and the wall-clock
 * heartbeat that renews a lease. The only place the lease code meets `process` and timers.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { heldByThisProcess, type LeasePolicy } from '../sync/lease.js';
import type { LeaseHolder } from '../sync/state/index.js';

/** This process, as a lease holder; a holder on this host whose process is gone is stale at once. */
export function leasePolicy(ttlMs: number, command: string): LeasePolicy {
  return {
    ttlMs,
    identity: { host: hostname(), pid: process.pid, ...pidNamespaceField(), command },
    isStale: holderIsGone,
    every: (ms, renew) => {
      const timer = setInterval(renew, ms);
      timer.unref(); // the heartbeat alone never keeps the process alive
      return () => clearInterval(timer);
    },
  };
}

/**
 * A lease holder on this host whose process no longer runs (killed -9, OOM-killed): its lease is let go at once.
 * "This host" is the host name and the PID namespace of this boot: containers that share a host name (host networking,
 * a shared network namespace) each number their processes from 1, so a pid of another container's bridge says nothing
 * here; and two machines given one host name have the same initial namespace number, told apart by their kernels' boot
 * ids. A holder recorded without a namespace (where /proc could not be read, or by a build before this field) counts as
 * ours only where we have none either; otherwise it is let go when its lease expires.
 *
 * A holder with this process's pid is this process only while it holds that lease (its id, src/sync/lease.ts): any
 * other is an earlier process that had the same pid, e.g. the bridge as pid 1 of a container that was killed -9 and
 * started again (same host name, same boot, maybe the same namespace inode) well within the lease's TTL.
 */
export function holderIsGone(holder: Pick<LeaseHolder, 'id' | 'host' | 'pid' | 'pidNamespace'>): boolean {
  if (holder.host !== hostname() || holder.pidNamespace !== pidNamespace()) return false;
  if (holder.pid === process.pid) return !heldByThisProcess(holder.id);
  return !processAlive(holder.pid);
}

let ownPidNamespace: { value: string | undefined } | undefined;

/**
 * This process's PID namespace in this boot of its kernel: `<inode>-<boot id>`, the inode number of Linux's
 * `/proc/self/ns/pid` link ("pid:[4026531836]", the same number for the initial namespace of every machine, and reused
 * once a namespace is gone) and `/proc/sys/kernel/random/boot_id`; the inode alone where the boot id cannot be read;
 * undefined where there is no such link (macOS, Windows, a /proc not mounted).
 */
export function pidNamespace(): string | undefined {
  if (ownPidNamespace === undefined) {
    const inode = readProc(() => /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1]);
    const boot = readProc(() => /^[0-9a-f-]{36}$/.exec(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim())?.[0]);
    ownPidNamespace = { value: inode === undefined ? undefined : boot === undefined ? inode : `${inode}-${boot}` };
  }
  return ownPidNamespace.value;
}

function readProc(read: () => string | undefined): string | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

function pidNamespaceField(): { pidNamespace?: string } {
  const value = pidNamespace();
  return value === undefined ? {} : { pidNamespace: value };
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
