/**
 * A scheduled run that fails before its run record exists (the Purview secret gone after a redeploy) is seen: in the
 * log with its message, in status as failing with the reason, in a counter; a connector held by another process is a skip.
 */
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createMetrics } from '../../src/server/metrics.js';
import { createSyncRunner } from '../../src/server/runner.js';
import { trackStartFailures } from '../../src/server/start-failures.js';
import { type StatusConnector, statusReport } from '../../src/server/status.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';
import { AUTH, captureLogger, tempStore, testApp } from './support.js';

const daily: StatusConnector = { name: 'main', cron: '0 2 * * *', timezone: 'UTC', scheduleEnabled: true, lateAfterMs: 48 * 3_600_000 };
const settle = () => new Promise((r) => setImmediate(r));

function service(failWith: () => Error) {
  const clock = new ManualClock('2026-11-23T02:00:00Z');
  const { store } = tempStore();
  const { logger, lines } = captureLogger();
  const metrics = createMetrics();
  const starts = trackStartFailures(metrics, clock);
  const runner = createSyncRunner(() => Promise.reject(failWith()), logger, starts.hooks);
  const status = () => statusReport([daily], store, clock.now(), { schedules: true, startFailure: starts.last });
  return { clock, store, lines, metrics, runner, status };
}

describe('a run that cannot start', () => {
  it('is logged with its message, shown as failing with its reason until a run starts, and counted', async () => {
    const missing = new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', 'purview.secret: environment variable PURVIEW_APP_SECRET is not set.');
    const s = service(() => missing);
    await s.runner.start('main', { trigger: 'schedule' }).catch(() => undefined);
    await settle();

    expect(s.lines).toContainEqual(expect.objectContaining({ level: 50, connector: 'main', code: missing.code, message: missing.message }));
    const failing = s.status().connectors[0];
    expect(failing).toMatchObject({
      health: 'failing',
      reason: `the last run could not start: BRG_ERR_CONFIG_SECRET_MISSING: ${missing.message}`,
      lastStartFailure: { code: missing.code, message: missing.message, at: '2026-11-23T02:00:00.000Z' },
    });
    // /v1/status (which the operator page shows) serializes it.
    const app = await testApp({ store: s.store, status: s.status });
    const answer = (await app.inject({ method: 'GET', url: '/v1/status', headers: AUTH })).json<{ connectors: unknown[] }>();
    expect(answer.connectors[0]).toMatchObject({ health: 'failing', reason: failing?.reason, lastStartFailure: failing?.lastStartFailure });
    await app.close();
    const text = await s.metrics.registry.metrics();
    expect(text).toContain('bridge_run_start_failures_total{connector="main",code="BRG_ERR_CONFIG_SECRET_MISSING"} 1');

    // The secret is back; the next run starts (here: its record exists) and its outcome tells the health again.
    await s.clock.advance(3_600_000);
    s.store.createRun({
      id: 'r1',
      connector: 'main',
      state: 'running',
      trigger: 'schedule',
      since: '2026-11-22T02:00:00.000Z',
      until: '2026-11-23T02:55:00.000Z',
      startedAt: new Date(s.clock.now()).toISOString(),
      counts: { ...ZERO_COUNTS },
      dryRun: false,
    });
    s.store.completeRun('r1', { counts: { ...ZERO_COUNTS }, watermark: '2026-11-23T02:55:00.000Z' });
    const after = s.status().connectors[0];
    expect(after?.health).toBe('ok');
    expect(after).not.toHaveProperty('lastStartFailure');
  });

  it('is a skip, not a failure, when another process holds the connector', async () => {
    const s = service(() => new BridgeError('BRG_ERR_RUN_IN_PROGRESS', 'A sync of connector "main" is running in bridge sync (pid 4242 on host-1).'));
    await s.runner.start('main', { trigger: 'schedule' }).catch(() => undefined);
    await settle();

    expect(s.lines).toContainEqual(expect.objectContaining({ level: 40, connector: 'main', code: 'BRG_ERR_RUN_IN_PROGRESS' }));
    expect(s.status().connectors[0]).toMatchObject({ health: 'late', reason: 'no run has completed yet' });
    const text = await s.metrics.registry.metrics();
    expect(text).toContain('bridge_schedule_skips_total{connector="main",reason="lease_held"} 1');
    expect(text).not.toMatch(/^bridge_run_start_failures_total\{/m);
  });
});
