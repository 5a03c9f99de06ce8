/**
 * The one owner of Purview's connector file format: both schemas' columns, the delimiter vocabulary, cell sanitising
 * and line building, the header check, and reading and normalising an existing file. The mapping turns events into
 * cells; the push stage sends blocks of a file; both go through here for what a connector file is.
 * See: docs/purview-protocol.md §5, docs/mapping.md §1 and §8.
 */
export { DELIMITER_CHARS, DELIMITER_INPUTS, type Delimiter, type DelimiterInput, toDelimiter } from './delimiters.js';
export { type DecodeInfo, encodingName, utf8Chunks } from './encoding.js';
export { encodeField, fieldValue, isEmptyField, splitFields } from './fields.js';
export { checkHeader, type HeaderCheckOptions, headerColumns, missingMandatoryColumns, sniffDelimiter } from './header.js';
export { joinCells } from './line.js';
export {
  DEFAULT_MAX_LINE_BYTES,
  type FlatFileSummary,
  holdsContent,
  type NormalizedFile,
  type NormalizeOptions,
  normalizeFlatFile,
  prefixSha256s,
  type SentContentHash,
} from './normalize.js';
export { columnAt, fieldAt, fieldStart, firstInvalidUtf8 } from './positions.js';
export { RowOffsets } from './row-offsets.js';
export { sanitizeCell, sanitizer } from './sanitize.js';
export { countFields, LineScanner, type ScanOptions } from './scanner.js';
export { type ConnectorSchema, MANDATORY_COLUMNS, SCHEMA_COLUMNS, SCHEMA_DELIMITERS, type SchemaColumn } from './schemas.js';
export { ConnectorFileWriter, openPrivateFile } from './writer.js';
