/**
 * `bridge status`: each connector at a glance from the state directory, the same judgement as the operator page and
 * the metrics (src/server/status.ts). Exit 0 when every connector is ok, 1 when one is late or failing, so a
 * monitoring check (Nagios, a systemd OnFailure=, a Kubernetes probe) can run it as is.
 */
import { Command } from 'commander';
import { findConnector, leasePolicy } from '../../composition/index.js';
import { loadConfig } from '../../config/index.js';
import { type ConnectorStatus, formatDuration, statusConnectors, statusReport } from '../../server/status.js';
import { openExistingStateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';

export interface StatusCommandOptions {
  /** Sets the process exit code (1 when unhealthy); tests pass their own. */
  readonly setExitCode?: (code: number) => void;
}

export function statusCommand(ctx: CliContext, options: StatusCommandOptions = {}): Command {
  const setExitCode =
    options.setExitCode ??
    ((code: number) => {
      process.exitCode = code;
    });
  return new Command('status')
    .description(
      'Each connector at a glance: health (ok, late, failing), watermark, lag, last run, last success, next scheduled run. Exits 1 when a connector is late or failing.',
    )
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--connector <name>', 'only this connector')
    .option('--json', 'print the status as one JSON object (the body of GET /v1/status)')
    .action((flags: { config?: string; connector?: string; json?: boolean }) => {
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env });
      const only = flags.connector ? findConnector(config, flags.connector).name : undefined;
      const now = ctx.clock.now();
      const store = openExistingStateStore(config.stateDir, ctx.clock, { upgrade: false });
      try {
        const connectors = statusConnectors(config, now).filter((c) => only === undefined || c.name === only);
        // Next run times assume `bridge serve` runs the schedules; cron deployments see their own timer instead.
        // A lease of a process of this host that is gone shows no run in flight: the next run takes it over at once.
        const { isStale } = leasePolicy(config.state.leaseTtlSeconds * 1000, 'bridge status');
        const report = statusReport(connectors, store, now, { schedules: true, isStale });
        if (flags.json) ctx.print(JSON.stringify(report));
        else for (const status of report.connectors) for (const line of statusLines(status, now)) ctx.print(line);
        setExitCode(report.healthy ? 0 : 1);
      } finally {
        store.close();
      }
    });
}

const HEALTH = { ok: 'OK', late: 'LATE', failing: 'FAILING' } as const;

export function statusLines(s: ConnectorStatus, nowMs: number): string[] {
  const since = (iso: string): string => `${iso} (${formatDuration((nowMs - Date.parse(iso)) / 1000)} ago)`;
  const lines = [`${s.name}  ${HEALTH[s.health]}  ${s.reason}`];
  lines.push(`  watermark     ${s.watermark ? since(s.watermark) : 'none: no run has completed'}`);
  lines.push(`  lag           ${s.lagSeconds === undefined ? '-' : formatDuration(s.lagSeconds)} (late after ${formatDuration(s.lateAfterSeconds)})`);
  if (s.lastRun) {
    const r = s.lastRun;
    const took = r.durationSeconds === undefined ? '' : `, took ${formatDuration(r.durationSeconds)}`;
    lines.push(`  last run      ${r.id} ${r.state} ${since(r.finishedAt ?? r.startedAt)}: ${r.counts.rows} rows, ${r.counts.rejects} rejected${took}`);
    if (r.error) lines.push(`                ${r.error.code}: ${r.error.message}`);
  } else {
    lines.push('  last run      none');
  }
  lines.push(`  last success  ${s.lastSuccess ? `${since(s.lastSuccess.finishedAt)}, run ${s.lastSuccess.runId}` : 'never'}`);
  const schedule = `${s.schedule.cron}${s.schedule.timezone ? ` ${s.schedule.timezone}` : ''}`;
  lines.push(
    `  next run      ${s.nextRunAt ? `${s.nextRunAt} (schedule ${schedule}, when bridge serve runs it)` : `not scheduled (schedule.enabled is false)`}`,
  );
  if (s.inFlight) lines.push(`  in flight     ${s.inFlight.runId ?? 'a run'} by ${s.inFlight.holder}, since ${s.inFlight.since}`);
  return lines;
}
