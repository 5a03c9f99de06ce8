import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { BridgeError } from '../../errors.js';
import { loadConfig, profileFlag } from '../../config/index.js';
import { findConnector } from '../../composition/index.js';
import type { CliContext } from '../context.js';
import { formatSummary } from '../reporters/summary.js';
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
}

export function syncCommand(ctx: CliContext): Command {
  return new Command('sync')
    .description('One sync run: resume any unfinished push, then pull → map → spool → push the next window (for cron, systemd timers, Kubernetes CronJobs).')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--profile <name>', "apply a preset to the connector, e.g. epic-sandbox (fhir.epic.com's R4 base and token URL)")
    .option('--connector <name>', 'connector to run; default the first in the config')
    .option('--since <instant>', 'window start (ISO 8601), for backfills')
    .option('--until <instant>', 'window end (ISO 8601, exclusive)')
    .option('--dry-run', 'write the connector file and push nothing (needs --out)')
    .option('--out <file>', 'connector file to write with --dry-run')
    .addOption(new Option('--no-progress', 'plain lines even on a terminal'))
    .option('--json', 'print only the run summary, as one JSON object (counts, reasons, the process\'s peak RSS and CPU time)')
    .action(async (flags: SyncFlags) => {
      if (flags.dryRun && !flags.out) throw new BridgeError('BRG_ERR_INPUT_INVALID', '--dry-run needs --out <file> for the connector file.');
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env, flags: profileFlag(flags) });
      const connector = findConnector(config, flags.connector);
      const summary = await syncOnce(ctx, config, connector, {
        ...(flags.since ? { since: flags.since } : {}),
        ...(flags.until ? { until: flags.until } : {}),
        ...(flags.dryRun && flags.out ? { dryRunOut: resolve(flags.out) } : {}),
        progress: flags.progress && !flags.json,
        quiet: flags.json === true,
      });
      if (flags.json) ctx.print(JSON.stringify({ ...summary, process: processStats() }));
      else formatSummary(summary).forEach((line) => ctx.print(line));
    });
}

/** What the run cost this process, for capacity planning (and the end-to-end benchmark). */
function processStats(): { peakRssMb: number; cpuUserSeconds: number; cpuSystemSeconds: number } {
  const usage = process.resourceUsage();
  return { peakRssMb: Math.round(usage.maxRSS / 102.4) / 10, cpuUserSeconds: usage.userCPUTime / 1e6, cpuSystemSeconds: usage.systemCPUTime / 1e6 };
}
