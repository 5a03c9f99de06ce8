/** Shared by `bridge sync` and `bridge demo`: open state, attach sinks, run one sync, close everything. */
import { join } from 'node:path';
import { buildSyncDeps, openWritableStateStore } from '../../composition/index.js';
import type { Config, ConnectorConfig } from '../../config/index.js';
import { uuidSource } from '../../ids.js';
import { createLogger } from '../../log.js';
import { SyncEvents } from '../../sync/events.js';
import { runSync, type SyncSummary } from '../../sync/pipeline.js';
import { attachRunLog } from '../../sync/run-log.js';
import type { CliContext } from '../context.js';
import { attachProgressBar } from '../reporters/progress.js';
import { attachTextReporter } from '../reporters/text.js';
import { abortAfterGrace } from '../stop-grace.js';

export interface SyncInvocation {
  readonly since?: string;
  readonly until?: string;
  readonly dryRunOut?: string;
  readonly progress?: boolean;
  /** No per-page lines on stdout (`--json` prints only the summary object there). */
  readonly quiet?: boolean;
}

export async function syncOnce(ctx: CliContext, config: Config, connector: ConnectorConfig, invocation: SyncInvocation): Promise<SyncSummary> {
  const logger = createLogger({ level: config.logLevel });
  const store = openWritableStateStore(config.stateDir, ctx.clock);
  const events = new SyncEvents();
  const detaches = [attachRunLog(events, join(config.stateDir, 'runs'), ctx.clock)];
  if (invocation.progress && ctx.stdout.isTTY) detaches.push(attachProgressBar(events, ctx.stdout, ctx.clock, connector.purview.blockRows));
  else if (!invocation.quiet) detaches.push(attachTextReporter(events, ctx.print, ctx.clock));
  // After the first signal, the block in flight has server.shutdownGraceMs to reach its checkpoint (src/cli/stop-grace.ts).
  const graceMs = config.server.shutdownGraceMs;
  const grace = abortAfterGrace(ctx, graceMs, () =>
    logger.warn(
      { connector: connector.name, graceMs },
      'stopping: the block in flight did not reach its checkpoint within server.shutdownGraceMs; aborting it',
    ),
  );
  detaches.push(() => grace.dispose());
  try {
    const deps = buildSyncDeps({ config, env: ctx.env, clock: ctx.clock, logger, events, store, newId: uuidSource, command: 'bridge sync' }, connector);
    return await runSync(deps, {
      trigger: 'cli',
      signal: grace.signal,
      stopSignal: ctx.stopSignal,
      ...(invocation.since ? { since: invocation.since } : {}),
      ...(invocation.until ? { until: invocation.until } : {}),
      ...(invocation.dryRunOut ? { dryRunOut: invocation.dryRunOut } : {}),
    });
  } finally {
    for (const detach of detaches) detach();
    store.close();
  }
}
