/**
 * `bridge` as a real child process (bin/bridge.js), for tests of what only processes show: signals, kill -9, two
 * processes on one state. Output is collected as it arrives so a test can wait for a line before the process ends.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../..');

export interface BridgeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface BridgeProcess {
  done: Promise<BridgeExit>;
  kill: (signal: NodeJS.Signals) => void;
  stdout: () => string;
  stderr: () => string;
  pid: number | undefined;
}

/** Starts `bridge <args>` with the test's environment plus `env`, logging at warn unless `env` says otherwise. */
export function spawnBridge(args: readonly string[], env: Record<string, string> = {}, onStdout?: (text: string) => void): BridgeProcess {
  const child = spawn(process.execPath, [resolve(repoRoot, 'bin/bridge.js'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, BRIDGE__logLevel: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    onStdout?.(stdout);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<BridgeExit>((r) => child.on('close', (code, signal) => r({ code, signal, stdout, stderr })));
  return { done, kill: (signal) => child.kill(signal), stdout: () => stdout, stderr: () => stderr, pid: child.pid };
}

/** Polls `probe` until it returns a value; fails naming `what` after `ms`. */
export async function until<T>(what: string, probe: () => T | undefined, ms = 30_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
