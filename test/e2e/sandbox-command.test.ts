/**
 * `bridge sandbox` as the README has an operator use it: the sync command it prints works, also after a plain sync
 * moved the watermark to now, and again after the sandbox was restarted in the same directory (new ports, ids and keys;
 * the earlier start's state is removed, not left to refuse the new one).
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { dayBefore } from '../../src/cli/commands/sandbox.js';
import { type BridgeProcess, spawnBridge, until } from '../support/bridge-process.js';

const running: BridgeProcess[] = [];
afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGINT');
    await process.done;
  }
});

async function startSandbox(dir: string): Promise<{ sandbox: BridgeProcess; command: string[] }> {
  const sandbox = spawnBridge(['sandbox', '--dir', dir, '--events', '60', '--patients', '20', '--practitioners', '4']);
  running.push(sandbox);
  const line = await until('the printed sync command', () => /npm run bridge -- (sync .+)$/m.exec(sandbox.stdout())?.[1], 60_000);
  return { sandbox, command: line.trim().split(/\s+/) };
}

async function stop(sandbox: BridgeProcess): Promise<void> {
  running.splice(running.indexOf(sandbox), 1);
  sandbox.kill('SIGINT');
  await sandbox.done;
}

it('prints a sync command that works after a plain sync and after a restart in the same directory', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'bridge-sandbox-cmd-')), 'sandbox');
  const first = await startSandbox(dir);
  const { start, end } = dayBefore(Date.now());
  expect(first.command).toEqual(['sync', '--config', join(dir, 'bridge.config.yaml'), '--since', start, '--until', end]);
  const printed = await spawnBridge([...first.command, '--no-progress']).done;
  expect(printed.code, printed.stderr).toBe(0);
  // A plain sync moves the watermark to now; the printed backfill is still within what the ledger remembers.
  const plain = await spawnBridge(['sync', '--config', join(dir, 'bridge.config.yaml'), '--no-progress']).done;
  expect(plain.code, plain.stderr).toBe(0);
  const again = await spawnBridge([...first.command, '--no-progress']).done;
  expect(again.code, again.stderr).toBe(0);
  await stop(first.sandbox);

  // Restarted: new ports and ids; the earlier start's watermark and ledger are gone with its state.
  const second = await startSandbox(dir);
  expect(second.sandbox.stdout()).toContain(`State: ${join(dir, 'state')} removed`);
  const after = await spawnBridge([...second.command, '--no-progress']).done;
  expect(after.code, after.stderr).toBe(0);
  expect(after.stdout).toMatch(/rows accepted\s+[1-9]/);

  // The service with the sandbox's config answers /v1 to the token the sandbox printed the file of, and to no other.
  const tokenPath = /its API token is in (\S+) /.exec(second.sandbox.stdout())?.[1] as string;
  expect(statSync(tokenPath).mode & 0o777).toBe(0o600);
  const serve = spawnBridge(['serve', '--config', join(dir, 'bridge.config.yaml'), '--no-schedules'], { BRIDGE__server__port: '0' });
  running.push(serve);
  const url = await until('bridge serve to listen', () => /listening on (\S+)/.exec(serve.stdout())?.[1]);
  const status = (token: string) => fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  expect((await status('wrong')).status).toBe(401);
  const answer = await status(readFileSync(tokenPath, 'utf8'));
  expect(answer.status).toBe(200);
  expect(JSON.stringify(await answer.json())).toContain('"sandbox"');
});
