import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { findConnector } from '../../composition/index.js';
import { loadConfig } from '../../config/index.js';
import type { CliContext } from '../context.js';
import { formatSummary } from '../reporters/summary.js';
import { DEMO_SOURCES, type DemoSourceName, demoSource } from './demo-sources.js';
import { syncOnce } from './run-sync.js';
import { addSandboxDataOptions, backendFor, intFlag, loadSandbox, sandboxOptionsFrom } from './sandbox.js';

interface DemoFlags {
  dir: string;
  seed: string;
  events: string;
  patients: string;
  practitioners: string;
  blockRows: string;
  backend?: 'memory' | 'generated';
  source: DemoSourceName;
}

/** The main job end to end against the offline sandbox: start it, seed it, sync once, show what Purview's emulator accepted. */
export function demoCommand(ctx: CliContext): Command {
  return addSandboxDataOptions(new Command('demo'), 'state/demo')
    .description('Start the offline sandbox in-process, run a full sync against it, and compare what was sent with what the ingestion emulator accepted.')
    .option('--block-rows <n>', 'rows per upload block (small by default so the demo shows several sequential blocks)', '250')
    .addOption(new Option('--source <type>', 'where the connector reads the audit data').choices([...DEMO_SOURCES]).default('fhir-search'))
    .action(async (flags: DemoFlags) => {
      const { startSandbox, createRowDigest } = await loadSandbox('demo'); // loaded only by the commands that run it
      rmSync(flags.dir, { recursive: true, force: true });
      const options = sandboxOptionsFrom(flags);
      const backend = backendFor(flags.backend, options);
      // The emulator keeps a digest of the rows, not the rows: a million-row demo stays within the process's heap cap.
      const sandbox = await startSandbox({ ...options, backend, ingestRecord: 'digest' });
      try {
        // Spool files kept until the digest of what was written is taken, then removed (they hold the generated PHI).
        // The sandbox is on loopback with no EHR to protect: a large data set is pulled in big pages at full speed.
        const fast =
          backend === 'generated'
            ? { 'connectors.0.fhir.pageSize': 1000, 'connectors.0.fhir.requestsPerSecond': 1000, 'connectors.0.fhir.maxResultsPerSlice': 10_000_000 }
            : {};
        const source = await (await demoSource(flags.source))({ sandbox, createRowDigest, dir: flags.dir });
        const config = loadConfig({
          base: sandbox.config,
          env: ctx.env,
          flags: { 'connectors.0.purview.blockRows': intFlag('block-rows', flags.blockRows), retainFiles: true, ...fast, ...source.configFlags },
        });
        ctx.print(`sandbox up (${backend} backend, ${flags.source} source): FHIR ${sandbox.fhir.baseUrl}, ingestion ${sandbox.ingest.baseUrl}`);
        const summary = await syncOnce(ctx, config, findConnector(config, 'sandbox'), { ...source.window, progress: false });
        for (const line of formatSummary(summary)) ctx.print(line);
        const written = await source.written(config, summary);
        const accepted = sandbox.ingest.accepted(sandbox.ids.jobId);
        const received = sandbox.ingest.rowDigest(sandbox.ids.jobId);
        const headers = new Set(accepted.map((block) => block.header));
        ctx.print(
          `ingestion emulator accepted ${accepted.length} block(s), ${received.rows} rows; header on every block: ${headers.size === 1 ? 'yes' : 'NO'}`,
        );
        const same = written.rows === received.rows && written.sum === received.sum && written.xor === received.xor;
        ctx.print(
          same
            ? `verified: every row written was accepted exactly once (${written.rows} rows, digest ${written.sum}${written.xor})`
            : `MISMATCH: ${written.rows} rows written, ${received.rows} accepted; their digests differ`,
        );
        if (!same) process.exitCode = 1;
      } finally {
        await sandbox.close();
        rmSync(join(flags.dir, 'state', 'spool'), { recursive: true, force: true });
        rmSync(join(flags.dir, 'state', 'rejects'), { recursive: true, force: true });
      }
    });
}
