/** A CLI context that records what a command prints, with a clock and stdout the test controls. */
import { PassThrough } from 'node:stream';
import type { CliContext } from '../../src/cli/context.js';
import { type Clock, systemClock } from '../../src/clock.js';

export interface RecordingContext extends CliContext {
  readonly printed: string[];
  /** What went to stdout as bytes (the rejects NDJSON, a progress bar). */
  written(): string;
}

export function recordingContext(options: { clock?: Clock; env?: NodeJS.ProcessEnv; tty?: boolean } = {}): RecordingContext {
  const printed: string[] = [];
  const stream = new PassThrough();
  let bytes = '';
  stream.on('data', (chunk: Buffer) => (bytes += chunk.toString('utf8')));
  // cli-progress draws only on a terminal: a stream that says it is one, 120 columns wide.
  Object.assign(stream, { isTTY: options.tty ?? false, columns: 120 });
  return {
    env: options.env ?? {},
    clock: options.clock ?? systemClock,
    printed,
    written: () => bytes,
    print: (line) => printed.push(line),
    stdout: stream as unknown as NodeJS.WriteStream,
    signal: new AbortController().signal,
    stopSignal: new AbortController().signal,
  };
}
