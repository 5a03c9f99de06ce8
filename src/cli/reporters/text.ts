/** Plain lines for logs and pipes: one per page batch (throttled) and one per block. Counts only, never PHI. */
import type { Clock } from '../../clock.js';
import type { SyncEvents } from '../../sync/events.js';

export function attachTextReporter(events: SyncEvents, print: (line: string) => void, clock: Clock, everyMs = 2000): () => void {
  let lastPrint = 0;
  let pulled = 0;
  let rows = 0;
  const detaches = [
    events.on('run_start', (e) => {
      pulled = 0;
      rows = 0;
      print(`${e.resumedFrom ? 'resuming run' : 'run'} ${e.runId} for ${e.connector}: ${e.since} → ${e.until}${e.dryRun ? ' (dry run)' : ''}`);
    }),
    events.on('page', (e) => {
      pulled += e.events;
      rows += e.rows;
      if (clock.now() - lastPrint >= everyMs) {
        lastPrint = clock.now();
        print(`  pulled ${pulled} events, ${rows} rows`);
      }
    }),
    events.on('spool_complete', (e) => print(`  spool complete: ${e.rows} rows`)),
    events.on('block_acked', (e) => print(`  block ${e.index} acknowledged (${e.rows} rows, HTTP ${e.status}${e.possiblyDuplicated ? ', possibly duplicated' : ''})`)),
    events.on('block_retry', (e) => print(`  block ${e.index} retry ${e.attempt} in ${Math.round(e.delayMs)} ms (${e.reason})`)),
    events.on('rows_already_delivered', (e) => print(`  ${e.rows} rows already acknowledged by Purview earlier: not sent again`)),
  ];
  return () => detaches.forEach((detach) => detach());
}
