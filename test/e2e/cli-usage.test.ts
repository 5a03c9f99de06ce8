/** The CLI's exit codes for usage mistakes, through the real binary: bad input is 2 (README's table), help and version 0. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const bridge = (...args: string[]) => spawnSync(process.execPath, [resolve(root, 'bin/bridge.js'), ...args], { cwd: root, encoding: 'utf8' });

describe('usage mistakes', () => {
  it('exit 2 for an unknown option, a missing required option or an unknown command, naming it', () => {
    const unknown = bridge('sync', '--sinse', '2026-11-01');
    expect([unknown.status, unknown.stderr.trim().split('\n')[0]]).toEqual([2, "error: unknown option '--sinse'"]);
    // …and ends, as every failure does, with its stable code and what to do.
    expect(unknown.stderr.trim().split('\n').slice(-2)).toEqual([
      'error BRG_ERR_INPUT_INVALID: the command line was refused (unknown option)',
      expect.stringMatching(/^ {2}what to do: .*`bridge <command> --help` lists its flags\.$/),
    ]);
    const missing = bridge('push', '--tenant-id', 't');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("error: required option '--app-id <id>' not specified");
    expect(bridge('synk').status).toBe(2);
    // Help shown for a missing subcommand is a usage mistake too (a cron line that "succeeds" would hide it).
    for (const args of [[], ['state'], ['keys']]) expect(bridge(...args).status, args.join(' ')).toBe(2);
  });

  it('ends quietly, exit 0, when the reader has gone (| head)', async () => {
    const keysDir = join(mkdtempSync(join(tmpdir(), 'bridge-epipe-')), 'keys');
    expect(bridge('keys', 'generate', '--keys-dir', keysDir, '--alg', 'ES384').status).toBe(0);
    const child = spawn(process.execPath, [resolve(root, 'bin/bridge.js'), 'keys', 'jwks', '--keys-dir', keysDir], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The reader is gone before the first line: every write meets a closed pipe (EPIPE).
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', (exit) => r(exit)));
    expect(code, stderr).toBe(0);
    expect(stderr).not.toContain('EPIPE');
  }, 60_000);

  it('exit 0 for --help and --version', () => {
    expect(bridge('--version')).toMatchObject({ status: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
    expect(bridge('sync', '--help').status).toBe(0);
  });

  // Issue #20.4: a drop-in for sample_script.ps1's users.
  it("bridge push takes sample_script.ps1's parameter names, refuses -appSecret with the safe alternatives, and names a misspelt flag", () => {
    const scriptStyle = bridge('push', '-tenantId', 't', '-appId', 'a', '-jobId', 'j', '-filePath', '/no/such/export.txt');
    expect(scriptStyle.stderr).toContain('the Purview app secret: environment variable PURVIEW_APP_SECRET is not set.');
    const secret = bridge('push', '-tenantId', 't', '-appId', 'a', '-jobId', 'j', '-filePath', 'x.txt', '-appSecret', 'p@ss');
    expect(secret.status).toBe(2);
    expect(secret.stderr).toContain("--app-secret (sample_script.ps1's -appSecret) is refused");
    expect(secret.stderr).toContain('PURVIEW_APP_SECRET');
    expect(secret.stderr).not.toContain('p@ss');
    // PowerShell's -Name:value form, spelt right or not: the value is never printed back.
    for (const word of ['-appSecret:p@ss', '-AppSecret=p@ss', '-appSecrt:p@ss', '--app-secret:p@ss']) {
      const colon = bridge('push', '-tenantId:t', '-appId:a', '-jobId', 'j', '-filePath', 'x.txt', word);
      expect(colon.status, word).toBe(2);
      expect(colon.stderr, word).not.toContain('p@ss');
    }
    expect(bridge('push', '-tenantId:t', '-appId:a', '-jobId:j', '-filePath:/no/such/export.txt').stderr).toContain(
      'the Purview app secret: environment variable PURVIEW_APP_SECRET is not set.',
    );
    const typo = bridge('push', '--tenant-idd', 't');
    expect([typo.status, typo.stderr.split('\n')[0]]).toEqual([
      2,
      'error BRG_ERR_INPUT_INVALID: Unknown option --tenant-idd; did you mean --tenant-id? (bridge push --help lists them).',
    ]);
  });
});
