/** Connector health from the state alone (issue #17): ok, late against the schedule, failing, and the run in flight. */
import { describe, expect, it } from 'vitest';
import { connectorStatus, formatDuration, longestGapMs, type StatusConnector, statusConnectors, statusReport } from '../../src/server/status.js';
import { statusMetricsText } from '../../src/server/status-metrics.js';
import { type RunRecord, type StateStore, ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ackedEventBlock } from '../support/ledger-blocks.js';
import { tempStore } from './support.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-11-23T12:00:00Z');
const hourly: StatusConnector = { name: 'main', cron: '0 * * * *', timezone: 'UTC', scheduleEnabled: true, lateAfterMs: 2 * HOUR + 5 * 60_000 };

function run(store: StateStore, id: string, startedMs: number, patch: Partial<RunRecord> = {}): void {
  store.createRun({
    id,
    connector: 'main',
    state: 'running',
    trigger: 'schedule',
    since: new Date(startedMs - HOUR).toISOString(),
    until: new Date(startedMs).toISOString(),
    startedAt: new Date(startedMs).toISOString(),
    counts: { ...ZERO_COUNTS },
    dryRun: patch.dryRun ?? false,
  });
  const { dryRun: _d, ...rest } = patch;
  if (patch.state === 'completed') {
    store.completeRun(id, { counts: { ...ZERO_COUNTS, events: 10, rows: 9, rowsAcked: 9 }, watermark: new Date(startedMs).toISOString() });
  } else if (Object.keys(rest).length) {
    store.updateRun(id, rest);
  }
}

describe('connector status', () => {
  it('derives the late threshold from the schedule: two of its longest gaps plus settle', () => {
    expect(longestGapMs({ connector: 'c', cron: '0 * * * *', timezone: 'UTC' }, NOW)).toBe(HOUR);
    // Weekdays at 02:00: the weekend gap is three days.
    expect(longestGapMs({ connector: 'c', cron: '0 2 * * 1-5', timezone: 'UTC' }, NOW)).toBe(72 * HOUR);
    const config = { server: {}, connectors: [{ name: 'a', schedule: { cron: '0 2 * * *', enabled: true }, fhir: { settleMinutes: 5 } }] };
    expect(statusConnectors(config as never, NOW)[0]?.lateAfterMs).toBe(48 * HOUR + 5 * 60_000);
    const explicit = { ...config, server: { lateAfterMinutes: 90 } };
    expect(statusConnectors(explicit as never, NOW)[0]?.lateAfterMs).toBe(90 * 60_000);
  });

  it("counts the last run's delivered blocks as the ledger holds them (a run stopped mid-push recorded none), as bridge runs does", () => {
    const { store } = tempStore();
    run(store, 'stopped', NOW - HOUR, { state: 'pushing' });
    ackedEventBlock(store, { destination: 'j', source: 'main', runId: 'stopped' }, [{ key: 'ev-1|1', recordedMs: NOW - 2 * HOUR, rows: 1 }]);
    const last = connectorStatus(hourly, store, NOW, { schedules: false }).lastRun;
    expect(last?.counts).toMatchObject({ blocksAcked: 1, rowsAcked: 1 });
  });

  it('is late before anything completed, ok within the threshold, late past it', () => {
    const { store } = tempStore();
    expect(connectorStatus(hourly, store, NOW, { schedules: true })).toMatchObject({
      health: 'late',
      reason: 'no run has completed yet',
      nextRunAt: '2026-11-23T13:00:00.000Z',
    });
    run(store, 'r1', NOW - HOUR, { state: 'completed' });
    const ok = connectorStatus(hourly, store, NOW, { schedules: true });
    expect(ok).toMatchObject({
      health: 'ok',
      lagSeconds: 3600,
      watermark: new Date(NOW - HOUR).toISOString(),
      lastRun: { id: 'r1', state: 'completed' },
      lastSuccess: { runId: 'r1' },
    });
    expect(ok.lastRun?.durationSeconds).toBeGreaterThanOrEqual(0);
    const late = connectorStatus(hourly, store, NOW + 2 * HOUR, { schedules: false });
    expect(late).toMatchObject({ health: 'late', reason: 'lag 3 h is over 2 h 5 min', lagSeconds: 3 * 3600 });
    expect(late.nextRunAt).toBeUndefined();
  });

  it('is failing when the last run failed or was left unfinished, whatever the lag', () => {
    const { store } = tempStore();
    run(store, 'r1', NOW - 2 * HOUR, { state: 'completed' });
    run(store, 'r2', NOW - HOUR, {
      state: 'failed',
      finishedAt: new Date(NOW - HOUR).toISOString(),
      error: { code: 'BRG_ERR_FHIR_UNAVAILABLE', message: 'down' },
    });
    expect(connectorStatus(hourly, store, NOW, { schedules: true })).toMatchObject({
      health: 'failing',
      reason: 'the last run failed: BRG_ERR_FHIR_UNAVAILABLE',
      lastRun: { id: 'r2', state: 'failed' },
      lastSuccess: { runId: 'r1' },
    });
    run(store, 'r3', NOW - 30 * 60_000, { state: 'pushing', error: { code: 'BRG_ERR_ABORTED', message: 'stopped' } });
    expect(connectorStatus(hourly, store, NOW, { schedules: true })).toMatchObject({
      health: 'failing',
      reason: 'the last run stopped before it finished: BRG_ERR_ABORTED; the next run resumes it',
    });
  });

  it('is failing, saying why, when the last run could not even start, until a later run starts', () => {
    const { store } = tempStore();
    run(store, 'r1', NOW - 2 * HOUR, { state: 'completed' });
    const failure = {
      code: 'BRG_ERR_CONFIG_SECRET_MISSING',
      message: 'purview.secret: environment variable PURVIEW_APP_SECRET is not set.',
      at: new Date(NOW - HOUR).toISOString(),
    };
    const options = { schedules: true, startFailure: (name: string) => (name === 'main' ? failure : undefined) };
    expect(connectorStatus(hourly, store, NOW, options)).toMatchObject({
      health: 'failing',
      reason: `the last run could not start: ${failure.code}: ${failure.message}`,
      lastStartFailure: failure,
      lastRun: { id: 'r1', state: 'completed' },
    });
    // A run that started since (here or in another process) supersedes it: its own outcome tells the health.
    run(store, 'r2', NOW - 30 * 60_000, { state: 'completed' });
    const after = connectorStatus(hourly, store, NOW, options);
    expect(after).toMatchObject({ health: 'ok', lastRun: { id: 'r2' } });
    expect(after).not.toHaveProperty('lastStartFailure');
  });

  it('keeps the last success (and its gauge) through more failed runs than it reads for the last run', async () => {
    const { store } = tempStore();
    run(store, 'good', NOW - 300 * HOUR, { state: 'completed' });
    for (let i = 0; i < 201; i++) {
      const startedMs = NOW - (200 - i) * HOUR;
      run(store, `bad-${i}`, startedMs, {
        state: 'failed',
        finishedAt: new Date(startedMs + 60_000).toISOString(),
        error: { code: 'BRG_ERR_FHIR_UNAVAILABLE', message: 'down' },
      });
    }
    const status = connectorStatus(hourly, store, NOW, { schedules: true });
    expect(status).toMatchObject({ health: 'failing', lastRun: { id: 'bad-200' }, lastSuccess: { runId: 'good' } });
    expect(await statusMetricsText([status])).toMatch(/^bridge_last_success_timestamp_seconds\{connector="main"\} \d+/m);
  });

  it('shows the run in flight: live progress from this process, the lease holder of another', () => {
    const { store } = tempStore();
    run(store, 'r1', NOW - HOUR, { state: 'completed' });
    run(store, 'r2', NOW - 60_000);
    // Another process holds the lease: r2 is in flight, so the last run is still r1 and health stays ok.
    store.acquireLease(
      'connector:main',
      { id: 'h', host: 'host-1', pid: 4242, command: 'bridge sync', since: new Date(NOW - 60_000).toISOString() },
      120_000,
      () => false,
    );
    const other = connectorStatus(hourly, store, Date.now(), { schedules: true });
    expect(other.inFlight).toMatchObject({ runId: 'r2', holder: 'bridge sync (pid 4242 on host-1)' });
    expect(other.lastRun?.id).toBe('r1');
    // Its holder is gone (a process of this host that no longer runs): nothing is in flight, the next run takes over.
    const gone = connectorStatus(hourly, store, Date.now(), { schedules: true, isStale: (holder) => holder.pid === 4242 });
    expect(gone.inFlight).toBeUndefined();
    expect(gone.health).toBe('failing');
    const progress = {
      runId: 'r2',
      phase: 'pushing' as const,
      startedAt: new Date(NOW).toISOString(),
      events: 5,
      rows: 4,
      rejects: 1,
      rowsAcked: 2,
      blocksAcked: 1,
      blocksTotal: 2,
    };
    const own = connectorStatus(hourly, store, Date.now(), { schedules: true, progress: () => progress });
    expect(own.inFlight).toEqual({ runId: 'r2', holder: 'bridge sync', since: progress.startedAt, progress });
  });

  it('ignores dry runs and reports every connector healthy or not', () => {
    const { store } = tempStore();
    run(store, 'dry', NOW - 60_000, { state: 'failed', dryRun: true });
    run(store, 'r1', NOW - 2 * HOUR, { state: 'completed' });
    const report = statusReport([hourly], store, NOW, { schedules: true });
    expect(report).toMatchObject({ healthy: true, now: new Date(NOW).toISOString(), connectors: [{ name: 'main', health: 'ok', lastRun: { id: 'r1' } }] });
  });

  it('formats durations for people', () => {
    expect([45, 720, 3600, 12_000, 190_000].map(formatDuration)).toEqual(['45 s', '12 min', '1 h', '3 h 20 min', '2 d 4 h']);
  });
});
