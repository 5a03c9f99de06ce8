/**
 * Public surface of the mapping domain: FHIR R4 AuditEvent (+ Patient, Practitioner) → Purview EHR connector rows.
 * See: docs/mapping.md. Pure except load.ts (files).
 */
export type { CompiledMapping, ConnectorSchema, Delimiter, DelimiterInput, EventMapResult, MappingOverrides, Row, RowReject } from './types.js';
export { compileMapping } from './compile.js';
export { builtinMappingPath, loadMapping, readNdjson } from './load.js';
export { collectReferences } from './prefetch.js';
export { mapEvent } from './rows.js';
export { createSerializer, type Serializer } from './serialize.js';
export { sanitizeCell, SCHEMA_COLUMNS } from '../connector-file/index.js';
export { mappingJsonSchema } from './spec.js';
export {
  createFillCounter,
  fillWarnings,
  formatShare,
  mergeFillReports,
  FILL_FIXES,
  FILL_WARN_THRESHOLD,
  KEY_COLUMNS,
  type ColumnFill,
  type FillCounter,
  type FillReport,
  type FillWarning,
} from './fill.js';
