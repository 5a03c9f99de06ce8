import { Command } from 'commander';
import { loadConfig, profileFlag } from '../../config/index.js';
import { createLogger } from '../../log.js';
import { findConnector } from '../../sync/runtime.js';
import type { CliContext } from '../context.js';

export function doctorCommand(ctx: CliContext): Command {
  return new Command('doctor')
    .description('Check config, keys, EHR discovery and token, AuditEvent search, Purview token, job id and clock skew; prints the fix for each failure.')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--profile <name>', "apply a preset to the connector, e.g. epic-sandbox (fhir.epic.com's R4 base and token URL)")
    .option('--connector <name>', 'connector to check; default the first')
    .action(async (flags: { config?: string; connector?: string; profile?: string }) => {
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env, flags: profileFlag(flags) });
      const { formatChecks, runDoctor } = await import('../../doctor/index.js');
      const results = await runDoctor(
        { config, env: ctx.env, clock: ctx.clock, logger: createLogger({ level: 'silent' }) },
        findConnector(config, flags.connector),
      );
      formatChecks(results).forEach((line) => ctx.print(line));
      const failed = results.filter((r) => r.status === 'fail').length;
      ctx.print(failed ? `${failed} check(s) failed` : 'all checks passed');
      if (failed) process.exitCode = 1;
    });
}
