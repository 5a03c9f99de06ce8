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

/**
 * Every command, in the order top-level help lists them, and whether it handles SIGINT/SIGTERM itself (ctx.stopSignal
 * at the first, ctx.signal at the second): the others end at the first signal (src/cli/main.ts).
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: CommandLoader, handlesStop: boolean]> = [
  ['sync', async (ctx) => (await import('./commands/sync.js')).syncCommand(ctx), true],
  ['sandbox', async (ctx) => (await import('./commands/sandbox.js')).sandboxCommand(ctx), true],
  ['demo', async (ctx) => (await import('./commands/demo.js')).demoCommand(ctx), true],
  ['keys', async (ctx) => (await import('./commands/keys.js')).keysCommand({ env: ctx.env, print: ctx.print, now: () => ctx.clock.now() }), false],
  ['map', async (ctx) => (await import('./commands/map.js')).mapCommand({ print: ctx.print }), false],
  [
    'push',
    async (ctx) => {
      const [{ pushCommand }, { openWritableStateStore }] = await Promise.all([import('./commands/push.js'), import('../composition/index.js')]);
      return pushCommand({ ...ctx, openStore: (stateDir) => openWritableStateStore(stateDir, ctx.clock) });
    },
    true,
  ],
  ['serve', async (ctx) => (await import('./commands/serve.js')).serveCommand(ctx), true],
  ['doctor', async (ctx) => (await import('./commands/doctor.js')).doctorCommand(ctx), false],
  ['token', async (ctx) => (await import('./commands/serve.js')).tokenCommand(ctx, process.stdin), false],
  ['status', async (ctx) => (await import('./commands/status.js')).statusCommand(ctx), false],
  ['runs', async (ctx) => (await import('./commands/runs.js')).runsCommand(ctx), false],
  ['rejects', async (ctx) => (await import('./commands/rejects.js')).rejectsCommand(ctx), false],
  ['state', async (ctx) => (await import('./commands/state.js')).stateCommand(ctx), false],
];

/**
 * Whether the command `name` (the first word after `bridge`) stops at a checkpoint on SIGINT/SIGTERM by itself: sync,
 * push, serve, sandbox and demo. Any other word (another command, `--help`, a typo) ends at the first signal.
 */
export function handlesStop(name: string | undefined): boolean {
  return COMMANDS.some(([command, , handles]) => handles && command === name);
}

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
  configureEverywhere(program);
  return program;
}

/**
 * Commander would end the process itself (exit 1 for an unknown option, 0 for a missing required one); instead it
 * throws a CommanderError the entry point turns into exit 2, the CLI's code for bad input, as the README's table says.
 * And an unknown option is named without the value written in the same word (below). Subcommands added with
 * addCommand inherit neither: every command of the tree gets both.
 */
function configureEverywhere(command: Command): void {
  command.exitOverride();
  withholdUnknownOptionValues(command);
  for (const sub of command.commands) configureEverywhere(sub);
}

/**
 * Commander's own method reporting an unknown option, and its allowUnknownOption() setting (neither in its typings):
 * `error: unknown option '<word>'`, unless the command takes unknown words (`keys retire -- <kid>`).
 */
type UnknownOptionReporter = { unknownOption(flag: string): void; _allowUnknownOption?: boolean };

/**
 * Commander prints an unknown option's word whole: `--app-secret=S3CRET`, PowerShell's `-appSecret:S3CRET`, a secret
 * into the terminal, CI log or Task Scheduler history. Each command reports the option by its name only (commander's
 * message and suggestion, from the name), and a known option written with a value it cannot take so says, without
 * the value. `-AppSecret S3CRET` (two words) never reaches here with its value: commander reports the first word only.
 * `bridge push` also refuses these before commander (script-args.ts), naming the flag meant.
 */
function withholdUnknownOptionValues(command: Command): void {
  const reporter = command as unknown as UnknownOptionReporter;
  const report = reporter.unknownOption.bind(command);
  reporter.unknownOption = (flag: string) => {
    const written = optionWithValue(flag);
    if (!written || reporter._allowUnknownOption) return report(flag);
    const { name, separator } = written;
    const option = command.options.find((o) => o.long === name || o.short === name);
    if (!option) return report(name);
    command.error(
      option.required || option.optional
        ? `error: option '${option.flags}' takes its value as the next word or after '=', not after '${separator.trim() || ' '}' (the value is not shown)`
        : `error: option '${name}' takes no value (the value given is not shown)`,
      { code: 'commander.unknownOption' },
    );
  };
}

/**
 * A word that is an option written with its value in it (`--app-secret=S3CRET`, `-appSecret:S3CRET`): the option's name
 * and what separates the value, never the value; undefined for any other word (a kid has no "=", ":" or space).
 */
export function optionWithValue(word: string): { readonly name: string; readonly separator: string } | undefined {
  const match = /^(-[^=:\s]*)([=:\s])/.exec(word);
  return match ? { name: match[1] ?? '', separator: match[2] ?? '' } : undefined;
}

/** The version in package.json (one directory above src/ and dist/ alike). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}
