/**
 * `bridge serve` restarted after a kill -9 on another host (a new pod): the dead holder's lease outlives it by up to
 * state.leaseTtlSeconds, so the start-up resume is refused at first. It is tried again once that lease runs out, and the
 * push completes then, not at the next scheduled run a day later.
 */
import { afterAll, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { hashApiToken } from '../../src/server/auth.js';
import { type Service, startService } from '../../src/server/service.js';
import { connectorLeaseName } from '../../src/sync/lease.js';
import { until } from '../support/bridge-process.js';
import { interruptedPush, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const TOKEN = 'serve-lease-wait-token-0123456789abcd';
let h: SandboxHarness | undefined;
let service: Service | undefined;
afterAll(async () => {
  await service?.close();
  await h?.close();
});

it("finishes the interrupted push once a dead holder's lease on another host runs out", async () => {
  h = await startHarness({ data: { seed: 96, events: 120, patients: 30, practitioners: 6 } });
  const harness = h;
  const runId = await interruptedPush(harness);
  const holder = { id: 'killed-pod', host: 'bridge-7d9f-old-pod', pid: 1, command: 'bridge serve (schedule)', since: new Date().toISOString() };
  harness.withStore((s) => s.acquireLease(connectorLeaseName('sandbox'), holder, 2_000, () => false));
  const config = loadConfig({
    base: harness.sandbox.config,
    env: {},
    flags: {
      'server.port': 0,
      'server.apiTokenSha256': [hashApiToken(TOKEN)],
      'connectors.0.schedule.enabled': true,
      'connectors.0.schedule.cron': '0 2 1 1 *',
      'connectors.0.schedule.timezone': 'UTC',
    },
  });
  service = await startService({ config, env: {}, clock: systemClock, logger: harness.logger, schedules: true });

  await until('the resume refused by the dead holder', () => harness.logLines.find((line) => line.includes('another process is running this connector')));
  expect(harness.withStore((s) => s.getRun(runId)?.state)).toBe('pushing');
  await until('the push completed after the lease ran out', () => harness.withStore((s) => s.getRun(runId)?.state === 'completed') || undefined);
  expect(harness.logLines.some((line) => line.includes('the process that held the connector let go: starting the run it held back'))).toBe(true);
  expect(harness.withStore((s) => s.findUnfinishedRun('sandbox'))).toBeUndefined();
});
