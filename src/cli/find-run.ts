import { BridgeError } from '../errors.js';
import type { RunRecord, StateStore } from '../sync/state/index.js';

/** The shortest prefix taken: what `bridge runs` shows. */
const MIN_PREFIX = 8;

/** The run with this id, or the one run whose id starts with it (8 characters or more, as `bridge runs` shows them). */
export function findRun(store: StateStore, id: string): RunRecord {
  const exact = store.getRun(id);
  if (exact) return exact;
  if (id.length < MIN_PREFIX) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `"${id}" is too short for a run id: give its first ${MIN_PREFIX} characters or more, as bridge runs shows them.`,
    );
  }
  // Two are enough to tell one from several; every run is searched, however long the history.
  const matches = store.listRuns({ idPrefix: id, limit: 2 });
  if (matches.length === 1 && matches[0]) return matches[0];
  throw new BridgeError(
    'BRG_ERR_INPUT_INVALID',
    matches.length > 1 ? `More than one run starts with "${id}"; give more of the id.` : `No run "${id}" in the state directory (bridge runs lists them).`,
  );
}
