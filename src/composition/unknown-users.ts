/**
 * The requestor identifiers no Practitioner carries (staff without a provider record), kept across runs in the state
 * database under the connector, for the FHIR server they were asked of: another `fhir.baseUrl` starts afresh, since
 * its users are others. Only identifier keys and instants: no name, no resource (an EMP login is an identifier of
 * a user, kept as the ledger keeps event ids; it never reaches a log).
 */
import type { UnknownUserStore } from '../fhir/index.js';
import { normaliseBase } from '../reference-keys.js';
import { UNKNOWN_USERS as NAME, type StateStore } from '../sync/state/index.js';

interface Kept {
  readonly base: string;
  /** Identifier key → when a search found nobody (epoch ms). */
  readonly found: Record<string, number>;
}

export function unknownUserStore(store: StateStore, connector: string, baseUrl: string): UnknownUserStore {
  const base = normaliseBase(baseUrl) ?? baseUrl;
  return {
    load() {
      const kept = parse(store.getSourceState(connector, NAME));
      return kept?.base === base ? new Map(Object.entries(kept.found).filter(([, at]) => Number.isFinite(at))) : new Map();
    },
    save(found) {
      store.setSourceState(connector, NAME, JSON.stringify({ base, found: Object.fromEntries(found) } satisfies Kept));
    },
  };
}

/** What was kept, or undefined when nothing (or something this version did not write) is there: a cache starts afresh. */
function parse(text: string | undefined): Kept | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Kept>;
    return typeof value.base === 'string' && value.found !== null && typeof value.found === 'object' ? (value as Kept) : undefined;
  } catch {
    return undefined;
  }
}
