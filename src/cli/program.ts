/** The command tree, built apart from argv and process so tests can inspect and run it. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { CliContext } from './context.js';
import { demoCommand } from './commands/demo.js';
import { extraCommands } from './commands/index.js';
import { sandboxCommand } from './commands/sandbox.js';
import { syncCommand } from './commands/sync.js';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('bridge')
    .description('Epic FHIR → Microsoft Purview bridge: SMART backend-services pull of AuditEvents, mapped to Purview EHR connector rows, pushed in sequential blocks.')
    .version(packageVersion(), '-V, --version', 'print the bridge version')
    .showHelpAfterError()
    .addCommand(syncCommand(ctx))
    .addCommand(sandboxCommand(ctx))
    .addCommand(demoCommand(ctx));
  for (const command of extraCommands(ctx)) program.addCommand(command);
  exitOverrideEverywhere(program);
  return program;
}

/**
 * Commander would end the process itself (exit 1 for an unknown option, 0 for a missing required one); instead it
 * throws a CommanderError the entry point turns into exit 2, the CLI's code for bad input, as the README's table says.
 */
function exitOverrideEverywhere(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) exitOverrideEverywhere(sub);
}

/** The version in package.json (one directory above src/ and dist/ alike). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}
