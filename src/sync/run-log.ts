/**
 * Per-run NDJSON event log (like bulk-data-client's log.ndjson): one line per event with the run id and a timestamp.
 * The events carry counts and opaque ids only, so the log holds no PHI; it is still written 0600. One descriptor per
 * run file stays open while the sink is attached, so a line costs one write, not an open and a close.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { writingTo } from '../errors.js';
import type { SyncEvents } from './events.js';

/**
 * A line the machine refused (a full disk, a read-only directory) stops the run where it is, naming the file: what a
 * listener throws ends the step that emitted the event. (After a run completed, or once it failed, it is only warned of.)
 */
function onDisk<T>(path: string, write: () => T): T {
  return writingTo(path, 'the run stopped there, and the next run goes on from where it was left.', write);
}

export function attachRunLog(events: SyncEvents, dir: string, clock: Clock): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = new Map<string, number>();
  const detach = events.onAny((name, payload) => {
    const runId = 'runId' in payload && payload.runId ? payload.runId : 'no-run';
    const path = join(dir, `${runId}.ndjson`);
    let fd = files.get(runId);
    if (fd === undefined) {
      fd = onDisk(path, () => openSync(path, 'a', 0o600));
      files.set(runId, fd);
    }
    // `eventId` names the kind of line (bulk-data-client's log.ndjson); a payload's own event id (a reject's AuditEvent
    // id, or `file:<name>`) goes in `subject`, so it does not overwrite the kind.
    const { eventId: subject, ...fields } = payload as { eventId?: unknown };
    const line = { timestamp: new Date(clock.now()).toISOString(), eventId: name, ...fields, ...(subject === undefined ? {} : { subject }) };
    const into = fd;
    onDisk(path, () => writeSync(into, `${JSON.stringify(line)}\n`));
    // A finished run writes nothing more: release its descriptor (a long-running service sees many runs).
    if (name === 'run_complete' || name === 'error') {
      closeSync(fd);
      files.delete(runId);
    }
  });
  return () => {
    detach();
    for (const fd of files.values()) closeSync(fd);
    files.clear();
  };
}
