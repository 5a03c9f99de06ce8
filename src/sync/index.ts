/** The sync domain's public surface: one run of a connector (pull → map → spool → push), its events and its state. */
export type { EventSource } from './event-source.js';
export { type SyncEventMap, type SyncEventName, SyncEvents, type SyncListener } from './events.js';
export { connectorLeaseName, type HeldLease, holdLease, type LeasePolicy } from './lease.js';
export { createMapStep, type MapStep, type MapTallies } from './map-step.js';
export { type PushTarget, runSync, type SyncDeps, type SyncRequest, type SyncSummary } from './pipeline.js';
export { attachRunLog } from './run-log.js';
export { openStateStore, type RunCounts, type RunDetails, type RunRecord, type RunState, type StateStore, ZERO_COUNTS } from './state/index.js';
export { computeWindow, eventKey, type SyncWindow, type WindowPolicy } from './window.js';
