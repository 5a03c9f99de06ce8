/** The sync domain's public surface: one run of a connector (pull → map → spool → push), its events and its state. */
export { runSync, type PushTarget, type SyncDeps, type SyncRequest, type SyncSummary } from './pipeline.js';
export type { EventSource } from './event-source.js';
export { SyncEvents, type SyncEventMap, type SyncEventName, type SyncListener } from './events.js';
export { attachRunLog } from './run-log.js';
export { createMapStep, type MapStep, type MapTallies } from './map-step.js';
export { connectorLeaseName, holdLease, type HeldLease, type LeasePolicy } from './lease.js';
export { computeWindow, eventKey, type SyncWindow, type WindowPolicy } from './window.js';
export { openStateStore, ZERO_COUNTS, type RunCounts, type RunDetails, type RunRecord, type RunState, type StateStore } from './state/index.js';
