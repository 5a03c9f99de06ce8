import { Command, InvalidArgumentError } from 'commander';
import { findConnector } from '../../composition/index.js';
import { CONFIG_PATH_ENV, type Config, loadConfig, profileFlag } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { type CliContext, keysDirWithoutConfig } from '../context.js';

interface DoctorFlags {
  config?: string;
  connector?: string;
  profile?: string;
  clientId?: string;
  keysDir?: string;
  sampleEvents?: number;
  sampleHours?: number;
  sampleUntil?: string;
}

export function doctorCommand(ctx: CliContext): Command {
  return new Command('doctor')
    .description(
      'Check config, keys, EHR discovery and token, AuditEvent search, Purview token, job id and clock skew; then map a sample of recent ' +
        "AuditEvents and print every column's fill rate. Prints the fix for each failure or mostly empty column.",
    )
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--profile <name>', "apply a preset to the first connector, e.g. epic-sandbox (fhir.epic.com's R4 base, token URL and scope)")
    .option('--connector <name>', 'connector to check; default the first')
    .option('--client-id <id>', 'with --profile and no config file: the SMART client id to check (the EHR side only)')
    .option('--keys-dir <dir>', 'with --profile and no config file: the signing keys (default $BRIDGE_KEYS_DIR, else keys)')
    .option('--sample-events <n>', 'AuditEvents mapped for the fill check, newest first (default 200)', wholeNumber)
    .option('--sample-hours <h>', 'how far back the fill check looks (default 24)', wholeNumber)
    .option('--sample-until <instant>', 'end of the fill check window, an ISO instant (default now)', instant)
    .action(async (flags: DoctorFlags) => {
      const standalone = !flags.config && !ctx.env[CONFIG_PATH_ENV];
      const config = standalone
        ? standaloneConfig(flags, ctx.env)
        : loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env, flags: profileFlag(flags) });
      const { formatChecks, runDoctor } = await import('../../doctor/index.js');
      const sample = {
        ...(flags.sampleEvents !== undefined ? { events: flags.sampleEvents } : {}),
        ...(flags.sampleHours !== undefined ? { lookbackHours: flags.sampleHours } : {}),
        ...(flags.sampleUntil !== undefined ? { until: flags.sampleUntil } : {}),
      };
      const results = await runDoctor(
        { config, env: ctx.env, clock: ctx.clock, logger: createLogger({ level: 'silent' }), sample, purviewConfigured: !standalone },
        findConnector(config, flags.connector),
      );
      for (const line of formatChecks(results)) ctx.print(line);
      const failed = results.filter((r) => r.status === 'fail').length;
      const warned = results.filter((r) => r.status === 'warn').length;
      ctx.print(failed ? `${failed} check(s) failed` : warned ? `all checks passed, ${warned} with a warning` : 'all checks passed');
      if (failed) process.exitCode = 1;
    });
}

/**
 * `bridge doctor --profile epic-sandbox --client-id X` with no config file: a one-connector config of the profile's
 * endpoints and that client id, to check the EHR side before anything else is set up. Purview is not configured.
 */
function standaloneConfig(flags: DoctorFlags, env: NodeJS.ProcessEnv): Config {
  if (!flags.profile || !flags.clientId) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      'No config file: give --config <file> (or set BRIDGE_CONFIG), or check the EHR side alone with --profile epic-sandbox --client-id <id>.',
    );
  }
  const smart = { clientId: flags.clientId, keysDir: keysDirWithoutConfig(flags.keysDir, env) };
  // The schema requires a Purview section; these stand-ins are never used (purviewConfigured: false skips those checks).
  const purview = { tenantId: 'not-configured', appId: 'not-configured', jobId: 'not-configured', secret: { env: 'PURVIEW_APP_SECRET' } };
  return loadConfig({ base: { connectors: [{ name: 'doctor', profile: flags.profile, smart, purview }] }, env });
}

function wholeNumber(value: string): number {
  if (!/^\d{1,7}$/.test(value)) throw new InvalidArgumentError('expected a whole number.');
  return Number(value);
}

function instant(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new InvalidArgumentError('expected an ISO instant such as 2026-11-02T00:00:00Z.');
  }
  return value;
}
