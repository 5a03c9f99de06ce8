/**
 * `bridge` entry point: the one place that touches process (argv, env, signals, exit code) and prints errors.
 */
import { CommanderError } from 'commander';
import { systemClock } from '../clock.js';
import { ERROR_CODES, toBridgeError } from '../errors.js';
import type { CliContext } from './context.js';
import { buildProgram, handlesStop } from './program.js';
import { translateScriptArgs } from './script-args.js';

/** A reader that stopped reading (`bridge rejects … | head`): the output was wanted only that far, no error. */
function isClosedPipe(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
}
process.stdout.on('error', (error) => {
  if (!isClosedPipe(error)) throw error;
  process.exit(process.exitCode ?? 0);
});

const stop = new AbortController();
const abort = new AbortController();
// Only the commands that stop at a checkpoint (sync, push, serve, sandbox, demo) wait for one: any other (doctor, map,
// status, `token hash` reading stdin…) listens to neither signal and ends at the first, cancelled (130).
const graceful = handlesStop(process.argv[2]);
let interrupts = 0;
for (const name of ['SIGINT', 'SIGTERM'] as const) {
  process.on(name, () => {
    interrupts += 1;
    // First signal: finish the block in flight and stop at that checkpoint. Second: abort now. Third: exit.
    if (!graceful || interrupts > 2) process.exit(130);
    else if (interrupts === 1) stop.abort();
    else abort.abort();
  });
}

const ctx: CliContext = {
  env: process.env,
  print: (line) => process.stdout.write(`${line}\n`),
  clock: systemClock,
  stdout: process.stdout,
  signal: abort.signal,
  stopSignal: stop.signal,
};

try {
  const program = await buildProgram(ctx, process.argv[2]);
  // `bridge push` also takes sample_script.ps1's parameter names, and names the flag meant when one is misspelt.
  const push = program.commands.find((command) => command.name() === 'push');
  const argv =
    process.argv[2] === 'push' && push
      ? [
          ...process.argv.slice(0, 3),
          ...translateScriptArgs(
            process.argv.slice(3),
            push.options.flatMap((option) => (option.long ? [option.long] : [])),
          ),
        ]
      : process.argv;
  await program.parseAsync(argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander already printed its message (unknown option, missing argument) and the usage. Help and version asked
    // for exit 0; help shown for a missing subcommand (`bridge state`) is a usage mistake, as in a cron line.
    process.exitCode = error.exitCode === 0 ? 0 : ERROR_CODES.BRG_ERR_INPUT_INVALID.exit;
    // Every failure ends with its code and what to do, as the README says: this one's words are commander's, above.
    if (error.exitCode !== 0) {
      process.stderr.write(
        `error BRG_ERR_INPUT_INVALID: the command line was refused (${commanderReason(error.code)})\n  what to do: ${ERROR_CODES.BRG_ERR_INPUT_INVALID.fix} \`bridge <command> --help\` lists its flags.\n`,
      );
    }
  } else if (isClosedPipe(error)) {
    process.exitCode = 0;
  } else {
    const bridgeError = toBridgeError(error);
    process.stderr.write(`error ${bridgeError.code}: ${bridgeError.message}\n  what to do: ${ERROR_CODES[bridgeError.code].fix}\n`);
    process.exitCode = bridgeError.exitCode;
  }
}

/** `commander.unknownOption` → "unknown option"; the help shown for a command without its subcommand says so. */
function commanderReason(code: string): string {
  const name = code.replace(/^commander\./, '');
  return name === 'help' ? 'no subcommand given' : name.replace(/([A-Z])/g, ' $1').toLowerCase();
}
