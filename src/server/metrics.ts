/**
 * Prometheus metrics of the service: counters and latencies fed by sync events, and the status gauges (lag, last
 * success, last run) read from the state store at scrape time (status-metrics.ts). Counts and reason codes only.
 */
import client from 'prom-client';
import type { SyncEvents } from '../sync/events.js';
import type { ConnectorStatus } from './status.js';
import { registerStatusGauges, rowsByOutcome } from './status-metrics.js';

export interface Metrics {
  readonly registry: client.Registry;
  /** Subscribes to one connector's sync events; returns detach. */
  observe(events: SyncEvents, connector: string): () => void;
  fhirRequest(info: { resourceType: string; status: number; retries: number }): void;
  /** A run that failed before it had a run record: no run event counts it in bridge_runs_total. */
  runStartFailed(connector: string, code: string): void;
  /** A schedule tick that started no run: one still in flight here, or another process holding the connector. */
  scheduleSkipped(connector: string, reason: 'in_flight' | 'lease_held'): void;
}

export interface MetricsOptions {
  /** Connector statuses for the lag, last-success and last-run gauges; without it those gauges stay empty. */
  readonly status?: () => readonly ConnectorStatus[];
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new client.Registry();
  const runs = new client.Counter({
    name: 'bridge_runs_total',
    help: 'Sync runs by outcome: completed, failed, or stopped (a stop, such as a shutdown, during its push: the next run finishes it, so not a failure)',
    labelNames: ['connector', 'outcome'],
    registers: [registry],
  });
  const pulled = new client.Counter({ name: 'bridge_events_pulled_total', help: 'AuditEvents pulled', labelNames: ['connector'], registers: [registry] });
  const rows = new client.Counter({
    name: 'bridge_rows_mapped_total',
    help: 'Connector rows written to the spool',
    labelNames: ['connector'],
    registers: [registry],
  });
  const pushed = new client.Counter({
    name: 'bridge_rows_pushed_total',
    help: 'Rows acknowledged by Purview',
    labelNames: ['connector'],
    registers: [registry],
  });
  const rejected = new client.Counter({
    name: 'bridge_rows_rejected_total',
    help: 'Rows rejected with a reason',
    labelNames: ['connector', 'reason'],
    registers: [registry],
  });
  const byOutcome = new client.Counter({
    name: 'bridge_rows_total',
    help: 'Rows of completed runs by outcome (mapped, acknowledged, already_delivered, rejected, possibly_duplicated)',
    labelNames: ['connector', 'outcome'],
    registers: [registry],
  });
  const fhirRequests = new client.Counter({
    name: 'bridge_fhir_requests_total',
    help: 'FHIR requests by status',
    labelNames: ['resource_type', 'status'],
    registers: [registry],
  });
  const fhirRetries = new client.Counter({ name: 'bridge_fhir_retries_total', help: 'FHIR request retries', registers: [registry] });
  const blockRetries = new client.Counter({
    name: 'bridge_block_retries_total',
    help: 'Purview block upload retries',
    labelNames: ['connector'],
    registers: [registry],
  });
  const blockLatency = new client.Histogram({
    name: 'bridge_block_latency_seconds',
    help: 'Purview block upload latency (acknowledged blocks)',
    labelNames: ['connector'],
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 400],
    registers: [registry],
  });
  const unexported = new client.Counter({
    name: 'bridge_unexported_resources_total',
    help: 'Resources the FHIR server reported it could not export (Bulk export error files), by completed run: not in Purview until a --since backfill asks again',
    labelNames: ['connector'],
    registers: [registry],
  });
  const tokens = new client.Counter({ name: 'bridge_token_refreshes_total', help: 'Access tokens fetched', labelNames: ['side'], registers: [registry] });
  // Labels: error codes and two skip reasons, bounded sets.
  const startFailures = new client.Counter({
    name: 'bridge_run_start_failures_total',
    help: 'Runs that failed before they had a run record (a missing secret, a refused window), by error code',
    labelNames: ['connector', 'code'],
    registers: [registry],
  });
  const scheduleSkips = new client.Counter({
    name: 'bridge_schedule_skips_total',
    help: 'Schedule ticks that started no run: in_flight (a run of this process) or lease_held (another process or replica)',
    labelNames: ['connector', 'reason'],
    registers: [registry],
  });
  if (options.status) registerStatusGauges(registry, options.status);
  client.collectDefaultMetrics({ register: registry });

  return {
    registry,
    observe(events, connector) {
      const detaches = [
        events.on('page', (e) => {
          pulled.inc({ connector }, e.events);
          rows.inc({ connector }, e.rows);
        }),
        events.on('reject', (e) => rejected.inc({ connector, reason: e.reason }, e.rows ?? 1)),
        events.on('block_acked', (e) => {
          pushed.inc({ connector }, e.rows);
          blockLatency.observe({ connector }, e.ms / 1000);
        }),
        events.on('block_retry', () => blockRetries.inc({ connector })),
        events.on('token', (e) => tokens.inc({ side: e.side })),
        events.on('run_complete', (e) => {
          runs.inc({ connector, outcome: 'completed' });
          for (const [outcome, n] of Object.entries(rowsByOutcome(e.counts))) byOutcome.inc({ connector, outcome }, n);
          if (e.unexported) unexported.inc({ connector }, e.unexported);
        }),
        events.on('error', (e) => {
          // A stop (BRG_ERR_ABORTED: a shutdown, a second SIGTERM) during the push leaves the run resumable in 'pushing',
          // which a redeploy does every time: not a failure to alert on. A stop during the pull fails the run, as does
          // any other error (a Purview outage, a lost lease), whatever its record keeps for the next run.
          const stopped = e.resumable === true && e.code === 'BRG_ERR_ABORTED';
          runs.inc({ connector, outcome: stopped ? 'stopped' : 'failed' });
        }),
      ];
      return () => {
        for (const detach of detaches) detach();
      };
    },
    fhirRequest(info) {
      fhirRequests.inc({ resource_type: info.resourceType, status: String(info.status) });
      if (info.retries > 0) fhirRetries.inc(info.retries);
    },
    runStartFailed: (connector, code) => startFailures.inc({ connector, code }),
    scheduleSkipped: (connector, reason) => scheduleSkips.inc({ connector, reason }),
  };
}
