/**
 * `bridge serve` stopped while it was starting: the first SIGTERM or SIGINT may come before the service listens
 * (a rollout replacing a pod within its first second). An abort event is not replayed, so a listener added after it
 * never fired and the service ran on, scheduling syncs, until it was killed.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { hashApiToken } from '../../src/server/auth.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';
import { recordingContext } from './support.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 5, events: 20, patients: 5, practitioners: 2 } });
});
afterAll(async () => h?.close());

it('a stop signal that came before the service listened closes it once it listens', async () => {
  const stop = new AbortController();
  const base = recordingContext({
    env: { BRIDGE__server__port: '0', BRIDGE__server__apiTokenSha256: JSON.stringify([hashApiToken('serve-signal-token-0123456789')]) },
  });
  const ctx = { ...base, stopSignal: stop.signal };
  const program = await buildProgram(ctx, 'serve');
  program.exitOverride();
  stop.abort();
  const served = program.parseAsync(['serve', '--config', h.sandbox.configPath, '--no-schedules'], { from: 'user' });
  const outcome = await Promise.race([served.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still serving after 15 s'), 15_000))]);
  expect(outcome).toBe('closed');
  expect(base.printed.some((line) => line.startsWith('listening on http://127.0.0.1:'))).toBe(true);
});
