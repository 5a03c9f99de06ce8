import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import type { SandboxOptions } from '../../sandbox/index.js';
import type { CliContext } from '../context.js';

interface SandboxFlags {
  dir: string;
  seed: string;
  events: string;
  patients: string;
  practitioners: string;
  auditEvent?: boolean;
  backend?: 'memory' | 'generated';
}

/** Parses a positive integer flag with a message naming the flag. */
export function intFlag(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0, got "${value}"`);
  return n;
}

export function sandboxOptionsFrom(flags: SandboxFlags): SandboxOptions {
  return {
    dir: resolve(flags.dir),
    data: {
      seed: intFlag('seed', flags.seed),
      events: intFlag('events', flags.events),
      patients: intFlag('patients', flags.patients),
      practitioners: intFlag('practitioners', flags.practitioners),
    },
    ...(flags.auditEvent === false ? { listAuditEvent: false } : {}),
    ...(flags.backend ? { backend: flags.backend } : {}),
  };
}

export function addSandboxDataOptions(command: Command, defaultDir: string): Command {
  return command
    .option('--dir <dir>', 'where the sandbox writes its key, CA, secret and config', defaultDir)
    .option('--seed <n>', 'data generator seed (same seed, same data)', '42')
    .option('--events <n>', 'audit events to generate', '1000')
    .option('--patients <n>', 'patients to generate', '200')
    .option('--practitioners <n>', 'practitioners to generate', '25');
}

export function sandboxCommand(ctx: CliContext): Command {
  return addSandboxDataOptions(new Command('sandbox'), 'state/sandbox')
    .description('Start the offline sandbox (Epic-like SMART + FHIR, Entra ID, Purview ingestion) and print its URLs and a config to sync against it.')
    .option('--no-audit-event', 'imitate Epic\'s public server: /metadata lists no AuditEvent')
    .addOption(new Option('--backend <kind>', 'memory: real search over loaded resources; generated: serve the dataset lazily (millions of events)').choices(['memory', 'generated']))
    .action(async (flags: SandboxFlags) => {
      const { startSandbox } = await import('../../sandbox/index.js'); // the emulators stay out of `bridge sync`'s memory
      const sandbox = await startSandbox(sandboxOptionsFrom(flags));
      const window = sandbox.dataset.options;
      ctx.print(`Epic-like SMART token endpoint  ${sandbox.auth.tokenUrl}`);
      ctx.print(`FHIR R4 base                    ${sandbox.fhir.baseUrl}`);
      ctx.print(`Entra ID authority host         ${sandbox.entra.authorityHost}`);
      ctx.print(`Purview ingestion base          ${sandbox.ingest.baseUrl}`);
      ctx.print(`Data: ${window.events} events, ${window.patients} patients, ${window.practitioners} practitioners, ${window.start} → ${window.end}`);
      ctx.print(`Config written to ${sandbox.configPath} (secrets in 0600 files beside it). In another terminal:`);
      ctx.print(`  npm run bridge -- sync --config ${sandbox.configPath} --since ${window.start} --until ${window.end}`);
      ctx.print('Ctrl-C stops the sandbox.');
      await new Promise<void>((done) => ctx.stopSignal.addEventListener('abort', () => done(), { once: true }));
      await sandbox.close();
    });
}
