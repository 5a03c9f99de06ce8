export { openStateStore } from './sqlite.js';
export { ZERO_COUNTS, type BlockLedgerStore, type RunCounts, type RunRecord, type RunState, type RunTrigger, type SeenEvent, type StateStore } from './types.js';
