/** The CLI's exit codes for usage mistakes, through the real binary: bad input is 2 (README's table), help and version 0. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startStubServer } from '../smart/support.js';
import { type BridgeExit, type BridgeProcess, spawnBridge } from '../support/bridge-process.js';

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

  // Commander printed an unknown option's word whole: a secret typed as `--app-secret=…` landed in the terminal or the
  // scheduler's log. Every command (not only push) names the option and withholds the value.
  it('names an unknown option without the value written with it, for every command, exit 2', () => {
    for (const args of [
      ['sync', '--app-secret=S3CRET'],
      ['sync', '-appSecret:S3CRET'],
      ['sync', '-AppSecret', 'S3CRET'],
      ['status', '--app-secret:S3CRET'],
      ['keys', 'generate', '--client-secret=S3CRET'],
      ['keys', 'retire', '--app-secret=S3CRET'], // a command taking unknown "-…" words as its kid
      ['--app-secret=S3CRET', 'sync'],
      ['sync', '--no-progress=S3CRET'],
    ]) {
      const run = bridge(...args);
      const label = args.join(' ');
      expect(run.status, label).toBe(2);
      expect(run.stderr, label).not.toContain('S3CRET');
      expect(run.stderr.split('\n')[0], label).toMatch(/^error: (unknown )?option '(--app-secret|-appSecret|-AppSecret|--client-secret|--no-progress)'/);
      expect(run.stderr, label).toContain('error BRG_ERR_INPUT_INVALID: the command line was refused (unknown option)');
    }
  }, 60_000);
});

/** The child's exit, or undefined when it has not ended `ms` after the call (it is then killed). */
async function exitWithin(child: BridgeProcess, ms: number): Promise<BridgeExit | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([child.done, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  clearTimeout(timer);
  if (!exit) {
    child.kill('SIGKILL');
    await child.done;
  }
  return exit;
}

// Only sync, push, serve, sandbox and demo stop at a checkpoint on a signal (their own tests: sigterm, *-stop-grace,
// serve-sigterm). Any other command has nothing to finish: the first SIGINT or SIGTERM ends it, cancelled (130).
describe('a command that does not stop at a checkpoint', () => {
  it('bridge token hash waiting on its standard input ends at the first SIGTERM, exit 130', async () => {
    const hash = spawnBridge(['token', 'hash'], {}, undefined, [], { stdin: 'pipe' });
    hash.stdin?.on('error', () => undefined); // EPIPE once it has gone
    // More than a pipe holds: the write completes once the command reads its input, its signal handlers long installed.
    await new Promise<void>((resolve, reject) => hash.stdin?.write('t'.repeat(1 << 20), (error) => (error ? reject(error) : resolve())));
    hash.kill('SIGTERM');
    const exit = await exitWithin(hash, 2000);
    expect(exit?.code, exit ? exit.stderr : 'still running 2 s after SIGTERM').toBe(130);
    expect(exit?.stdout).toBe(''); // no hash of a token cut short
  }, 60_000);

  it('bridge doctor waiting on the EHR ends at the first SIGINT, exit 130', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-doctor-sigint-'));
    let asked = false;
    const ehr = await startStubServer(() => {
      asked = true; // …and never answered
    });
    try {
      const configPath = join(dir, 'bridge.config.json');
      writeFileSync(
        configPath,
        JSON.stringify({
          stateDir: join(dir, 'state'),
          connectors: [
            {
              name: 'main',
              fhir: { baseUrl: `${ehr.origin}/R4` },
              smart: { clientId: 'c', keysDir: join(dir, 'keys') },
              purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } },
            },
          ],
        }),
      );
      const doctor = spawnBridge(['doctor', '--config', configPath], { NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' });
      const deadline = Date.now() + 30_000;
      while (!asked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(asked, doctor.stderr()).toBe(true);
      doctor.kill('SIGINT');
      const exit = await exitWithin(doctor, 2000);
      expect(exit?.code, exit ? exit.stderr : 'still running 2 s after SIGINT').toBe(130);
    } finally {
      await ehr.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
