/** Lag, last success, run duration and rows by outcome, in Prometheus text (issue #17.3). */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/server/metrics.js';
import type { ConnectorStatus } from '../../src/server/status.js';
import { STATUS_READ_REUSE_MS, statusMetricsText } from '../../src/server/status-metrics.js';
import { SyncEvents } from '../../src/sync/events.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';

const ok: ConnectorStatus = {
  name: 'main',
  health: 'ok',
  reason: 'lag 1 h',
  watermark: '2026-11-23T11:00:00.000Z',
  lagSeconds: 3600,
  lateAfterSeconds: 7500,
  lastSuccess: { runId: 'r1', finishedAt: '2026-11-23T11:00:30.000Z' },
  lastRun: {
    id: 'r1',
    state: 'completed',
    trigger: 'schedule',
    startedAt: '2026-11-23T11:00:00.000Z',
    finishedAt: '2026-11-23T11:00:30.000Z',
    durationSeconds: 30,
    counts: { ...ZERO_COUNTS, events: 10, rows: 9, rejects: 1, rowsAcked: 9, rowsAlreadyDelivered: 2 },
  },
  schedule: { cron: '0 * * * *', enabled: true },
};
const never: ConnectorStatus = {
  name: 'new',
  health: 'late',
  reason: 'no run has completed yet',
  lateAfterSeconds: 7500,
  schedule: { cron: '0 * * * *', enabled: true },
};

describe('status metrics', () => {
  it('writes the gauges of each connector, and nothing for what is not known yet', async () => {
    const text = await statusMetricsText([ok, never]);
    expect(text).toContain('bridge_watermark_lag_seconds{connector="main"} 3600');
    expect(text).toContain(`bridge_last_success_timestamp_seconds{connector="main"} ${Date.parse('2026-11-23T11:00:30Z') / 1000}`);
    expect(text).toContain('bridge_run_duration_seconds{connector="main"} 30');
    expect(text).toContain('bridge_last_run_rows{connector="main",outcome="acknowledged"} 7');
    expect(text).toContain('bridge_last_run_rows{connector="main",outcome="already_delivered"} 2');
    expect(text).toContain('bridge_last_run_rows{connector="main",outcome="rejected"} 1');
    expect(text).toContain('bridge_last_run_failed{connector="main"} 0');
    expect(text).toContain('bridge_connector_healthy{connector="main"} 1');
    expect(text).toContain('bridge_connector_healthy{connector="new"} 0');
    expect(text).not.toMatch(/bridge_watermark_lag_seconds\{connector="new"\}/);
    expect(text).toMatch(/# TYPE bridge_watermark_lag_seconds gauge/);
  });

  it('says how many resources the last run could not get from a Bulk export (error files): a scheduled run is read by its metrics alone', async () => {
    const partial: ConnectorStatus = { ...ok, name: 'bulk', lastRun: { ...(ok.lastRun as NonNullable<ConnectorStatus['lastRun']>), unexported: 2 } };
    const text = await statusMetricsText([ok, partial, never]);
    expect(text).toContain('bridge_last_run_unexported{connector="bulk"} 2');
    expect(text).toContain('bridge_last_run_unexported{connector="main"} 0');
    expect(text).not.toContain('bridge_last_run_unexported{connector="new"}');
  });

  it('the service reads them at scrape time and counts rows of completed runs by outcome', async () => {
    let statuses: ConnectorStatus[] = [never];
    const metrics = createMetrics({ status: () => statuses });
    const events = new SyncEvents();
    const detach = metrics.observe(events, 'main');
    expect(await metrics.registry.metrics()).toContain('bridge_connector_healthy{connector="new"} 0');
    statuses = [ok];
    // A scrape after the reuse interval reads the state again.
    await new Promise((resolve) => setTimeout(resolve, STATUS_READ_REUSE_MS + 20));
    events.emit('run_complete', { runId: 'r1', connector: 'main', counts: ok.lastRun?.counts ?? { ...ZERO_COUNTS } });
    const text = await metrics.registry.metrics();
    expect(text).toContain('bridge_watermark_lag_seconds{connector="main"} 3600');
    expect(text).not.toContain('connector="new"');
    expect(text).toContain('bridge_rows_total{connector="main",outcome="mapped"} 9');
    expect(text).toContain('bridge_rows_total{connector="main",outcome="acknowledged"} 7');
    detach();
  });

  it('counts a run stopped during its push (a redeploy: it stays resumable) as stopped, not failed', async () => {
    const metrics = createMetrics();
    const events = new SyncEvents();
    const detach = metrics.observe(events, 'main');
    const window = { connector: 'main', since: '2026-11-23T10:00:00.000Z', until: '2026-11-23T11:00:00.000Z', dryRun: false, backfill: false };
    const stop = {
      connector: 'main',
      code: 'BRG_ERR_ABORTED',
      message: 'Stopped on request after 3 block(s); the next run sends what Purview has not acknowledged.',
    };
    // SIGTERM during the push (the pipeline's order: run_start, the pull's pages, spool_complete, blocks, then error, which
    // says the run stays resumable: test/sync/pipeline.test.ts checks the pipeline says so).
    events.emit('run_start', { runId: 'r1', ...window });
    events.emit('spool_complete', { runId: 'r1', rows: 900 });
    events.emit('block_acked', { runId: 'r1', index: 0, rows: 300, status: 200, ms: 40, possiblyDuplicated: false, possiblyDuplicatedRows: 0 });
    events.emit('error', { runId: 'r1', ...stop, resumable: true });
    // The next start-up resumes it, and is stopped again during that push.
    events.emit('run_start', { runId: 'r1', ...window, resumedFrom: 'r1' });
    events.emit('error', { runId: 'r1', ...stop, resumable: true });
    const stoppedOnly = await metrics.registry.metrics();
    expect(stoppedOnly).toContain('bridge_runs_total{connector="main",outcome="stopped"} 2');
    expect(stoppedOnly).not.toContain('outcome="failed"');
    // Failures stay failures: a stop during the pull (the run is failed, its files gone), a push that Purview failed.
    events.emit('run_start', { runId: 'r2', ...window });
    events.emit('error', { runId: 'r2', ...stop, message: 'Stopped on request; the next run resumes from the last checkpoint.' });
    events.emit('run_start', { runId: 'r3', ...window });
    events.emit('spool_complete', { runId: 'r3', rows: 900 });
    events.emit('error', { runId: 'r3', connector: 'main', code: 'BRG_ERR_PURVIEW_UNAVAILABLE', message: 'Block 0 was not acknowledged.', resumable: true });
    // Then the resumed push completes.
    events.emit('run_start', { runId: 'r1', ...window, resumedFrom: 'r1' });
    events.emit('run_complete', { runId: 'r1', connector: 'main', counts: { ...ZERO_COUNTS, rows: 900, rowsAcked: 900 } });
    const text = await metrics.registry.metrics();
    expect(text).toContain('bridge_runs_total{connector="main",outcome="failed"} 2');
    expect(text).toContain('bridge_runs_total{connector="main",outcome="stopped"} 2');
    expect(text).toContain('bridge_runs_total{connector="main",outcome="completed"} 1');
    detach();
  });

  it('scrapes in a loop read the state once per interval (/metrics is unauthenticated; a read scans the runs)', async () => {
    let reads = 0;
    const metrics = createMetrics({
      status: () => {
        reads += 1;
        return [ok];
      },
    });
    for (let i = 0; i < 50; i++) {
      expect(await metrics.registry.metrics()).toContain('bridge_connector_healthy{connector="main"} 1');
      // Each scrape its own request, as over HTTP: the event loop turns between them.
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(reads).toBe(1);
  });
});
