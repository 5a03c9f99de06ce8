/**
 * The command tree's own rules, in process: which commands stop at a checkpoint on a signal (the entry point ends every
 * other at the first one), and an unknown option named without the value written in the same word.
 */
import { type Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, handlesStop } from '../../src/cli/program.js';
import { recordingContext } from './support.js';

describe('handlesStop', () => {
  it('is true for sync, push, serve, sandbox and demo only', () => {
    for (const name of ['sync', 'push', 'serve', 'sandbox', 'demo']) expect(handlesStop(name), name).toBe(true);
    for (const name of ['doctor', 'map', 'token', 'keys', 'status', 'runs', 'rejects', 'state', '--help', 'synk', undefined]) {
      expect(handlesStop(name), String(name)).toBe(false);
    }
  });
});

describe('an unknown option', () => {
  /** Runs `bridge <args>` in process: commander's error output and the CommanderError it threw. */
  async function refused(...args: string[]): Promise<{ output: string; error: CommanderError }> {
    const program = await buildProgram(
      recordingContext(),
      args.find((arg) => !arg.startsWith('-')),
    );
    let output = '';
    const quiet = (command: Command): void => {
      command.configureOutput({ writeErr: (text) => (output += text), writeOut: () => undefined });
      for (const sub of command.commands) quiet(sub);
    };
    quiet(program);
    const error = await program.parseAsync(args, { from: 'user' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CommanderError);
    return { output, error: error as CommanderError };
  }

  it('is named without the value after = or :, in the output and in the error alike', async () => {
    for (const [args, first] of [
      [['sync', '--app-secret=S3CRET'], "error: unknown option '--app-secret'"],
      [['sync', '-appSecret:S3CRET'], "error: unknown option '-appSecret'"],
      [['doctor', '--client_secret=S3CRET'], "error: unknown option '--client_secret'"],
      [['state', 'rename', '--password:S3CRET', 'a', 'b'], "error: unknown option '--password'"],
      [['--app-secret=S3CRET', 'sync'], "error: unknown option '--app-secret'"],
      [['sync', '--no-progress=S3CRET'], "error: option '--no-progress' takes no value (the value given is not shown)"],
      [['sync', '--since:S3CRET'], "error: option '--since <instant>' takes its value as the next word or after '=', not after ':' (the value is not shown)"],
    ] as const) {
      const { output, error } = await refused(...args);
      expect(output.split('\n')[0], args.join(' ')).toBe(first);
      expect(output + error.message, args.join(' ')).not.toContain('S3CRET');
      expect(error.code).toBe('commander.unknownOption');
    }
  });

  it('keeps commander suggestion, made from the name', async () => {
    const { output } = await refused('sync', '--sinse=S3CRET');
    expect(output).toContain("error: unknown option '--sinse'\n(Did you mean --since?)");
  });
});
