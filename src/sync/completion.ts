/**
 * What follows a run's completion (its watermark committed): pruning the ledger, removing its files, telling the sinks.
 * A failure there (a busy state database, a file held open, a run log on a full disk) is a warning, never the run's
 * outcome: recorded as a failure it would mark a completed run failed. The next run prunes and sweeps again.
 */
import type { Logger } from '../log.js';

export function afterCompletion(logger: Logger, runId: string, what: string, task: () => void): void {
  try {
    task();
  } catch (error) {
    const code = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : 'BRG_ERR_INTERNAL';
    logger.warn({ code, runId }, `the run completed, but ${what}`);
  }
}
