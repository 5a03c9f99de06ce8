/**
 * Per-resource memo of column values. A Patient (or Practitioner) seen by many events yields the same chosen name,
 * address and patient-only column values for every event time inside one validity interval (validity.ts), so
 * they are computed once per (resource object, interval). Keyed weakly: the lookup owns the resources' lifetime.
 * A long sync keeps a view for every cached resource, so a view holds only its scope's slots and allocates the
 * warnings list only when a slot raised one (measured: 0.9 KB → 0.2 KB per patient with the Epic mapping).
 */
import type { Address, HumanName, Patient, Practitioner } from 'fhir/r4.js';
import { chooseAddress, chooseName, intervalIndex, validityBreakpoints } from './validity.js';

export interface View {
  readonly name: HumanName | undefined;
  readonly address: Address | undefined;
  /** Sanitised value per expression slot; undefined = not computed yet. */
  readonly values: Array<string | undefined>;
  /** Warnings raised while computing a slot, replayed on every hit; undefined until one is raised. */
  warnings: Array<readonly string[] | undefined> | undefined;
  /**
   * Filled together on first use (interpret.ts scopedCells; compile.ts viewLayout): the cells of the columns memoised as
   * a whole (program.scopedColumns), the led columns' values (program.leadingColumns), then the line segment of each of
   * program.scopedRuns (those cells joined for the mapping's delimiter), or undefined where a led cell has no value.
   */
  cells: ReadonlyArray<string | undefined> | undefined;
  /** The `<code>:<column>` warnings each of `cells` raised, replayed on every use; undefined when none did. */
  cellWarnings: Array<readonly string[] | undefined> | undefined;
  /** Which memoised cells are empty, as bits of their column indexes (row-code.ts's empty-cell mask); 0 until filled. */
  cellsEmpty: number;
}

/** The views of a resource whose names, addresses, identifiers or telecoms carry periods: one per interval. */
interface Intervals {
  readonly breakpoints: readonly number[];
  /** By interval index: one per interval between breakpoints, filled on first use. */
  readonly views: Array<CachedView | undefined>;
}

/**
 * A view and the interval [from, to) of event times it is valid for. The map holds one view per resource, the one
 * used last, so the common case (events of one window, all inside one validity interval) is one map read and two
 * comparisons; a time outside it switches the map to that interval's view. A view of a resource without periods has
 * no intervals and is valid at every time (its from and to are 0, small integers V8 keeps unboxed).
 */
interface CachedView extends View {
  readonly from: number;
  readonly to: number;
  readonly intervals: Intervals | undefined;
}

export interface ViewCache<R extends Patient | Practitioner> {
  view(resource: R, tMs: number): View;
}

export function createViewCache<R extends Patient | Practitioner>(slots: number): ViewCache<R> {
  const current = new WeakMap<R, CachedView>();
  const fresh = (resource: R, tMs: number, from: number, to: number, intervals: Intervals | undefined): CachedView => ({
    name: chooseName(resource.name, tMs),
    address: chooseAddress(resource.address, tMs),
    values: new Array<string | undefined>(slots),
    warnings: undefined,
    cells: undefined,
    cellWarnings: undefined,
    cellsEmpty: 0,
    from,
    to,
    intervals,
  });
  const switchTo = (resource: R, tMs: number, last: CachedView | undefined): View => {
    // An event without a time gets a view of its own, never stored: NaN is in no interval.
    if (Number.isNaN(tMs)) return fresh(resource, tMs, 0, 0, undefined);
    let intervals = last?.intervals;
    if (!intervals) {
      const breakpoints = validityBreakpoints([resource.name, resource.address, resource.identifier, resource.telecom]);
      if (breakpoints.length === 0) {
        const timeless = fresh(resource, tMs, 0, 0, undefined);
        current.set(resource, timeless);
        return timeless;
      }
      intervals = { breakpoints, views: new Array<CachedView | undefined>(breakpoints.length + 1) };
    }
    const index = intervalIndex(intervals.breakpoints, tMs);
    let view = intervals.views[index];
    if (!view) {
      const from = intervals.breakpoints[index - 1] ?? Number.NEGATIVE_INFINITY;
      const to = intervals.breakpoints[index] ?? Number.POSITIVE_INFINITY;
      view = fresh(resource, tMs, from, to, intervals);
      intervals.views[index] = view;
    }
    current.set(resource, view);
    return view;
  };
  return {
    view(resource, tMs) {
      const last = current.get(resource);
      const valid = last !== undefined && (last.intervals === undefined ? !Number.isNaN(tMs) : tMs >= last.from && tMs < last.to);
      return valid ? last : switchTo(resource, tMs, last);
    },
  };
}
