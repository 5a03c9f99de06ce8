/**
 * The pipeline never prints: it emits these typed events and sinks (text reporter, progress bar, NDJSON run log,
 * metrics) subscribe and return `detach()`. Payloads carry counts and opaque ids only, never PHI or secrets.
 */
import { EventEmitter } from 'node:events';
import type { PushEvent, PushEventMap } from '../purview/index.js';
import type { RunCounts } from './state/index.js';

/** The push stage's events, as the pipeline forwards them: the same payloads with the run id. */
type ForwardedPushEvents = { [K in keyof PushEventMap]: PushEventMap[K] & { runId: string } };

export interface SyncEventMap extends ForwardedPushEvents {
  run_start: { runId: string; connector: string; since: string; until: string; resumedFrom?: string; dryRun: boolean; backfill: boolean };
  token: { side: 'smart' | 'purview' };
  page: { runId: string; events: number; duplicates: number; skipped: number; rows: number; rejects: number };
  /** One reject record; `rows` when it stands for several rows (a refused file), else one. */
  reject: { runId: string; eventId: string; reason: string; column?: string; rows?: number };
  /** The source's own progress, e.g. a Bulk Data export's X-Progress (one line, no PHI). */
  source_progress: { runId: string; connector: string; message: string };
  spool_complete: { runId: string; rows: number };
  /** `unexported`: resources the source reported it could not deliver (a Bulk export's error files), when any. */
  run_complete: { runId: string; connector: string; counts: RunCounts; unexported?: number };
  /** `resumable`: the run stays 'pushing', its push finished by the next run (a stop or a failure during the push). */
  error: { runId?: string; connector: string; code: string; message: string; resumable?: boolean };
}

export type SyncEventName = keyof SyncEventMap;
export type SyncListener<K extends SyncEventName> = (payload: SyncEventMap[K]) => void;

export class SyncEvents {
  private readonly emitter = new EventEmitter();

  on<K extends SyncEventName>(name: K, listener: SyncListener<K>): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }

  /** Subscribes one listener to every event; returns detach. */
  onAny(listener: <K extends SyncEventName>(name: K, payload: SyncEventMap[K]) => void): () => void {
    const names = Object.keys(EVENT_NAMES) as SyncEventName[];
    const detaches = names.map((name) => this.on(name, (payload) => listener(name, payload)));
    return () => {
      for (const detach of detaches) detach();
    };
  }

  emit<K extends SyncEventName>(name: K, payload: SyncEventMap[K]): void {
    // Node's EventEmitter throws an 'error' nobody listens to; a run failing is news for sinks, never a crash here.
    if (name === 'error' && this.emitter.listenerCount(name) === 0) return;
    this.emitter.emit(name, payload);
  }
}

/** Every event name once, so onAny stays in step with the map (the type checker enforces completeness). */
const EVENT_NAMES: Record<SyncEventName, true> = {
  run_start: true,
  token: true,
  page: true,
  reject: true,
  source_progress: true,
  spool_complete: true,
  block_sent: true,
  block_retry: true,
  block_acked: true,
  rows_already_delivered: true,
  rows_given_up: true,
  run_complete: true,
  error: true,
};

/**
 * Re-emits a push event as the run's event. `indexOffset`: blocks already pushed by earlier files of the same run (a
 * flat-file drop pushes one file after another; block numbers keep counting across them).
 */
export function forwardPushEvent(events: SyncEvents, runId: string, event: PushEvent, indexOffset = 0): void {
  switch (event.type) {
    case 'block_sent':
      events.emit('block_sent', { runId, index: indexOffset + event.index, rows: event.rows, attempt: event.attempt });
      return;
    case 'block_retry':
      events.emit('block_retry', { runId, index: indexOffset + event.index, attempt: event.attempt, delayMs: event.delayMs, reason: event.reason });
      return;
    case 'block_acked':
      events.emit('block_acked', {
        runId,
        index: indexOffset + event.index,
        rows: event.rows,
        status: event.status,
        ms: event.ms,
        possiblyDuplicated: event.possiblyDuplicated,
        possiblyDuplicatedRows: event.possiblyDuplicatedRows,
      });
      return;
    case 'rows_already_delivered':
      events.emit('rows_already_delivered', { runId, rows: event.rows });
      return;
    case 'rows_given_up':
      events.emit('rows_given_up', { runId, rows: event.rows });
      return;
  }
}
