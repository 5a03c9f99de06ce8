/**
 * Checks a `bridge …` command line written in a deployment recipe or doc against the real command tree: the
 * (sub)command path and every long flag must exist. Shared by the test/ops tests (a support module, not a test file).
 */
import type { Command } from 'commander';
import { expect } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { systemClock } from '../../src/clock.js';

const program = await buildProgram({
  env: {},
  print: () => undefined,
  clock: systemClock,
  stdout: process.stdout,
  signal: new AbortController().signal,
  stopSignal: new AbortController().signal,
});

/** Returns the command the argv names, after checking that it and every long flag exist. */
export function assertBridgeArgs(args: readonly string[]): Command {
  let command: Command = program;
  let rest = [...args];
  for (;;) {
    const next = command.commands.find((c: Command) => c.name() === rest[0]);
    if (!next) break;
    command = next;
    rest = rest.slice(1);
  }
  expect(command, `bridge ${args.join(' ')}`).not.toBe(program);
  const flags = new Set(command.options.map((o) => o.long));
  for (const arg of rest.filter((a) => a.startsWith('--') && a !== '--')) expect(flags, `bridge ${args.join(' ')}: ${arg}`).toContain(arg.split('=')[0]);
  return command;
}
