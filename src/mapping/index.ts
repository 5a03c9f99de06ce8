/**
 * Public surface of the mapping domain: FHIR R4 AuditEvent (+ Patient, Practitioner) → Purview EHR connector rows.
 * See: docs/mapping.md. Pure except load.ts (files).
 */
export { SCHEMA_COLUMNS, sanitizeCell } from '../connector-file/index.js';
export { compileMapping, localZoneOf } from './compile.js';
export {
  type ColumnFill,
  createFillCounter,
  FILL_FIXES,
  FILL_WARN_THRESHOLD,
  type FillCounter,
  type FillReport,
  type FillWarning,
  fillWarnings,
  formatShare,
  KEY_COLUMNS,
  mergeFillReports,
} from './fill.js';
export { builtinMappingPath, loadMapping, readNdjson } from './load.js';
export { collectReferences, departmentFollows, departmentLookups, splitsCxIdentifiers } from './prefetch.js';
export { mapEvent } from './rows.js';
export { createSerializer, type Serializer } from './serialize.js';
export { mappingJsonSchema } from './spec.js';
export type { CompiledMapping, ConnectorSchema, Delimiter, DelimiterInput, EventMapResult, MappingOverrides, Row, RowReject } from './types.js';
