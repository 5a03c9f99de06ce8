/** The Purview push stage: Entra ID tokens, the delivery ledger contract, block planning, the upload and the push. */
export { CLOUDS, DEFAULT_RESOURCE, signalsUrl, type CloudName, type CloudPreset } from './clouds.js';
export { createPurviewTokenSource, type EntraCredential, type PurviewAuthOptions } from './auth.js';
export {
  destinationKey,
  eventClaimKey,
  type ClaimCursor,
  type ClaimDecision,
  type DeliveryLedger,
  type DeliveryTarget,
  type EventClaim,
  type OpenedBlock,
  type RangeRecord,
  type RowRange,
} from './ledger.js';
export {
  appendSegment,
  createUploadCounter,
  planRowBlocks,
  MAX_BYTES_PER_UPLOAD,
  MAX_ROWS_PER_UPLOAD,
  type RowBlockPlan,
  type UploadLimits,
} from './blocks.js';
export { EventSpoolWriter, isCompleteEventSpool, openEventSpool, type EventRows, type SpoolEvent } from './event-spool.js';
export { multipartFrame, type ByteRange, type MultipartFrame } from './upload.js';
export { emptyReport, type PushEvent, type PushEventMap, type PushEventName, type PushReport } from './push-events.js';
export { pushEventSpool, pushRowFile, DEFAULT_BLOCK_ROWS, DEFAULT_PUSH_TIMEOUT_MS, PUSH_RETRY, type PushOptions } from './push.js';
// What `bridge push` reads from the connector file module, for its callers' convenience.
export {
  DEFAULT_MAX_LINE_BYTES,
  MANDATORY_COLUMNS,
  normalizeFlatFile,
  type ConnectorSchema as ConnectorSchemaName,
  type NormalizedFile,
} from '../connector-file/index.js';
export { PurviewError } from './purview-error.js';
