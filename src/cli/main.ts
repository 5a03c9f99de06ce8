/**
 * `bridge` entry point: the one place that touches process (argv, env, signals, exit code) and prints errors.
 */
import { CommanderError } from 'commander';
import { systemClock } from '../clock.js';
import { ERROR_CODES, toBridgeError } from '../errors.js';
import type { CliContext } from './context.js';
import { buildProgram } from './program.js';
import { translateScriptArgs } from './script-args.js';

/** Commander's codes for output the user asked for. */
const USAGE_SHOWN = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

const stop = new AbortController();
const abort = new AbortController();
let interrupts = 0;
for (const name of ['SIGINT', 'SIGTERM'] as const) {
  process.on(name, () => {
    interrupts += 1;
    // First signal: finish the block in flight and stop at that checkpoint. Second: abort now. Third: exit.
    if (interrupts === 1) stop.abort();
    else if (interrupts === 2) abort.abort();
    else process.exit(130);
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
    // Commander already printed its message (unknown option, missing argument) and the usage; help and version are not errors.
    process.exitCode = USAGE_SHOWN.has(error.code) ? 0 : ERROR_CODES.BRG_ERR_INPUT_INVALID.exit;
  } else {
    const bridgeError = toBridgeError(error);
    process.stderr.write(`error ${bridgeError.code}: ${bridgeError.message}\n  what to do: ${ERROR_CODES[bridgeError.code].fix}\n`);
    process.exitCode = bridgeError.exitCode;
  }
}
