/**
 * Cleanup that must not decide a run's outcome: what follows its completion (its watermark committed: pruning the
 * ledger, removing its files, telling the sinks), and removing a spool on the way. A failure there (a busy state
 * database, a file held open, a run log on a full disk) is a warning: thrown, it would mark a completed run failed, or
 * replace the error a failed run is reporting. The next run prunes and sweeps again.
 */
import type { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncEvents } from './events.js';
import type { RunCounts } from './state/index.js';

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

interface Announcer {
  readonly events: SyncEvents;
  readonly logger: Logger;
  readonly connector: string;
}

/**
 * `run_complete` to the sinks (run log, metrics, progress), after the run's record is final.
 * @param unexported - resources the source reported it could not deliver (a Bulk export's error files), when any.
 */
export function announceCompletion(deps: Announcer, runId: string, counts: RunCounts, unexported = 0): void {
  afterCompletion(deps.logger, runId, 'a listener of its completion (the run log, a metrics sink) failed', () =>
    deps.events.emit('run_complete', { runId, connector: deps.connector, counts, ...(unexported > 0 ? { unexported } : {}) }),
  );
}

/** `error` to the sinks, last: a listener's failure (the run log on the full disk that failed the run) must not hide the run's error. */
export function announceFailure(deps: Announcer, runId: string, error: BridgeError, resumable = false): void {
  warnOnFailure(deps.logger, runId, "a listener of the run's failure (the run log, a metrics sink) failed", () =>
    deps.events.emit('error', { runId, connector: deps.connector, code: error.code, message: error.message, ...(resumable ? { resumable } : {}) }),
  );
}

/** The warning when a run's failure cannot be written to the state (the sinks hear of it all the same). */
export const UNRECORDED =
  "the run's failure could not be written to the state database; the next run finds the run as it was left (a push resumes, a pull is closed and its window pulled again)";
