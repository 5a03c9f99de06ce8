/**
 * `bridge push`'s progress: on a terminal one bar (percent, rows/s, ETA), elsewhere a line at most every `everyMs`
 * plus each retry, with --json nothing until the summary. The push's total is the file's row count, known up front.
 */
import type { Clock } from '../../clock.js';
import type { PushEvent } from '../../purview/index.js';
import { ProgressModel } from './meter.js';
import { terminalBar } from './progress.js';
import { periodicLines } from './text.js';

export interface PushReporter {
  onEvent(event: PushEvent): void;
  /** Stops the bar (call before printing the summary, also after a failure). */
  finish(): void;
}

export interface PushReporterOptions {
  readonly mode: 'bar' | 'lines' | 'quiet';
  readonly rows: number;
  readonly blockRows: number;
  readonly print: (line: string) => void;
  readonly clock: Clock;
  readonly stream?: NodeJS.WriteStream;
  readonly everyMs?: number;
}

export function pushReporter(options: PushReporterOptions): PushReporter {
  const model = new ProgressModel(options.clock);
  model.startPush(options.rows, options.blockRows);
  if (options.mode === 'quiet') return { onEvent: () => undefined, finish: () => undefined };
  if (options.mode === 'bar' && options.stream) {
    const bar = terminalBar(model, options.stream);
    bar.update();
    return {
      onEvent(event) {
        apply(model, event);
        bar.update();
      },
      finish: () => bar.stop(),
    };
  }
  const lines = periodicLines(model, options.print, options.clock, options.everyMs ?? 10_000);
  return {
    onEvent(event) {
      apply(model, event);
      if (event.type === 'block_retry') {
        options.print(`block ${event.index} attempt ${event.attempt} failed (${event.reason}); retrying in ${Math.round(event.delayMs / 100) / 10} s`);
      } else {
        lines.tick();
      }
    },
    finish: () => undefined,
  };
}

function apply(model: ProgressModel, event: PushEvent): void {
  switch (event.type) {
    case 'block_acked':
      model.blockAcked(event.rows);
      return;
    case 'rows_already_delivered':
    case 'rows_given_up':
      model.alreadyDelivered(event.rows);
      return;
    case 'block_retry':
      model.retry = `block ${event.index} retry ${event.attempt} in ${Math.round(event.delayMs / 100) / 10} s (${event.reason})`;
      return;
    case 'block_sent':
      return;
  }
}
