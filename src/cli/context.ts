/** What every command gets from the entry point: the only place that knows about process, stdout and the environment. */
import type { Clock } from '../clock.js';

export interface CliContext {
  readonly env: NodeJS.ProcessEnv;
  readonly print: (line: string) => void;
  readonly clock: Clock;
  readonly stdout: NodeJS.WriteStream;
  /** Aborted on the second SIGINT/SIGTERM: stop at once. */
  readonly signal: AbortSignal;
  /** Aborted on the first SIGINT/SIGTERM: finish the block in flight, then stop at that checkpoint. */
  readonly stopSignal: AbortSignal;
}

/** The signing keys' folder when no config names one: `--keys-dir`, else $BRIDGE_KEYS_DIR, else `keys`. */
export function keysDirWithoutConfig(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env['BRIDGE_KEYS_DIR'] ?? 'keys';
}
