/**
 * `bridge rejects <run>`: prints a run's rejects file (NDJSON, one line per rejected row: the AuditEvent id, an opaque
 * patient reference, the reason and column). Rows given up after Purview refused them (`purview-refused`) carry the row as
 * it was sent, patient and employee values included: PHI. Redirect it to a private file, never into a ticket or a log.
 * Completed runs keep it retention.rejectsDays; when it is gone the error says why. A run still in progress has none to
 * print yet (rows are still added to it).
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { Command } from 'commander';
import { loadConfig } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { rejectsFinal, rejectsGone, rejectsUnfinished, runView } from '../../server/run-view.js';
import { openExistingStateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';
import { findRun } from '../find-run.js';

export interface RejectsCommandOptions {
  /** Where the NDJSON goes (default: the context's stdout). */
  readonly out?: NodeJS.WritableStream;
}

export function rejectsCommand(ctx: CliContext, options: RejectsCommandOptions = {}): Command {
  return new Command('rejects')
    .description(
      "Print a run's rejected rows as NDJSON (event id, patient reference, reason, column; a row given up after Purview refused it, as sent). May hold PHI: redirect to a private file.",
    )
    .argument('<run>', 'run id, or its first 8 or more characters (as `bridge runs` shows it)')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .action(async (id: string, flags: { config?: string }) => {
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env });
      const store = openExistingStateStore(config.stateDir, ctx.clock, { upgrade: false });
      let path: string;
      try {
        const run = findRun(store, id);
        // A run still pulling or pushing adds rows yet (those Purview refused, as sent): a partial file taken for whole.
        if (!rejectsFinal(run)) throw new BridgeError('BRG_ERR_RUN_IN_PROGRESS', rejectsUnfinished(run));
        const view = runView(run, { retentionDays: config.retention.rejectsDays, retainFiles: config.retainFiles });
        if (!view.rejectsAvailable || !view.rejectsPath) throw new BridgeError('BRG_ERR_INPUT_INVALID', rejectsGone(run, config.retention.rejectsDays));
        path = view.rejectsPath;
      } finally {
        store.close();
      }
      const out = options.out ?? ctx.stdout;
      for await (const chunk of createReadStream(path)) {
        if (!out.write(chunk as Buffer)) await once(out, 'drain');
      }
    });
}
