/**
 * kill -9 in the middle of a push, then a rerun in a new process with the same SQLite state: every row is delivered,
 * and rows Purview may have received twice are always flagged possibly duplicated (docs/purview-protocol.md §6; the
 * script's silent version is §4).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { expectDelivered, makeRows, type PushWorld, startPushWorld } from './e2e-support.js';
import type { PushChildConfig } from './fixtures/crash-child.js';
import { writeSpool } from './support.js';

const CHILD = join(import.meta.dirname, 'fixtures', 'crash-child.ts');
let world: PushWorld;
beforeAll(async () => {
  world = await startPushWorld();
});
afterAll(() => world.close());

interface ChildRun {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exit: Promise<number | null>;
  stderr: () => string;
}

function runChild(configPath: string): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, configPath], {
    cwd: join(import.meta.dirname, '..', '..'),
    env: { ...process.env, PURVIEW_APP_SECRET: world.secret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let pending = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exit, stderr: () => stderr };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

it('a push killed with SIGKILL after Purview accepted a block resumes in a new process; the re-sent block is flagged', async () => {
  const rows = makeRows(30);
  const config: PushChildConfig = {
    inputPath: writeSpool(world.dir, rows),
    stateDir: join(world.dir, 'crash-state'),
    caPath: join(world.dir, 'ca.pem'),
    authorityHost: world.entra.authorityHost,
    ingestionBase: world.ingest.baseUrl,
    tenantId: world.tenantId,
    appId: world.appId,
    jobId: world.jobId,
    blockRows: 4,
  };
  writeFileSync(config.caPath, world.caPem);
  const configPath = join(world.dir, 'child.json');
  writeFileSync(configPath, JSON.stringify(config));

  // Blocks 0-2 pass ('delay' 0 is a pass-through); block 3 is recorded but its answer is lost (reset); its retry is
  // then held by the emulator, and the process is killed there: the ledger says 'sending' for a block Purview has.
  const pass = { kind: 'delay', ms: 0 } as const;
  world.ingest.injectFaults(pass, pass, pass, { kind: 'accept-then-reset' }, { kind: 'delay', ms: 30_000 });
  const first = runChild(configPath);
  await until(() => first.lines.some((l) => l.type === 'block_sent' && l.index === 3 && l.attempt === 2), 'block 3 re-sent');
  await until(() => world.ingest.requests >= 5, 'the held request');
  first.child.kill('SIGKILL');
  expect(await first.exit).toBeNull();
  expect(world.ingest.accepted(world.jobId).length).toBe(4);

  const second = runChild(configPath);
  expect(await second.exit, second.stderr()).toBe(0);
  const report = second.lines.find((l) => l.type === 'report') as { possiblyDuplicated: number[]; rowsAlreadyDelivered: number; rowsAcked: number };
  // The rerun's block 0 is the first block's re-send: the earlier process's block 3.
  expect(report).toMatchObject({ rowsAlreadyDelivered: 12, rowsAcked: 30, possiblyDuplicated: [0], rowsPossiblyDuplicated: 4 });
  const accepted = world.ingest.accepted(world.jobId);
  expectDelivered(accepted, rows, 4, [3]);
  expect(accepted.filter((b) => b.rows[0] === rows[12]).length).toBe(2);
  expect(accepted.length).toBe(9);
});
