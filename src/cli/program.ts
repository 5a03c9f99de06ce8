/**
 * The command tree, built apart from argv and process so tests can inspect and run it.
 *
 * Each command is loaded on demand: the entry point loads only the command named on its command line (every command
 * for top-level help or an unknown name), so `bridge map` does not pay for Fastify, MSAL and the sandbox at start-up
 * (about 0.5 s of module loading measured on the CI machine, a fifth of a 200K-event `bridge map`).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { CliContext } from './context.js';

type CommandLoader = (ctx: CliContext) => Promise<Command>;

/** Every command, in the order top-level help lists them. */
const COMMANDS: ReadonlyArray<readonly [name: string, load: CommandLoader]> = [
  ['sync', async (ctx) => (await import('./commands/sync.js')).syncCommand(ctx)],
  ['sandbox', async (ctx) => (await import('./commands/sandbox.js')).sandboxCommand(ctx)],
  ['demo', async (ctx) => (await import('./commands/demo.js')).demoCommand(ctx)],
  ['keys', async (ctx) => (await import('./commands/keys.js')).keysCommand({ env: ctx.env, print: ctx.print, now: () => ctx.clock.now() })],
  ['map', async (ctx) => (await import('./commands/map.js')).mapCommand({ print: ctx.print })],
  [
    'push',
    async (ctx) => {
      const [{ pushCommand }, { openWritableStateStore }] = await Promise.all([import('./commands/push.js'), import('../composition/index.js')]);
      return pushCommand({ ...ctx, openStore: (stateDir) => openWritableStateStore(stateDir, ctx.clock) });
    },
  ],
  ['serve', async (ctx) => (await import('./commands/serve.js')).serveCommand(ctx)],
  ['doctor', async (ctx) => (await import('./commands/doctor.js')).doctorCommand(ctx)],
  ['token', async (ctx) => (await import('./commands/serve.js')).tokenCommand(ctx, process.stdin)],
  ['status', async (ctx) => (await import('./commands/status.js')).statusCommand(ctx)],
  ['runs', async (ctx) => (await import('./commands/runs.js')).runsCommand(ctx)],
  ['rejects', async (ctx) => (await import('./commands/rejects.js')).rejectsCommand(ctx)],
  ['state', async (ctx) => (await import('./commands/state.js')).stateCommand(ctx)],
];

/** The program with every command, or only `only` when it names one (what `bridge <command> …` needs). */
export async function buildProgram(ctx: CliContext, only?: string): Promise<Command> {
  const program = new Command('bridge')
    .description(
      'Epic FHIR → Microsoft Purview bridge: SMART backend-services pull of AuditEvents, mapped to Purview EHR connector rows, pushed in sequential blocks.',
    )
    .version(packageVersion(), '-V, --version', 'print the bridge version')
    .showHelpAfterError();
  const named = COMMANDS.filter(([name]) => name === only);
  for (const [, load] of named.length > 0 ? named : COMMANDS) program.addCommand(await load(ctx));
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
