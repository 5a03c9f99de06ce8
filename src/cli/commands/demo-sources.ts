/**
 * What `bridge demo --source <type>` runs against the sandbox: each source says how to configure the connector, may
 * prepare the sandbox (drop files, …), and gives the digest of every row its run should have delivered, which the
 * demo compares with what the ingestion emulator accepted. Each source lives in its own module, loaded on demand.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Config } from '../../config/index.js';
import type { SyncSummary } from '../../sync/index.js';
import { runFiles } from '../../sync/run-files.js';
import type { RunningSandbox, SandboxModule, SandboxRowDigestValue } from './sandbox.js';

export interface DemoSourceRun {
  /** Config values (dotted paths) for the sandbox connector. */
  readonly configFlags: Readonly<Record<string, unknown>>;
  /** The window of the sync, when the source has one. */
  readonly window?: { readonly since: string; readonly until: string };
  /** The digest of every row the run was to deliver, exactly once each. */
  written(config: Config, summary: SyncSummary): Promise<SandboxRowDigestValue>;
}

export interface DemoSourceContext {
  readonly sandbox: RunningSandbox;
  readonly createRowDigest: SandboxModule['createRowDigest'];
  /** The demo's own folder (state, drop folders). */
  readonly dir: string;
}

export type DemoSourcePlan = (context: DemoSourceContext) => Promise<DemoSourceRun>;

export const DEMO_SOURCES = ['fhir-search', 'bulk-export', 'flat-file'] as const;
export type DemoSourceName = (typeof DEMO_SOURCES)[number];

export async function demoSource(name: DemoSourceName): Promise<DemoSourcePlan> {
  switch (name) {
    case 'fhir-search':
      return (await import('./demo-fhir-search.js')).plan;
    case 'bulk-export':
      return (await import('./demo-bulk-export.js')).plan;
    case 'flat-file':
      return (await import('./demo-flat-file.js')).plan;
  }
}

/**
 * The digest of a run's rows as its spool holds them (header skipped): what a pulling source's run was to deliver.
 * The spool is kept (retainFiles) until this digest is taken; the demo removes it afterwards.
 */
export async function spoolDigest(context: DemoSourceContext, config: Config, summary: SyncSummary): Promise<SandboxRowDigestValue> {
  const digest = context.createRowDigest();
  const lines = createInterface({ input: createReadStream(runFiles(config.stateDir, summary.runId).spoolPath, 'utf8'), crlfDelay: Infinity });
  let header = true;
  for await (const line of lines) {
    if (!header) digest.add(line);
    header = false;
  }
  return digest.value();
}
