import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { backendFor, freshSandboxState, MEMORY_BACKEND_MAX_EVENTS } from '../../src/cli/commands/sandbox.js';

it('loads small data sets into the searchable memory backend and serves larger ones lazily, unless told which', () => {
  const events = (n: number) => ({ dir: '/tmp/x', data: { events: n } });
  expect(MEMORY_BACKEND_MAX_EVENTS).toBe(10_000);
  expect(backendFor(undefined, events(10_000))).toBe('memory');
  // 50,000 events outgrew the CLI's 256 MB heap in the memory backend (an out-of-memory crash, not an error).
  expect(backendFor(undefined, events(10_001))).toBe('generated');
  expect(backendFor(undefined, events(50_000))).toBe('generated');
  expect(backendFor('memory', events(50_000))).toBe('memory');
  expect(backendFor('generated', events(10))).toBe('generated');
});

it("empties only a state directory a sandbox marked as its own, and refuses a bridge's real one", () => {
  const root = mkdtempSync(join(tmpdir(), 'bridge-sandbox-dir-'));
  // `bridge sandbox --dir .` in a deployment's folder: its state/ is the deployment's.
  mkdirSync(join(root, 'state'));
  writeFileSync(join(root, 'state', 'bridge.sqlite'), 'the ledger');
  writeFileSync(join(root, 'sandbox-ca.pem'), 'an earlier sandbox start');
  expect(() => freshSandboxState(root)).toThrow(/is not a sandbox's state directory/);
  expect(readFileSync(join(root, 'state', 'bridge.sqlite'), 'utf8')).toBe('the ledger');
  // Nor one that is there but empty (a deployment before its first run): it is not the sandbox's to mark.
  const empty = mkdtempSync(join(tmpdir(), 'bridge-sandbox-dir-'));
  mkdirSync(join(empty, 'state'));
  expect(() => freshSandboxState(empty)).toThrow(/is not a sandbox's state directory/);
  expect(readdirSync(join(empty, 'state'))).toEqual([]);
  // A new directory: made and marked, nothing removed; the next start removes what runs left there.
  const own = join(root, 'sandbox');
  expect(freshSandboxState(own)).toBeUndefined();
  writeFileSync(join(own, 'state', 'bridge.sqlite'), 'a sandbox run');
  expect(freshSandboxState(own)).toBe(join(own, 'state'));
  expect(existsSync(join(own, 'state', 'bridge.sqlite'))).toBe(false);
  expect(readdirSync(join(own, 'state'))).toEqual(['.sandbox-state']);
});

it('takes over the state an older sandbox (before the marker) left in the default directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'bridge-sandbox-legacy-'));
  const cwd = process.cwd();
  process.chdir(root);
  try {
    mkdirSync(join('state', 'sandbox', 'state'), { recursive: true });
    writeFileSync(join('state', 'sandbox', 'sandbox-ca.pem'), 'an older start');
    writeFileSync(join('state', 'sandbox', 'state', 'bridge.sqlite'), 'an older sandbox run');
    expect(freshSandboxState(join('state', 'sandbox'))).toBe(join('state', 'sandbox', 'state'));
    expect(readdirSync(join('state', 'sandbox', 'state'))).toEqual(['.sandbox-state']);
  } finally {
    process.chdir(cwd);
  }
});
