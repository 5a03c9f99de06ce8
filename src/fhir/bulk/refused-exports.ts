/**
 * Exports given up, in a row, because a file on the FHIR server answered 403 to the bearer (a fresh one too). The
 * first is taken for an export whose files the server no longer serves (some answer 403 where the spec says 410) and
 * restarted; from the MAX_REFUSED_IN_A_ROW-th in a row the client itself is taken to be refused, and the run stops with
 * a clear error instead of restarting (bulk-source.ts). Kept across runs, so a refused client does not restart exports
 * on every run either: each later run asks for one export and stops the same way. An export read to its end clears it.
 */
import type { CheckpointStore } from './checkpoint.js';

const PART = 'refused-exports';

/** Exports in a row whose files answered 403 to the bearer before the run stops instead of restarting. */
export const MAX_REFUSED_IN_A_ROW = 2;

/** Records one more export refused so; returns how many in a row now (this one included). */
export function recordRefusedExport(store: CheckpointStore): number {
  const count = refusedInARow(store) + 1;
  store.setPart(PART, JSON.stringify({ count }));
  return count;
}

export function clearRefusedExports(store: CheckpointStore): void {
  if (store.getPart(PART) !== undefined) store.setPart(PART, undefined);
}

function refusedInARow(store: CheckpointStore): number {
  const text = store.getPart(PART);
  if (text === undefined) return 0;
  try {
    const count = (JSON.parse(text) as { count?: unknown }).count;
    return typeof count === 'number' && Number.isInteger(count) && count > 0 ? count : 0;
  } catch {
    // Unreadable: a new streak.
    return 0;
  }
}
