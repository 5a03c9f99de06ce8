/** The CLI's exit codes for usage mistakes, through the real binary: bad input is 2 (README's table), help and version 0. */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const bridge = (...args: string[]) => spawnSync(process.execPath, [resolve(root, 'bin/bridge.js'), ...args], { cwd: root, encoding: 'utf8' });

describe('usage mistakes', () => {
  it('exit 2 for an unknown option, a missing required option or an unknown command, naming it', () => {
    const unknown = bridge('sync', '--sinse', '2026-11-01');
    expect([unknown.status, unknown.stderr.trim().split('\n')[0]]).toEqual([2, "error: unknown option '--sinse'"]);
    const missing = bridge('push', '--tenant-id', 't');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("error: required option '--app-id <id>' not specified");
    expect(bridge('synk').status).toBe(2);
  });

  it('exit 0 for --help and --version', () => {
    expect(bridge('--version')).toMatchObject({ status: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
    expect(bridge('sync', '--help').status).toBe(0);
  });
});
