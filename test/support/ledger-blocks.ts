/** Event blocks written straight into a state store's delivery ledger, for tests that need acknowledged rows. */
import type { DeliveryTarget } from '../../src/purview/index.js';
import type { StateStore } from '../../src/sync/state/index.js';

export interface CursorEvent {
  readonly key: string;
  readonly recordedMs?: number;
  readonly rows: number;
}

/** A ledger cursor over `events`, in order (openEventBlock takes from it). */
export function eventCursor(events: readonly CursorEvent[]) {
  let at = 0;
  return {
    peek: () => (at < events.length ? ({ recordedMs: undefined, ...events[at] } as { key: string; recordedMs: number | undefined; rows: number }) : undefined),
    take: () => {
      at += 1;
    },
  };
}

/** One block of `events`, attempted and acknowledged; `possiblyDuplicatedRows` of it flagged (an answer lost before). */
export function ackedEventBlock(store: StateStore, target: DeliveryTarget, events: readonly CursorEvent[], possiblyDuplicatedRows = 0): number {
  const block = store.openEventBlock(target, eventCursor(events), 1000, () => undefined);
  if (!block) throw new Error('no block opened: every event was already claimed');
  store.markAttempt(block.id);
  store.markAcked(block.id, possiblyDuplicatedRows);
  return block.id;
}
