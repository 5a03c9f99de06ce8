/**
 * Off a terminal (logs, pipes, cron mail): the run's start, then one progress line at most every `everyMs` (rows,
 * percent, rows/s, ETA), the end of the pull, and retries as they happen. Not a line per block or per page. Counts only,
 * never PHI.
 */
import type { Clock } from '../../clock.js';
import type { SyncEvents } from '../../sync/events.js';
import { count, ProgressModel } from './meter.js';

/** Prints the model's line when `everyMs` has passed since the last one (or since the phase began). */
export interface PeriodicLines {
  tick(): void;
  /** Restart the period (a new phase: its first line comes `everyMs` later). */
  restart(): void;
}

export function periodicLines(model: ProgressModel, print: (line: string) => void, clock: Clock, everyMs: number): PeriodicLines {
  let last = clock.now();
  return {
    tick() {
      if (clock.now() - last < everyMs) return;
      last = clock.now();
      print(`  ${model.describe()}`);
    },
    restart() {
      last = clock.now();
    },
  };
}

export function attachTextReporter(events: SyncEvents, print: (line: string) => void, clock: Clock, everyMs = 10_000): () => void {
  const model = new ProgressModel(clock);
  const lines = periodicLines(model, print, clock, everyMs);
  const detaches = [
    events.on('run_start', (e) => {
      model.startPull();
      if (e.resumedFrom) model.startPush(undefined);
      lines.restart();
      print(`${e.resumedFrom ? 'resuming run' : 'run'} ${e.runId} for ${e.connector}: ${e.since} → ${e.until}${e.dryRun ? ' (dry run)' : ''}`);
    }),
    events.on('page', (e) => {
      model.page(e.events, e.rows);
      lines.tick();
    }),
    events.on('source_progress', (e) => print(`  ${e.message}`)),
    events.on('spool_complete', (e) => {
      print(`  pulled ${count(model.events)} events; spool complete: ${count(e.rows)} rows`);
      model.startPush(e.rows);
      lines.restart();
    }),
    events.on('rows_already_delivered', (e) => {
      model.alreadyDelivered(e.rows);
      lines.tick();
    }),
    // Given-up rows are done too: they count towards the push's end, as rejected.
    events.on('rows_given_up', (e) => {
      model.alreadyDelivered(e.rows);
      lines.tick();
    }),
    events.on('block_acked', (e) => {
      model.blockAcked(e.rows);
      lines.tick();
    }),
    events.on('block_retry', (e) => print(`  block ${e.index} retry ${e.attempt} in ${Math.round(e.delayMs)} ms (${e.reason})`)),
  ];
  return () => {
    for (const detach of detaches) detach();
  };
}
