/**
 * Exports given up for a broken file, in a row (bulk-source.ts). A server that keeps writing a broken (or short) file
 * would otherwise be asked for a new export on every scheduled run: from the second in a row, the next export waits,
 * 15 minutes and doubling up to a day. A run given its own start (--since, the HTTP trigger's since) asks at once, for an
 * operator who knows the EHR fixed it; an export read to its end clears the streak.
 */

import { FhirError } from '../fhir-error.js';
import type { CheckpointStore } from './checkpoint.js';

const PART = 'broken-exports';
const FIRST_WAIT_MS = 15 * 60_000;
const MAX_WAIT_MS = 24 * 3_600_000;

interface Streak {
  readonly count: number;
  /** When the last of them was given up (epoch ms). */
  readonly atMs: number;
}

function streakOf(store: CheckpointStore): Streak | undefined {
  const text = store.getPart(PART);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as { count?: unknown; at?: unknown };
    const atMs = typeof value.at === 'string' ? Date.parse(value.at) : Number.NaN;
    return typeof value.count === 'number' && value.count > 0 && !Number.isNaN(atMs) ? { count: value.count, atMs } : undefined;
  } catch {
    // Unreadable: no wait (the next broken export starts a new streak).
    return undefined;
  }
}

/** How long after the last broken export the next is asked for: none after the first, then 15 min doubling to a day. */
export function backoffMs(count: number): number {
  return count <= 1 ? 0 : Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** (count - 2));
}

/** Records one more export given up; returns when the next may be asked for, when that is not at once. */
export function recordBrokenExport(store: CheckpointStore, nowMs: number): { count: number; atMs: number } | undefined {
  const count = (streakOf(store)?.count ?? 0) + 1;
  store.setPart(PART, JSON.stringify({ count, at: new Date(nowMs).toISOString() }));
  const waitMs = backoffMs(count);
  return waitMs === 0 ? undefined : { count, atMs: nowMs + waitMs };
}

export function clearBrokenExports(store: CheckpointStore): void {
  if (store.getPart(PART) !== undefined) store.setPart(PART, undefined);
}

/**
 * Refuses to kick off an export while the streak's wait lasts, unless the run was given its own start.
 * @param since - what the operator gives as --since to ask at once for the same export (bulk-source.ts retryCommandSince).
 */
export function refuseWhileBackingOff(store: CheckpointStore, nowMs: number, explicit: boolean, since: string): void {
  const streak = streakOf(store);
  if (streak === undefined || explicit) return;
  const nextMs = streak.atMs + backoffMs(streak.count);
  if (nowMs >= nextMs) return;
  throw new FhirError(
    'BRG_ERR_FHIR_EXPORT_FILE',
    `The last ${streak.count} exports were each given up for a broken file (the runs that gave them up say which); the next is requested after ${new Date(nextMs).toISOString()}, not on every run. Once the EHR team has fixed it, run \`bridge sync --since ${since}\` to ask at once.`,
    { status: 0, resourceType: 'export' },
  );
}
