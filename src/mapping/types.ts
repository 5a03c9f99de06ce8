/** The mapping contract the pipeline, CLI and service code against (re-exported by index.ts). */
import type { ConnectorSchema, Delimiter, DelimiterInput } from '../connector-file/index.js';

export type { ConnectorSchema, Delimiter, DelimiterInput } from '../connector-file/index.js';

export interface CompiledMapping {
  readonly schema: ConnectorSchema;
  /** The mapping file path (or a label for in-memory specs). */
  readonly source: string;
  /** Every schema column, in the documented order. `label` is the header text. */
  readonly columns: ReadonlyArray<{ name: string; label: string; mandatory: boolean }>;
  readonly delimiter: Delimiter;
  readonly strict: boolean;
}

/** Config-level overrides applied over the mapping file. */
export interface MappingOverrides {
  /** Field delimiter; default the file's, else `tab`. `comma` (or its older name `csv`) only for the healthcare schema. */
  delimiter?: DelimiterInput;
  /** Reject rows with any empty mandatory cell; default the file's, else false. */
  strict?: boolean;
  /** `iso-utc` | `iso-offset` | `local:<IANA zone>`; default the file's, else `iso-utc`. */
  timeFormat?: string;
  /** Named options merged over the file's `options` (e.g. `{ loginSystems: ['urn:oid:…'] }`): the configuration's. */
  options?: Record<string, unknown>;
  /**
   * Where the configuration set option `name` of `options`, e.g. `connectors.0.mapping.options.loginRegex in
   * /etc/bridge/config.json (line 12, column 7)` or `… (set by BRIDGE__connectors__0__mapping__options__loginRegex)`: a
   * value refused is the configuration's error (BRG_ERR_CONFIG_INVALID) naming it, not the mapping file's. Default:
   * `mapping.options.<name> in the configuration`.
   */
  optionOrigin?: (name: string) => string;
  /**
   * The FHIR base the events come from (the connector's fhir.baseUrl, e.g. `https://ehr.example.org/api/FHIR/R4`): an
   * absolute reference with another base names another server's resource and is not looked up as ours. Default none:
   * every base counts as ours (offline `bridge map`, whose lookups are the files given).
   */
  fhirBase?: string;
}

/** Cells in column order, already sanitised: never a line break, a TAB or the active delimiter. */
export type Row = readonly string[];

export interface RowReject {
  readonly eventId: string;
  /** Opaque pointer to the patient (`Patient/123`, `#contained`, or where an identifier sits); never an MRN or name. */
  readonly patientRef?: string;
  /** Stable code, e.g. `missing-employee-login`. */
  readonly reason: string;
  readonly column?: string;
  /** For `malformed-event`: the error's type and where in the bridge's code it arose (`TypeError at identifiers.ts:125`), never a value. */
  readonly detail?: string;
}

export interface EventMapResult {
  rows: Row[];
  /** Stable reason code when the whole event yields no rows by policy. */
  skipped?: string | undefined;
  rejects: readonly RowReject[];
  /** Stable codes such as `empty-mandatory:PATIENT.ZIP`; no PHI. */
  warnings: readonly string[];
}
