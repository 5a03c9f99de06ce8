/**
 * The resolver's batching policy for a stream of events: events are gathered into groups of about `groupSize`; each
 * group's prefetch fetches only whole `_id=` batches of its Patients/Practitioners, and the few events naming a
 * resource left in a partial batch wait for a later group (or the end). A long sync so asks for each resource in about
 * ⌈U/50⌉ + ⌈P/50⌉ requests; events therefore leave in near-time order. When more than a quarter of a group would wait,
 * the partial batches are fetched at once, so waiting stays bounded.
 */
import type { ReferenceRequest } from '../reference-keys.js';
import type { ReferenceResolver } from './reference-resolver.js';

export interface GroupedItem {
  readonly references: ReferenceRequest;
}

export interface PrefetchGroups<T extends GroupedItem> {
  /**
   * Adds items, and yields the items of each group whose references are now resolved, one group at a time. Map a
   * group's items before asking for the next: the next group's prefetch may evict this one's resources from the
   * resolver's cache (sized for one group, not for a page of several).
   */
  add(items: readonly T[]): AsyncGenerator<T[], void, undefined>;
  /** Fetches whatever is held and returns every item still waiting. */
  finish(): Promise<T[]>;
  /** Items added and not yet returned. */
  readonly waiting: number;
}

const NOTHING_MORE: ReferenceRequest = { keys: [], identifiers: [] };

export function createPrefetchGroups<T extends GroupedItem>(resolver: ReferenceResolver, groupSize: number, signal?: AbortSignal): PrefetchGroups<T> {
  const maxWaiting = Math.max(1, Math.floor(groupSize / 4));
  let group: T[] = [];
  const flush = async (last: boolean): Promise<T[]> => {
    const pending = group;
    group = [];
    await resolver.prefetch(merge(pending.map((item) => item.references)), signal, { holdPartialBatches: !last });
    const ready: T[] = [];
    const waiting: T[] = [];
    for (const item of pending) (item.references.keys.some((key) => resolver.isHeld(key)) ? waiting : ready).push(item);
    if (waiting.length > maxWaiting) {
      await resolver.prefetch(NOTHING_MORE, signal); // Too many waiting: fetch the partial batches now.
      return pending;
    }
    group = waiting;
    return ready;
  };
  return {
    async *add(items) {
      // A page larger than a group is cut into groups: one prefetch never covers more than groupSize events, so what it
      // fetches, kept by the resolver until those events are mapped, stays one group's worth.
      for (const item of items) {
        group.push(item);
        if (group.length < groupSize) continue;
        const ready = await flush(false);
        if (ready.length > 0) yield ready;
      }
    },
    finish: () => flush(true),
    get waiting() {
      return group.length;
    },
  };
}

/** One request for a group of events; the resolver drops duplicates and cached keys itself. */
function merge(requests: readonly ReferenceRequest[]): ReferenceRequest {
  return { keys: requests.flatMap((r) => r.keys), identifiers: requests.flatMap((r) => r.identifiers) };
}
