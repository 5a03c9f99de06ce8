import { BridgeError } from '../errors.js';
import type { RunRecord, StateStore } from '../sync/state/index.js';

/** The run with this id, or the one run whose id starts with it (8 characters or more, as `bridge runs` shows them). */
export function findRun(store: StateStore, id: string): RunRecord {
  const exact = store.getRun(id);
  if (exact) return exact;
  const matches = id.length >= 8 ? store.listRuns({ limit: 10_000 }).filter((run) => run.id.startsWith(id)) : [];
  if (matches.length === 1 && matches[0]) return matches[0];
  throw new BridgeError(
    'BRG_ERR_INPUT_INVALID',
    matches.length > 1 ? `${matches.length} runs start with "${id}"; give more of the id.` : `No run "${id}" in the state directory (bridge runs lists them).`,
  );
}
