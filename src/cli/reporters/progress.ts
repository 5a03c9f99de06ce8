/** A progress bar on a TTY: events pulled, rows, blocks. Plain text reporter otherwise. */
import cliProgress from 'cli-progress';
import type { SyncEvents } from '../../sync/events.js';

export function attachProgressBar(events: SyncEvents, stream: NodeJS.WriteStream): () => void {
  const bar = new cliProgress.SingleBar(
    { stream, format: '{phase} | events {events} | rows {rows} | blocks {blocks}', hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  const state = { phase: 'pulling', events: 0, rows: 0, blocks: 0 };
  const detaches = [
    events.on('run_start', () => bar.start(1, 0, state)),
    events.on('page', (e) => {
      state.events += e.events;
      state.rows += e.rows;
      bar.update(0, state);
    }),
    events.on('spool_complete', () => bar.update(0, { ...state, phase: 'pushing' })),
    events.on('block_acked', () => {
      state.blocks += 1;
      bar.update(0, { ...state, phase: 'pushing' });
    }),
    events.on('run_complete', () => {
      bar.update(1, { ...state, phase: 'done' });
      bar.stop();
    }),
    events.on('error', () => bar.stop()),
  ];
  return () => {
    bar.stop();
    detaches.forEach((detach) => detach());
  };
}
