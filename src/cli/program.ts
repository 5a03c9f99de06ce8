/** The command tree, built apart from argv and process so tests can inspect and run it. */
import { Command } from 'commander';
import type { CliContext } from './context.js';
import { demoCommand } from './commands/demo.js';
import { extraCommands } from './commands/index.js';
import { sandboxCommand } from './commands/sandbox.js';
import { syncCommand } from './commands/sync.js';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('bridge')
    .description('Epic FHIR → Microsoft Purview bridge: SMART backend-services pull of AuditEvents, mapped to Purview EHR connector rows, pushed in sequential blocks.')
    .showHelpAfterError()
    .addCommand(syncCommand(ctx))
    .addCommand(sandboxCommand(ctx))
    .addCommand(demoCommand(ctx));
  for (const command of extraCommands(ctx)) program.addCommand(command);
  return program;
}
