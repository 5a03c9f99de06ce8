import { Command } from 'commander';
import { rmSync } from 'node:fs';
import { loadConfig } from '../../config/index.js';
import { findConnector } from '../../sync/runtime.js';
import type { CliContext } from '../context.js';
import { formatSummary } from '../reporters/summary.js';
import { syncOnce } from './run-sync.js';
import { addSandboxDataOptions, intFlag, sandboxOptionsFrom } from './sandbox.js';

interface DemoFlags {
  dir: string;
  seed: string;
  events: string;
  patients: string;
  practitioners: string;
  blockRows: string;
}

/** The main job end to end against the offline sandbox: start it, seed it, sync once, show what Purview's emulator accepted. */
export function demoCommand(ctx: CliContext): Command {
  return addSandboxDataOptions(new Command('demo'), 'state/demo')
    .description('Start the offline sandbox in-process, run a full sync against it, and compare what was sent with what the ingestion emulator accepted.')
    .option('--block-rows <n>', 'rows per upload block (small by default so the demo shows several sequential blocks)', '250')
    .action(async (flags: DemoFlags) => {
      rmSync(flags.dir, { recursive: true, force: true });
      const { startSandbox } = await import('../../sandbox/index.js'); // loaded only by the commands that run it
      const sandbox = await startSandbox(sandboxOptionsFrom(flags));
      try {
        const config = loadConfig({ base: sandbox.config, env: ctx.env, flags: { 'connectors.0.purview.blockRows': intFlag('block-rows', flags.blockRows) } });
        const { start, end } = sandbox.dataset.options;
        ctx.print(`sandbox up: FHIR ${sandbox.fhir.baseUrl}, ingestion ${sandbox.ingest.baseUrl}`);
        const summary = await syncOnce(ctx, config, findConnector(config, 'sandbox'), { since: start, until: end, progress: false });
        formatSummary(summary).forEach((line) => ctx.print(line));
        const accepted = sandbox.ingest.accepted(sandbox.ids.jobId);
        const acceptedRows = accepted.reduce((n, block) => n + block.rows.length, 0);
        const headers = new Set(accepted.map((block) => block.header));
        ctx.print(`ingestion emulator accepted ${accepted.length} block(s), ${acceptedRows} rows; header on every block: ${headers.size === 1 ? 'yes' : 'NO'}`);
        ctx.print(acceptedRows === summary.counts.rows ? 'verified: every row written was accepted exactly once' : `MISMATCH: ${summary.counts.rows} rows written, ${acceptedRows} accepted`);
        if (acceptedRows !== summary.counts.rows) process.exitCode = 1;
      } finally {
        await sandbox.close();
      }
    });
}
