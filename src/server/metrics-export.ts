/**
 * Status metrics for deployments without `bridge serve` (cron, systemd timers, Kubernetes CronJobs): after a one-shot
 * `bridge sync`, written for node_exporter's textfile collector or pushed to a Prometheus Pushgateway. The same
 * gauges as the service's /metrics (status-metrics.ts), read from the state the run left.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { BridgeError } from '../errors.js';

/**
 * Writes atomically (a temporary file, then rename): the collector must never read half a file. World-readable on
 * purpose: node_exporter runs as another user, and the file holds counts and connector names only.
 */
export function writeMetricsFile(path: string, text: string, pid: number = process.pid): void {
  const temporary = `${path}.${pid}.tmp`;
  try {
    writeFileSync(temporary, text, { mode: 0o644 });
    renameSync(temporary, path);
  } catch (cause) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `--metrics-file: cannot write ${path}.`, { cause, details: { path } });
  }
}

/**
 * PUT replaces the group's metrics: one group per connector (job "bridge", label connector), so CronJobs of
 * different connectors do not overwrite each other.
 */
export async function pushToGateway(baseUrl: string, connector: string, text: string, fetcher: typeof fetch, timeoutMs = 10_000): Promise<void> {
  const url = `${baseUrl.replace(/\/+$/, '')}/metrics/job/bridge/connector/${encodeURIComponent(connector)}`;
  let response: Response;
  try {
    response = await fetcher(url, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain; version=0.0.4' },
      body: text,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `--pushgateway: ${baseUrl} did not answer.`, { cause, details: { url: baseUrl } });
  }
  await response.arrayBuffer().catch(() => undefined);
  if (!response.ok)
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `--pushgateway: ${baseUrl} answered HTTP ${response.status}.`, {
      details: { url: baseUrl, status: response.status },
    });
}
