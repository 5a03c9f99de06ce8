/** What every command gets from the entry point: the only place that knows about process, stdout and the environment. */
import type { Clock } from '../clock.js';

export interface CliContext {
  readonly env: NodeJS.ProcessEnv;
  readonly print: (line: string) => void;
  readonly clock: Clock;
  readonly stdout: NodeJS.WriteStream;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
}
