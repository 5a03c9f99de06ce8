export { openExistingStateStore, openStateStore, type SchemaUpgrade, STATE_SCHEMA_VERSION, upgradeStateStore } from './sqlite.js';
export { UNKNOWN_USERS } from './sqlite-connector-moves.js';
export { claimDay } from './sqlite-ledger.js';
export {
  type ConnectorMove,
  type ConnectorMoveOptions,
  type LeaseHolder,
  type LeaseOutcome,
  type LeaseStore,
  type RunCounts,
  type RunDelivered,
  type RunDetails,
  type RunRecord,
  type RunState,
  type RunTrigger,
  type SeenEvent,
  type StateStore,
  ZERO_COUNTS,
} from './types.js';
