/**
 * This process as a lease holder (src/composition/process.ts): a holder of this host whose process is gone is let go at
 * once, and only such a holder. "This host" is the host name and the PID namespace: a container sharing the host name
 * (host networking, a shared network namespace) numbers its processes from 1, so its pids say nothing here.
 */
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { holderIsGone, leasePolicy, pidNamespace } from '../../src/composition/process.js';

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
    expect(holderIsGone({ host, pidNamespace: ns, pid: dead })).toBe(true);
  });

  it('keeps a live holder, this process, and holders of other hosts', () => {
    expect(holderIsGone({ host, pidNamespace: ns, pid: process.ppid })).toBe(false);
    expect(holderIsGone({ host, pidNamespace: ns, pid: process.pid })).toBe(false);
    expect(holderIsGone({ host: `${host}-other`, pidNamespace: ns, pid: dead })).toBe(false);
  });

  it('keeps a holder of another PID namespace on this host name, whatever its pid is here', () => {
    expect(holderIsGone({ host, pidNamespace: '1', pid: dead })).toBe(false);
  });

  it('keeps a holder of another machine given this host name: same initial namespace number, another boot id', () => {
    const [inode] = ns.split('-');
    expect(holderIsGone({ host, pidNamespace: `${inode}-00000000-0000-4000-8000-000000000000`, pid: dead })).toBe(false);
  });

  it('keeps a holder recorded without a namespace (no /proc there, or a build before the field) until its lease expires', () => {
    expect(holderIsGone({ host, pid: dead })).toBe(false);
  });
});
