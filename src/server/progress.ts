/**
 * Live progress of the run a connector has in flight in this process, for the operator page and `GET /v1/status`:
 * a sink of the connector's sync events like the metrics and the run log. The run record only gets its counts at
 * checkpoints, so without this the page could not show a long pull moving.
 */
import type { Clock } from '../clock.js';
import type { SyncEvents } from '../sync/events.js';
import type { RunProgress } from './status.js';

export interface ProgressTracker {
  /** The run in flight, or undefined between runs. */
  current(): RunProgress | undefined;
  /** Called on every change (start, page, block, end); returns detach. */
  onChange(listener: () => void): () => void;
  detach(): void;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function trackProgress(events: SyncEvents, blockRows: number, clock: Clock): ProgressTracker {
  let run: Mutable<RunProgress> | undefined;
  const listeners = new Set<() => void>();
  const changed = (): void => {
    for (const listener of listeners) listener();
  };
  // Blocks left = rows not yet acknowledged (by this run or before it) ÷ block size: an estimate, as rows the ledger
  // already holds are only found while the blocks are assembled.
  // Rows of events the operator gave up (bridge state give-up): rejected, never sent, so not left either.
  let givenUp = 0;
  const estimate = (r: Mutable<RunProgress>): void => {
    const left = Math.max(0, r.rows - r.rowsAcked - givenUp);
    r.blocksTotal = r.blocksAcked + Math.ceil(left / blockRows);
  };
  const detaches = [
    events.on('run_start', (e) => {
      givenUp = 0;
      run = {
        runId: e.runId,
        phase: e.resumedFrom ? 'pushing' : 'pulling',
        startedAt: new Date(clock.now()).toISOString(),
        events: 0,
        rows: 0,
        rejects: 0,
        rowsAcked: 0,
        blocksAcked: 0,
      };
      changed();
    }),
    events.on('page', (e) => {
      if (run?.runId !== e.runId) return;
      run.events += e.events;
      run.rows += e.rows;
      run.rejects += e.rejects;
      changed();
    }),
    events.on('spool_complete', (e) => {
      if (run?.runId !== e.runId) return;
      run.phase = 'pushing';
      run.rows = e.rows;
      estimate(run);
      changed();
    }),
    events.on('rows_already_delivered', (e) => {
      if (run?.runId !== e.runId) return;
      run.rowsAcked += e.rows;
      if (run.rows > 0) estimate(run);
      changed();
    }),
    events.on('rows_given_up', (e) => {
      if (run?.runId !== e.runId) return;
      givenUp += e.rows;
      run.rejects += e.rows;
      if (run.rows > 0) estimate(run);
      changed();
    }),
    events.on('block_acked', (e) => {
      if (run?.runId !== e.runId) return;
      run.blocksAcked += 1;
      run.rowsAcked += e.rows;
      if (run.rows > 0) estimate(run);
      changed();
    }),
    events.on('run_complete', (e) => end(e.runId)),
    events.on('error', (e) => end(e.runId)),
  ];
  function end(runId: string | undefined): void {
    if (run && (runId === undefined || run.runId === runId)) run = undefined;
    changed();
  }
  return {
    current: () => (run ? { ...run } : undefined),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    detach() {
      for (const detach of detaches) detach();
      listeners.clear();
    },
  };
}
