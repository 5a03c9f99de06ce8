/**
 * The "is Epic data reaching Purview?" gauges, read from connector status (so from the state store) when they are
 * collected: the service's /metrics and a one-shot `bridge sync --metrics-file/--pushgateway` expose the same names
 * with the same meaning, whichever process ran the sync. Gauges, not counters: a batch job's process ends after one
 * run, so a counter of it would restart at every run (the Pushgateway's advice for batch jobs).
 */
import client from 'prom-client';
import type { RunCounts } from '../sync/state/index.js';
import type { ConnectorStatus } from './status.js';

/** Row outcomes of a run, as label values of bridge_last_run_rows and bridge_rows_total. */
export function rowsByOutcome(counts: RunCounts): Record<string, number> {
  return {
    mapped: counts.rows,
    acknowledged: Math.max(0, counts.rowsAcked - counts.rowsAlreadyDelivered),
    already_delivered: counts.rowsAlreadyDelivered,
    rejected: counts.rejects,
    possibly_duplicated: counts.rowsPossiblyDuplicated,
  };
}

/**
 * How long one read of the state serves scrapes. /metrics is unauthenticated, and a status read scans each connector's
 * recent runs: without it, a client scraping in a loop would keep the event loop (and the sync in flight) busy.
 */
export const STATUS_READ_REUSE_MS = 1_000;

export function registerStatusGauges(registry: client.Registry, read: () => readonly ConnectorStatus[]): void {
  // One scrape collects every gauge in turn: the state is read once for all of them, and for the scrapes that follow
  // within STATUS_READ_REUSE_MS.
  let memo: readonly ConnectorStatus[] | undefined;
  const statuses = (): readonly ConnectorStatus[] => {
    if (!memo) {
      memo = read();
      setTimeout(() => (memo = undefined), STATUS_READ_REUSE_MS).unref();
    }
    return memo;
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: client.Gauge, s: ConnectorStatus) => void): void => {
    new client.Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const status of statuses()) fill(this, status);
      },
    });
  };
  gauge('bridge_watermark_lag_seconds', 'Now minus the watermark: how far behind the data in Purview is', ['connector'], (g, s) => {
    if (s.lagSeconds !== undefined) g.set({ connector: s.name }, s.lagSeconds);
  });
  gauge('bridge_last_success_timestamp_seconds', 'When the last successful run finished (Unix time)', ['connector'], (g, s) => {
    if (s.lastSuccess) g.set({ connector: s.name }, Date.parse(s.lastSuccess.finishedAt) / 1000);
  });
  gauge('bridge_run_duration_seconds', 'Wall time of the last finished run', ['connector'], (g, s) => {
    if (s.lastRun?.durationSeconds !== undefined) g.set({ connector: s.name }, s.lastRun.durationSeconds);
  });
  gauge('bridge_last_run_rows', 'Rows of the last finished run by outcome', ['connector', 'outcome'], (g, s) => {
    if (!s.lastRun) return;
    for (const [outcome, rows] of Object.entries(rowsByOutcome(s.lastRun.counts))) g.set({ connector: s.name, outcome }, rows);
  });
  gauge(
    'bridge_last_run_unexported',
    'Resources the FHIR server reported it could not export in the last finished run (Bulk export error files): not in Purview until a --since backfill asks again',
    ['connector'],
    (g, s) => {
      if (s.lastRun) g.set({ connector: s.name }, s.lastRun.unexported ?? 0);
    },
  );
  gauge('bridge_last_run_failed', '1 when the last finished run failed or was left unfinished', ['connector'], (g, s) => {
    if (s.lastRun) g.set({ connector: s.name }, s.lastRun.state === 'completed' ? 0 : 1);
  });
  gauge('bridge_connector_healthy', '1 when the connector is ok, 0 when late or failing (as bridge status judges it)', ['connector'], (g, s) => {
    g.set({ connector: s.name }, s.health === 'ok' ? 1 : 0);
  });
}

/** The gauges of these statuses in Prometheus text format (node_exporter's textfile collector, the Pushgateway). */
export async function statusMetricsText(statuses: readonly ConnectorStatus[]): Promise<string> {
  const registry = new client.Registry();
  registerStatusGauges(registry, () => statuses);
  return registry.metrics();
}
