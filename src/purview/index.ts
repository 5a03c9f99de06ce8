/** The Purview push stage: Entra ID tokens, block planning, the upload and the resumable, sequential push. */
export { CLOUDS, DEFAULT_RESOURCE, signalsUrl, type CloudName, type CloudPreset } from './clouds.js';
export { createPurviewTokenSource, type EntraCredential, type PurviewAuthOptions } from './auth.js';
export { createMemoryLedger, type BlockLedger, type BlockLedgerEntry, type BlockState, type MemoryLedger } from './ledger.js';
export { createBlockPlanner, planBlocks, MAX_BYTES_PER_UPLOAD, MAX_ROWS_PER_UPLOAD, type BlockPlan, type BlockPlanner, type UploadLimits } from './blocks.js';
export { scanSpool, type SpoolScan } from './spool.js';
export { multipartFrame, type MultipartFrame } from './upload.js';
export {
  pushSpoolFile, DEFAULT_BLOCK_ROWS, DEFAULT_PUSH_TIMEOUT_MS, PUSH_RETRY, type PushEvent, type PushOptions, type PushReport,
} from './push.js';
export {
  checkHeader, headerColumns, missingMandatoryColumns, sniffDelimiter, DELIMITER_CHARS, MANDATORY_COLUMNS, SCHEMA_DELIMITERS,
  type ConnectorSchemaName, type Delimiter,
} from './sniff.js';
export { normalizeFlatFile, type FlatFileSummary } from './flat-file.js';
