export { openStateStore } from './sqlite.js';
export { claimDay } from './sqlite-ledger.js';
export {
  ZERO_COUNTS,
  type LeaseHolder,
  type LeaseOutcome,
  type LeaseStore,
  type RunCounts,
  type RunDetails,
  type RunRecord,
  type RunState,
  type RunTrigger,
  type SeenEvent,
  type StateStore,
} from './types.js';
