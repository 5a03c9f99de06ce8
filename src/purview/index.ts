/** The Purview push stage: Entra ID tokens, the delivery ledger contract, block planning, the upload and the push. */

// What `bridge push` reads from the connector file module, for its callers' convenience.
export {
  type ConnectorSchema as ConnectorSchemaName,
  DEFAULT_MAX_LINE_BYTES,
  holdsContent,
  MANDATORY_COLUMNS,
  type NormalizedFile,
  normalizeFlatFile,
  prefixSha256s,
  type SentContentHash,
} from '../connector-file/index.js';
export { createPurviewTokenSource, type EntraCredential, type PurviewAuthOptions } from './auth.js';
export {
  appendSegment,
  createUploadCounter,
  MAX_BYTES_PER_UPLOAD,
  MAX_ROWS_PER_UPLOAD,
  planRowBlocks,
  type RowBlockPlan,
  type UploadLimits,
} from './blocks.js';
export { CLOUDS, type CloudName, type CloudPreset, DEFAULT_RESOURCE, signalsUrl } from './clouds.js';
export { type EventRows, EventSpoolWriter, eventSpoolHeader, isCompleteEventSpool, openEventSpool, SPOOL_UNPUSHED, type SpoolEvent } from './event-spool.js';
export {
  type ClaimCursor,
  type ClaimDecision,
  type DeliveryLedger,
  type DeliveryTarget,
  destinationKey,
  type EventClaim,
  eventClaimKey,
  fileSource,
  type OpenedBlock,
  type RangeRecord,
  type RowRange,
  rowsSentOf,
} from './ledger.js';
export { PurviewError } from './purview-error.js';
export {
  DEFAULT_BLOCK_ROWS,
  DEFAULT_PUSH_TIMEOUT_MS,
  fileRowsText,
  PUSH_RETRY,
  type PushOptions,
  pushEventSpool,
  pushRowFile,
  type RowFilePushReport,
} from './push.js';
export { emptyReport, type PushEvent, type PushEventMap, type PushEventName, type PushReport } from './push-events.js';
export { type ByteRange, type MultipartFrame, multipartFrame } from './upload.js';
