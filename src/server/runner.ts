/**
 * Runs syncs for the service: at most one in flight per connector (HTTP trigger and scheduler alike), each with its
 * own AbortController so shutdown can stop them at a checkpoint.
 */
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncRequest, SyncSummary } from '../sync/pipeline.js';
import type { RunTrigger } from '../sync/state/index.js';

/** Runs one sync of a connector; the service builds it from buildSyncDeps + runSync, tests may pass their own. */
export type ConnectorSync = (connector: string, request: SyncRequest) => Promise<SyncSummary>;

export interface SyncRunner {
  /** Starts a run; resolves with its id once it is recorded. Throws BRG_ERR_RUN_IN_PROGRESS while one is in flight. */
  start(connector: string, options: { trigger: RunTrigger; since?: string | undefined; until?: string | undefined }): Promise<string>;
  isRunning(connector: string): boolean;
  /** Stops every in-flight run at its next checkpoint; aborts those still running after `graceMs`, or once `now` aborts. */
  drain(graceMs: number, now?: AbortSignal): Promise<void>;
}

export function createSyncRunner(sync: ConnectorSync, logger: Logger): SyncRunner {
  const inFlight = new Map<string, { done: Promise<void>; stop: AbortController; abort: AbortController }>();
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
      let reportId: (id: string) => void = () => undefined;
      let reportFailure: (error: unknown) => void = () => undefined;
      const runId = new Promise<string>((resolve, reject) => {
        reportId = resolve;
        reportFailure = reject;
      });
      const request: SyncRequest = {
        trigger: options.trigger,
        signal: abort.signal,
        stopSignal: stop.signal,
        onRunId: reportId,
        ...(options.since ? { since: options.since } : {}),
        ...(options.until ? { until: options.until } : {}),
      };
      // Building a run may throw at once (a mapping file broken since start-up): that is this run failing, reported like
      // any other failure, never an exception escaping into the scheduler's timer.
      const done = new Promise<SyncSummary>((resolve) => resolve(sync(connector, request)))
        .then((summary) => logger.info({ connector, runId: summary.runId, counts: summary.counts }, 'sync completed'))
        .catch((error: unknown) => {
          reportFailure(error);
          const code = error instanceof BridgeError ? error.code : 'BRG_ERR_INTERNAL';
          logger.error({ connector, code }, 'sync failed');
        })
        .finally(() => inFlight.delete(connector));
      inFlight.set(connector, { done, stop, abort });
      return runId;
    },
    isRunning: (connector) => inFlight.has(connector),
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
