/**
 * One progress bar on a terminal, for `bridge sync` and `bridge push`: percent, rows/s and ETA while pushing (the
 * total is known once the spool is complete); events, rows and rows/s while pulling. Not a line per block.
 */
import cliProgress from 'cli-progress';
import { type Clock, systemClock } from '../../clock.js';
import type { SyncEvents } from '../../sync/events.js';
import { barOf, ProgressModel } from './meter.js';

/** Draws a model on one terminal line (cli-progress redraws at most 10 times a second and fits the width). */
export interface TerminalBar {
  update(): void;
  stop(): void;
}

export function terminalBar(model: ProgressModel, stream: NodeJS.WriteStream): TerminalBar {
  const bar = new cliProgress.SingleBar({
    stream,
    hideCursor: true,
    clearOnComplete: false,
    linewrap: false,
    fps: 10,
    format: (_options, _params, payload: { line: string }) => payload.line,
  });
  const line = (): string => {
    const fraction = model.fraction();
    return `${fraction === undefined ? '' : `${barOf(fraction)} `}${model.describe()}`;
  };
  let started = false;
  return {
    update() {
      if (!started) {
        bar.start(1, 0, { line: line() });
        started = true;
      } else {
        bar.update(0, { line: line() });
      }
    },
    stop() {
      if (!started) return;
      bar.update(0, { line: line() });
      bar.stop();
      started = false;
    },
  };
}

export function attachProgressBar(events: SyncEvents, stream: NodeJS.WriteStream, clock: Clock = systemClock, blockRows?: number): () => void {
  const model = new ProgressModel(clock);
  const bar = terminalBar(model, stream);
  const detaches = [
    events.on('run_start', (e) => {
      bar.stop();
      model.startPull();
      if (e.resumedFrom) model.startPush(undefined, blockRows);
      bar.update();
    }),
    events.on('page', (e) => {
      model.page(e.events, e.rows);
      bar.update();
    }),
    events.on('source_progress', (e) => {
      model.sourceNote = e.message;
      bar.update();
    }),
    events.on('spool_complete', (e) => {
      model.startPush(e.rows, blockRows);
      bar.update();
    }),
    events.on('rows_already_delivered', (e) => {
      model.alreadyDelivered(e.rows);
      bar.update();
    }),
    // Given-up rows are done too: they count towards the push's end, as rejected.
    events.on('rows_given_up', (e) => {
      model.alreadyDelivered(e.rows);
      bar.update();
    }),
    events.on('block_acked', (e) => {
      model.blockAcked(e.rows);
      bar.update();
    }),
    events.on('block_retry', (e) => {
      model.retry = `block ${e.index} retry ${e.attempt} in ${Math.round(e.delayMs / 100) / 10} s (${e.reason})`;
      bar.update();
    }),
    events.on('run_complete', () => bar.stop()),
    events.on('error', () => bar.stop()),
  ];
  return () => {
    bar.stop();
    for (const detach of detaches) detach();
  };
}
