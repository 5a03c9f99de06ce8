/**
 * Per-resource memo of column values. A Patient (or Practitioner) seen by many events yields the same chosen name,
 * address and patient-only column values for every event time inside one validity interval (validity.ts), so
 * they are computed once per (resource object, interval). Keyed weakly: the lookup owns the resources' lifetime.
 */
import type { Address, HumanName, Patient, Practitioner } from 'fhir/r4.js';
import { chooseAddress, chooseName, intervalIndex, validityBreakpoints } from './validity.js';

export interface View {
  readonly name: HumanName | undefined;
  readonly address: Address | undefined;
  /** Sanitised value per expression slot; undefined = not computed yet. */
  readonly values: Array<string | undefined>;
  /** Warnings raised while computing a slot, replayed on every hit. */
  readonly warnings: Array<readonly string[] | undefined>;
}

interface Entry {
  readonly breakpoints: readonly number[];
  /** By interval index (small integers). */
  readonly views: Array<View | undefined>;
}

export interface ViewCache<R extends Patient | Practitioner> {
  view(resource: R, tMs: number): View;
}

export function createViewCache<R extends Patient | Practitioner>(slots: number): ViewCache<R> {
  const entries = new WeakMap<R, Entry>();
  const fresh = (resource: R, tMs: number): View => ({
    name: chooseName(resource.name, tMs),
    address: chooseAddress(resource.address, tMs),
    values: new Array<string | undefined>(slots),
    warnings: new Array<readonly string[] | undefined>(slots),
  });
  return {
    view(resource, tMs) {
      if (Number.isNaN(tMs)) return fresh(resource, tMs);
      let entry = entries.get(resource);
      if (!entry) {
        entry = { breakpoints: validityBreakpoints([resource.name, resource.address, resource.identifier, resource.telecom]), views: [] };
        entries.set(resource, entry);
      }
      const index = entry.breakpoints.length === 0 ? 0 : intervalIndex(entry.breakpoints, tMs);
      let view = entry.views[index];
      if (!view) {
        view = fresh(resource, tMs);
        entry.views[index] = view;
      }
      return view;
    },
  };
}
