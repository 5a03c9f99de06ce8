/**
 * This process as a lease holder (src/composition/process.ts): a holder of this host whose process is gone is let go at
 * once, and only such a holder. "This host" is the host name and the PID namespace: a container sharing the host name
 * (host networking, a shared network namespace) numbers its processes from 1, so its pids say nothing here. A holder
 * with this process's pid is this process only while it holds that lease: otherwise it is an earlier process that had
 * the same pid (pid 1 of a container started again after a kill -9).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { holderIsGone, leasePolicy, pidNamespace } from '../../src/composition/process.js';
import { uuidSource } from '../../src/ids.js';
import { holdLease } from '../../src/sync/lease.js';
import { openStateStore, type StateStore } from '../../src/sync/state/index.js';

const dead = spawnSync(process.execPath, ['-e', '']).pid as number; // exited: as a holder killed with -9
const host = hostname();

describe('holderIsGone', () => {
  // Linux (where the bridge runs in production and CI): the first test fails if it cannot be read.
  const ns = pidNamespace() ?? 'unreadable';

  it('reads the PID namespace on Linux, and a policy carries it in its identity', () => {
    expect(ns).toMatch(/^\d+-[0-9a-f-]{36}$/); // the namespace's inode and the kernel's boot id
    expect(leasePolicy(60_000, 'bridge sync').identity).toEqual({ host, pid: process.pid, pidNamespace: ns, command: 'bridge sync' });
  });

  it('lets go a holder of this host and namespace whose process is gone', () => {
    expect(holderIsGone({ id: 'killed', host, pidNamespace: ns, pid: dead })).toBe(true);
  });

  it('keeps a live holder and holders of other hosts', () => {
    expect(holderIsGone({ id: 'parent', host, pidNamespace: ns, pid: process.ppid })).toBe(false);
    expect(holderIsGone({ id: 'elsewhere', host: `${host}-other`, pidNamespace: ns, pid: dead })).toBe(false);
    expect(holderIsGone({ id: 'elsewhere', host: `${host}-other`, pidNamespace: ns, pid: process.pid })).toBe(false);
  });

  it('keeps a holder of another PID namespace on this host name, whatever its pid is here', () => {
    expect(holderIsGone({ id: 'other-ns', host, pidNamespace: '1', pid: dead })).toBe(false);
    expect(holderIsGone({ id: 'other-ns', host, pidNamespace: '1', pid: process.pid })).toBe(false);
  });

  it('keeps a holder of another machine given this host name: same initial namespace number, another boot id', () => {
    const [inode] = ns.split('-');
    expect(holderIsGone({ id: 'other-boot', host, pidNamespace: `${inode}-00000000-0000-4000-8000-000000000000`, pid: dead })).toBe(false);
  });

  it('keeps a holder recorded without a namespace (no /proc there, or a build before the field) until its lease expires', () => {
    expect(holderIsGone({ id: 'old-build', host, pid: dead })).toBe(false);
    expect(holderIsGone({ id: 'old-build', host, pid: process.pid })).toBe(false);
  });
});

describe("holderIsGone, for a holder with this process's pid", () => {
  const ns = pidNamespace();
  const here = { host, pid: process.pid, ...(ns === undefined ? {} : { pidNamespace: ns }) };
  const stores: StateStore[] = [];
  afterEach(() => {
    for (const store of stores.splice(0)) store.close();
  });
  const store = (): StateStore => {
    const opened = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-process-')), systemClock);
    stores.push(opened);
    return opened;
  };

  it('lets go one that is not a lease of this process: an earlier process that had this pid (pid 1 of a restarted container)', () => {
    expect(holderIsGone({ ...here, id: 'a-dead-incarnation' })).toBe(true);
  });

  it('keeps the holder of a lease this process holds, until it is released; another take of it here is refused', () => {
    const s = store();
    const policy = leasePolicy(600_000, 'bridge serve (schedule)');
    const lease = holdLease(s, 'connector:main', policy, systemClock, uuidSource, 'A sync of connector "main"');
    const holder = s.readLease('connector:main')?.holder;
    expect(holder).toMatchObject({ ...here, id: lease.ref.holderId });
    expect(holderIsGone(holder as NonNullable<typeof holder>)).toBe(false);
    expect(policy.isStale(holder as NonNullable<typeof holder>)).toBe(false);
    expect(() => holdLease(s, 'connector:main', policy, systemClock, uuidSource, 'A sync of connector "main"')).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS', message: expect.stringContaining(`(pid ${process.pid} on ${host}`) }),
    );
    expect(s.readLease('connector:main')?.holder.id).toBe(lease.ref.holderId);
    lease.release();
    expect(holderIsGone(holder as NonNullable<typeof holder>)).toBe(true); // no longer this process's
  });

  it("takes a predecessor's unexpired lease at once, and only that one", () => {
    const s = store();
    const since = new Date().toISOString();
    s.acquireLease('connector:main', { ...here, id: 'a-dead-incarnation', command: 'bridge serve', since }, 600_000, () => false);
    s.acquireLease('connector:busy', { ...here, pid: process.ppid, id: 'a-live-process', command: 'bridge sync', since }, 600_000, () => false);
    const policy = leasePolicy(600_000, 'bridge serve (resume)');
    const lease = holdLease(s, 'connector:main', policy, systemClock, uuidSource, 'A sync of connector "main"');
    expect(s.readLease('connector:main')?.holder.id).toBe(lease.ref.holderId);
    expect(() => holdLease(s, 'connector:busy', policy, systemClock, uuidSource, 'A sync of connector "busy"')).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_RUN_IN_PROGRESS' }),
    );
    lease.release();
  });
});
