/**
 * The state store as the commands that write open it: an older schema is upgraded, refused while a run holds a
 * connector, and a holder that died on this host (and PID namespace) lets go at once (process.ts).
 */
import type { Clock } from '../clock.js';
import { openStateStore, type StateStore } from '../sync/state/index.js';
import { holderIsGone } from './process.js';

export function openWritableStateStore(stateDir: string, clock: Clock): StateStore {
  return openStateStore(stateDir, clock, { upgrade: true, isStale: holderIsGone });
}
