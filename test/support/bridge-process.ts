/**
 * `bridge` as a real child process (bin/bridge.js), for tests of what only processes show: signals, kill -9, two
 * processes on one state. Output is collected as it arrives so a test can wait for a line before the process ends.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { hashApiToken } from '../../src/server/auth.js';

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
  /** Its standard input, left open, when spawned with `{ stdin: 'pipe' }` (else it reads none). */
  stdin?: Writable;
}

/**
 * Starts `bridge <args>` with the test's environment plus `env`, logging at warn unless `env` says otherwise.
 * `under`: a command that runs it (e.g. `unshare --pid --fork`), given node and its arguments after its own.
 * `options.stdin: 'pipe'` keeps its standard input open (a command waiting on it) for the test to write or end.
 */
export function spawnBridge(
  args: readonly string[],
  env: Record<string, string> = {},
  onStdout?: (text: string) => void,
  under: readonly string[] = [],
  options: { stdin?: 'ignore' | 'pipe' } = {},
): BridgeProcess {
  const command = [...under, process.execPath, resolve(repoRoot, 'bin/bridge.js'), ...args];
  const spawnOptions = { cwd: repoRoot, env: { ...process.env, BRIDGE__logLevel: 'warn', ...env } };
  const child =
    options.stdin === 'pipe'
      ? spawn(command[0] as string, command.slice(1), { ...spawnOptions, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(command[0] as string, command.slice(1), { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    onStdout?.(stdout);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<BridgeExit>((r) => child.on('close', (code, signal) => r({ code, signal, stdout, stderr })));
  return {
    done,
    kill: (signal) => child.kill(signal),
    stdout: () => stdout,
    stderr: () => stderr,
    pid: child.pid,
    ...(child.stdin ? { stdin: child.stdin } : {}),
  };
}

/** `bridge serve --no-schedules` on an ephemeral loopback port accepting one API token; resolves once it listens. */
export async function spawnServe(
  configPath: string,
  token: string,
  env: Record<string, string> = {},
  options: { schedules?: boolean } = {},
): Promise<{ serve: BridgeProcess; url: string }> {
  const serve = spawnBridge(['serve', '--config', configPath, ...(options.schedules === true ? [] : ['--no-schedules'])], {
    BRIDGE__server__port: '0',
    BRIDGE__server__apiTokenSha256: JSON.stringify([hashApiToken(token)]),
    ...env,
  });
  const url = await until('listening', () => /listening on (\S+)/.exec(serve.stdout())?.[1]);
  return { serve, url };
}

/** The service's on-demand sync of one connector over a window; the HTTP status it answered. */
export async function triggerSync(url: string, token: string, connector: string, window: { since: string; until: string }): Promise<number> {
  const response = await fetch(`${url}/v1/connectors/${connector}/syncs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(window),
  });
  await response.body?.cancel();
  return response.status;
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
