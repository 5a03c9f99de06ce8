/**
 * Per-run NDJSON event log (like bulk-data-client's log.ndjson): one line per event with the run id and a timestamp.
 * The events carry counts and opaque ids only, so the log holds no PHI; it is still written 0600.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import type { SyncEvents } from './events.js';

export function attachRunLog(events: SyncEvents, dir: string, clock: Clock): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return events.onAny((name, payload) => {
    const runId = 'runId' in payload && payload.runId ? payload.runId : 'no-run';
    const line = JSON.stringify({ timestamp: new Date(clock.now()).toISOString(), eventId: name, ...payload });
    appendFileSync(join(dir, `${runId}.ndjson`), line + '\n', { mode: 0o600 });
  });
}
