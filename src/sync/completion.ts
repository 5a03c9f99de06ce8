/**
 * Cleanup that must not decide a run's outcome: what follows its completion (its watermark committed: pruning the
 * ledger, removing its files, telling the sinks), and removing a spool on the way. A failure there (a busy state
 * database, a file held open, a run log on a full disk) is a warning: thrown, it would mark a completed run failed, or
 * replace the error a failed run is reporting. The next run prunes and sweeps again.
 */
import type { Logger } from '../log.js';

/** Runs `task`; a failure is logged as `message`, with its code, instead of thrown. */
export function warnOnFailure(logger: Logger, runId: string, message: string, task: () => void): void {
  try {
    task();
  } catch (error) {
    const code = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : 'BRG_ERR_INTERNAL';
    logger.warn({ code, runId }, message);
  }
}

export function afterCompletion(logger: Logger, runId: string, what: string, task: () => void): void {
  warnOnFailure(logger, runId, `the run completed, but ${what}`, task);
}
