import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { findConnector, openWritableStateStore } from '../../composition/index.js';
import { type Config, type ConnectorConfig, loadConfig, profileFlag } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { createDispatcher, fetchVia, resolveNetwork } from '../../net/index.js';
import { pushgatewayBase, pushToGateway, writeMetricsFile } from '../../server/metrics-export.js';
import { statusConnectors, statusReport } from '../../server/status.js';
import { statusMetricsText } from '../../server/status-metrics.js';
import type { SyncSummary } from '../../sync/pipeline.js';
import { runFiles } from '../../sync/run-files.js';
import type { CliContext } from '../context.js';
import { formatSummary, processStats } from '../reporters/summary.js';
import { syncOnce } from './run-sync.js';

interface SyncFlags {
  config?: string;
  profile?: string;
  connector?: string;
  since?: string;
  until?: string;
  dryRun?: boolean;
  out?: string;
  progress: boolean;
  json?: boolean;
  metricsFile?: string;
  pushgateway?: string;
}

export function syncCommand(ctx: CliContext): Command {
  return new Command('sync')
    .description('One sync run: resume any unfinished push, then pull → map → spool → push the next window (for cron, systemd timers, Kubernetes CronJobs).')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--profile <name>', "apply a preset to the first connector, e.g. epic-sandbox (fhir.epic.com's R4 base, token URL and scope)")
    .option('--connector <name>', 'connector to run; default the first in the config')
    .option('--since <instant>', 'window start (ISO 8601), for backfills')
    .option('--until <instant>', 'window end (ISO 8601, exclusive)')
    .option('--dry-run', 'write the connector file and push nothing (needs --out)')
    .option('--out <file>', 'connector file to write with --dry-run')
    .addOption(new Option('--no-progress', 'plain lines even on a terminal'))
    .option('--json', "print only the run summary, as one JSON object (counts, reasons, the process's peak RSS and CPU time)")
    .option(
      '--metrics-file <file>',
      "after the run (also a failed one) write lag, last success, run duration and rows by outcome for node_exporter's textfile collector (e.g. /var/lib/node_exporter/textfile/bridge.prom)",
    )
    .option('--pushgateway <url>', 'after the run (also a failed one) push the same metrics to a Prometheus Pushgateway (job "bridge", grouped by connector)')
    .action(async (flags: SyncFlags) => {
      if (flags.dryRun && !flags.out) throw new BridgeError('BRG_ERR_INPUT_INVALID', '--dry-run needs --out <file> for the connector file.');
      if (flags.pushgateway) pushgatewayBase(flags.pushgateway); // refused before the run, not after it
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env, flags: profileFlag(flags) });
      const connector = findConnector(config, flags.connector);
      let summary: SyncSummary;
      try {
        summary = await syncOnce(ctx, config, connector, {
          ...(flags.since ? { since: flags.since } : {}),
          ...(flags.until ? { until: flags.until } : {}),
          ...(flags.dryRun && flags.out ? { dryRunOut: resolve(flags.out) } : {}),
          progress: flags.progress && !flags.json,
          quiet: flags.json === true,
        });
      } finally {
        // A failed run is what the metrics must show most of all (last success stays old, the last run failed).
        if (flags.metricsFile || flags.pushgateway) await exportMetrics(ctx, config, connector, flags);
      }
      const withPath = (run: SyncSummary) => {
        const rejects = rejectsOf(config, run);
        return rejects ? { rejectsPath: rejects.path } : {};
      };
      if (flags.json) {
        const resumed = summary.resumed ? { resumed: { ...summary.resumed, ...withPath(summary.resumed) } } : {};
        ctx.print(JSON.stringify({ ...summary, ...withPath(summary), ...resumed, process: processStats() }));
      } else for (const line of formatSummary(summary, (run) => rejectsOf(config, run))) ctx.print(line);
    });
}

/** Where the run's rejects are kept (they hold PHI), when it rejected rows and the file is still there. */
function rejectsOf(config: Config, summary: SyncSummary): { path: string; keptDays: number } | undefined {
  if (summary.counts.rejects === 0 || summary.dryRunOut) return undefined;
  const path = runFiles(config.stateDir, summary.runId).rejectsPath;
  return existsSync(path) ? { path: resolve(path), keptDays: config.retention.rejectsDays } : undefined;
}

/** The connector's status gauges after the run; a failure to deliver them is a warning, never the run's outcome. */
async function exportMetrics(ctx: CliContext, config: Config, connector: ConnectorConfig, flags: SyncFlags): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  const warn = (error: unknown, what: string): void =>
    logger.warn({ code: error instanceof BridgeError ? error.code : 'BRG_ERR_INTERNAL' }, error instanceof Error ? error.message : what);
  let text: string;
  try {
    const store = openWritableStateStore(config.stateDir, ctx.clock);
    try {
      const now = ctx.clock.now();
      const connectors = statusConnectors(config, now).filter((c) => c.name === connector.name);
      text = await statusMetricsText(statusReport(connectors, store, now, { schedules: false }).connectors);
    } finally {
      store.close();
    }
  } catch (error) {
    return warn(error, 'metrics not exported: the state could not be read');
  }
  if (flags.metricsFile) {
    try {
      writeMetricsFile(resolve(flags.metricsFile), text);
    } catch (error) {
      warn(error, 'metrics file not written');
    }
  }
  if (flags.pushgateway) {
    const dispatcher = createDispatcher(resolveNetwork(config.network, ctx.env));
    try {
      await pushToGateway(flags.pushgateway, connector.name, text, fetchVia(dispatcher));
    } catch (error) {
      warn(error, 'metrics not pushed');
    } finally {
      await dispatcher.close();
    }
  }
}
