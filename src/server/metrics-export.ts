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
 * The Pushgateway's base URL, checked before the run: http(s), no query, and no credentials (a user:password in a
 * command-line URL is visible to every user of the host and would be quoted by any error about it).
 */
export function pushgatewayBase(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', '--pushgateway is not a URL; give the gateway as http(s)://host:9091.');
  }
  if (url.username !== '' || url.password !== '') {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `--pushgateway carries credentials, which a command line must not: give ${url.protocol}//${url.host} without them, and reach a gateway that needs a login through a local proxy that adds it.`,
    );
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `--pushgateway must be an http(s) URL without query or fragment, like ${url.protocol}//${url.host}.`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * PUT replaces the group's metrics: one group per connector (job "bridge", label connector), so CronJobs of
 * different connectors do not overwrite each other.
 */
export async function pushToGateway(gateway: string, connector: string, text: string, fetcher: typeof fetch, timeoutMs = 10_000): Promise<void> {
  const baseUrl = pushgatewayBase(gateway);
  const url = `${baseUrl}/metrics/job/bridge/connector/${encodeURIComponent(connector)}`;
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
