/**
 * Runs syncs for the service: at most one in flight per connector (HTTP trigger and scheduler alike), each with its
 * own AbortController so shutdown can stop them at a checkpoint.
 */
import { BridgeError, toBridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncRequest, SyncSummary } from '../sync/pipeline.js';
import type { RunTrigger } from '../sync/state/index.js';

/** Runs one sync of a connector; the service builds it from buildSyncDeps + runSync, tests may pass their own. */
export type ConnectorSync = (connector: string, request: SyncRequest) => Promise<SyncSummary>;

export interface SyncRunner {
  /** Starts a run; resolves with its id once it is recorded. Throws BRG_ERR_RUN_IN_PROGRESS while one is in flight. */
  start(connector: string, options: { trigger: RunTrigger; since?: string | undefined; until?: string | undefined }): Promise<StartedRun>;
  isRunning(connector: string): boolean;
  /**
   * The end of the connector's run in flight when it does not pull up to now, else undefined: a 'resume' pulls nothing
   * new, and a run given an explicit `until` stops there (a backfill of a past window; the watermark never moves back).
   * A run to now, its `since` explicit or not, covers what a schedule tick would pull.
   */
  endOfRunShortOfNow(connector: string): Promise<void> | undefined;
  /** Stops every in-flight run at its next checkpoint; aborts those still running after `graceMs`, or once `now` aborts. */
  drain(graceMs: number, now?: AbortSignal): Promise<void>;
}

/**
 * The first run a start recorded. `resumed`: an unfinished run of the connector, whose push this start finishes first;
 * the run of the requested window follows it under another id (listed by GET /v1/runs).
 */
export interface StartedRun {
  readonly runId: string;
  readonly resumed: boolean;
}

/** What the service learns of runs that leave no run record behind (nothing else would tell of them). */
export interface RunnerHooks {
  /**
   * A run of the usual window (a schedule tick, "Sync now") failed before its run record existed: a missing secret, a
   * window refused before the ledger's horizon, a build error. A run given its own window is left out when its refusal
   * came before any run was recorded: it is about that request, and its caller has the answer (a 400). Not when the
   * caller was answered with an unfinished run resumed first (a 202 `resumed: true`) and the window asked for then never
   * got a run of its own (the resumed push failed or was stopped, or the window was refused after it): nothing else
   * tells that caller, so it is reported here, the error's code with a message naming the window to ask for again.
   */
  readonly onStartFailure?: (connector: string, error: BridgeError) => void;
  /** A scheduled run did not start because another process or replica holds the connector's lease. */
  readonly onScheduleSkip?: (connector: string) => void;
}

export function createSyncRunner(sync: ConnectorSync, logger: Logger, hooks: RunnerHooks = {}): SyncRunner {
  const inFlight = new Map<string, { done: Promise<void>; shortOfNow: boolean; stop: AbortController; abort: AbortController }>();
  // Set by drain: a trigger still on its way when shutdown began must not start a run the drain never sees.
  let closing = false;
  return {
    start(connector, options) {
      if (closing) {
        return Promise.reject(
          new BridgeError('BRG_ERR_ABORTED', 'The service is shutting down; start the sync again once it is back.', { details: { connector } }),
        );
      }
      if (inFlight.has(connector)) {
        return Promise.reject(new BridgeError('BRG_ERR_RUN_IN_PROGRESS', `A sync of connector "${connector}" is already running.`, { details: { connector } }));
      }
      const stop = new AbortController();
      const abort = new AbortController();
      let reportId: (started: StartedRun) => void = () => undefined;
      let reportFailure: (error: unknown) => void = () => undefined;
      const runId = new Promise<StartedRun>((resolve, reject) => {
        reportId = resolve;
        reportFailure = reject;
      });
      const run: StartedState = {
        connector,
        trigger: options.trigger,
        window: options.since || options.until ? { since: options.since, until: options.until } : undefined,
        recorded: false,
        answered: false,
        ownStarted: false,
      };
      const request: SyncRequest = {
        trigger: options.trigger,
        signal: abort.signal,
        stopSignal: stop.signal,
        onRunId: (id, resumed) => {
          run.recorded = true;
          if (resumed === true) run.resumedRunId = id;
          else run.ownStarted = true;
          reportId({ runId: id, resumed: resumed === true });
        },
        // The push resumed first is done (its record says so): this start's own run may still fail before it has one,
        // and its caller already has the resumed run's id.
        onResumedComplete: () => {
          run.recorded = false;
          run.answered = true;
        },
        ...(options.since ? { since: options.since } : {}),
        ...(options.until ? { until: options.until } : {}),
      };
      // Building a run may throw at once (a mapping file broken since start-up): that is this run failing, reported like
      // any other failure, never an exception escaping into the scheduler's timer.
      const done = new Promise<SyncSummary>((resolve) => resolve(sync(connector, request)))
        .then((summary) => logger.info({ connector, runId: summary.runId, counts: summary.counts }, 'sync completed'))
        .catch((error: unknown) => {
          reportFailure(error);
          reportEnd(error, run, logger, hooks);
        })
        .finally(() => inFlight.delete(connector));
      inFlight.set(connector, { done, shortOfNow: options.trigger === 'resume' || Boolean(options.until), stop, abort });
      return runId;
    },
    isRunning: (connector) => inFlight.has(connector),
    endOfRunShortOfNow: (connector) => {
      const run = inFlight.get(connector);
      return run?.shortOfNow ? run.done : undefined;
    },
    async drain(graceMs, now) {
      closing = true;
      // Ask every run to stop after its block in flight; abort whatever is still running when the grace period ends.
      for (const run of inFlight.values()) run.stop.abort();
      const all = Promise.all([...inFlight.values()].map((run) => run.done));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
        if (now?.aborted) resolve('timeout');
        now?.addEventListener('abort', () => resolve('timeout'), { once: true });
      });
      const outcome = await Promise.race([all.then(() => 'done' as const), timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        for (const run of inFlight.values()) run.abort.abort();
        await all;
      }
    },
  };
}

interface StartedState {
  readonly connector: string;
  readonly trigger: RunTrigger;
  /** The window the start asked for (since/until), if any: a refusal of it before any run is its caller's 400. */
  readonly window: { readonly since: string | undefined; readonly until: string | undefined } | undefined;
  /** This start's own run has its record (the pipeline stores its failure there). */
  recorded: boolean;
  /** The caller has its answer (a run id, maybe of an unfinished run resumed first): a failure can no longer reach it. */
  answered: boolean;
  /** This start's own run got its record (not only the unfinished one resumed first). */
  ownStarted: boolean;
  /** The unfinished run whose push this start resumed first, if any. */
  resumedRunId?: string;
}

/** How a run that ended in an error is told: always in the log, and to the hooks when it left no run record. */
function reportEnd(error: unknown, run: StartedState, logger: Logger, hooks: RunnerHooks): void {
  const typed = toBridgeError(error);
  const { connector, trigger } = run;
  // A BridgeError's message names keys, files and codes, never PHI or secrets: the line says what to fix. An untyped
  // error's message may name anything, so it goes as `err`, as the HTTP error handler logs it.
  const fields =
    typed.code === 'BRG_ERR_INTERNAL' ? { connector, trigger, code: typed.code, err: error } : { connector, trigger, code: typed.code, message: typed.message };
  // The caller was answered with the unfinished push resumed first, then this start ended before its own run began: the
  // window it asked for (a backfill) is run by nobody unless it is asked for again. No run record says so (the resumed
  // run's is about its own window, if it failed at all): a start failure does, in /v1/status and the metrics.
  if (run.window && !run.ownStarted && (run.recorded || run.answered)) {
    logger.warn(
      { connector, trigger, since: run.window.since, until: run.window.until, code: typed.code },
      'the run asked for after the unfinished push did not start; ask for its window again',
    );
    hooks.onStartFailure?.(connector, windowNotRun(typed, run.window, run.resumedRunId, run.answered));
  }
  if (run.recorded && typed.code === 'BRG_ERR_ABORTED') {
    // A stop asked for (SIGTERM on a redeploy, the service closing): the run says where it stopped, and the next one
    // resumes it. No error for log-based alerting to page on at every redeploy.
    logger.warn(fields, 'sync stopped');
  } else if (run.recorded) {
    logger.error(fields, 'sync failed');
  } else if (typed.code === 'BRG_ERR_RUN_IN_PROGRESS') {
    // Another process or replica holds the connector (a `bridge sync` from cron, a second replica): its run covers
    // this one's window, so this is a skip, as when a run of this process is still in flight.
    logger.warn(fields, 'sync not started: another process is running this connector');
    if (trigger === 'schedule') hooks.onScheduleSkip?.(connector);
  } else if (typed.code === 'BRG_ERR_ABORTED' && trigger === 'resume') {
    // Another replica (or a run of this one) finished the push first: nothing was left to do.
    logger.info(fields, 'nothing to resume');
  } else if (typed.code === 'BRG_ERR_ABORTED') {
    logger.warn(fields, 'sync stopped before it started');
  } else {
    logger.error(fields, 'sync failed before it started');
    // A refused window is its caller's 400; once the caller was answered with the push resumed first, it was reported above.
    if (!run.window) hooks.onStartFailure?.(connector, typed);
  }
}

/**
 * The start failure of a window asked for behind an unfinished push: the error's code, and a message that says which
 * window was not run, why, and to ask for it again. A BridgeError's message names no PHI; an internal error's stays out
 * of it (status shows the code only, the log has the error).
 */
function windowNotRun(
  error: BridgeError,
  window: { readonly since: string | undefined; readonly until: string | undefined },
  resumedRunId: string | undefined,
  resumedCompleted: boolean,
): BridgeError {
  const asked = [window.since ? `since ${window.since}` : undefined, window.until ? `until ${window.until}` : undefined].filter(Boolean).join(', ');
  const resumed = resumedRunId ? `the unfinished push of run ${resumedRunId}` : 'the unfinished push';
  const why = resumedCompleted ? `${resumed} completed first, then this run did not start` : `${resumed}, resumed first, did not complete`;
  const said = error.code === 'BRG_ERR_INTERNAL' ? 'an unexpected error; the service log has the details.' : error.message;
  const cause = /[.!?]$/.test(said) ? said : `${said}.`;
  // The window goes with it: status keeps showing it until a run of that window starts (status.ts).
  return new BridgeError(error.code, `The run asked for (${asked}) was not run: ${why}: ${cause} Ask for its window again.`, {
    cause: error,
    details: { ...error.details, windowNotRun: true, askedSince: window.since, askedUntil: window.until },
  });
}
