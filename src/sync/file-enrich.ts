/**
 * FHIR enrichment of a dropped file (`enrich: { fhir: true }`): rows whose patient columns (names, address, city, ZIP,
 * state, country) or employee columns (login, names) are empty get them from the Patient found by the row's MRN
 * (`Patient?identifier=<system>|<mrn>`) and the Practitioner found by its user id. Only empty cells are filled; a
 * value from the file is never overwritten.
 *
 * The values are the connector's own mapping applied to the found resource (a probe AuditEvent per row naming the
 * patient and user by identifier, at the row's access time): the same name valid at that time, the same address
 * choice and sanitising as the FHIR sources would write. Lookups go through the connector's reference resolver —
 * the identifiers of `batchRows` rows at a time, searched `referenceBatchSize` per request (`identifier=a|1,a|2`), cached,
 * under the FHIR client's concurrency and rate limits.
 *
 * A second pass over the normalised spool writes the enriched copy; the file's content hash stays the one of the
 * file as dropped, so a rerun whose lookups come out differently still claims the same rows in the delivery ledger.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { AuditEvent, Patient, Practitioner, Reference } from 'fhir/r4.js';
import type { Clock } from '../clock.js';
import {
  ConnectorFileWriter,
  type ConnectorSchema,
  DELIMITER_CHARS,
  encodeField,
  fieldValue,
  isEmptyField,
  type NormalizedFile,
  RowOffsets,
  SCHEMA_COLUMNS,
  splitFields,
} from '../connector-file/index.js';
import { BridgeError } from '../errors.js';
import type { ReferenceResolver } from '../fhir/index.js';
import { type CompiledMapping, collectReferences, mapEvent, type Row } from '../mapping/index.js';
import { parseTimeFormat, type TimeFormat, wallTimeInZone } from '../mapping/time.js';
import { type IdentifierReference, identifierKey } from '../reference-keys.js';

export interface EnrichSettings {
  readonly resolver: ReferenceResolver;
  /** The connector's mapping, compiled non-strict (a probe row is never rejected for an empty optional cell). */
  readonly mapping: CompiledMapping;
  /** Identifier system of the MRN; undefined matches any system. */
  readonly mrnSystem?: string;
  /** Identifier system of the employee's user id; undefined matches any system. */
  readonly userSystem?: string;
  /** Rows whose identifiers are looked up together (fhir.prefetchEvents). */
  readonly batchRows: number;
  /** The probe's time when a row's access time cannot be read. */
  readonly clock: Clock;
  /** The zone of access times written without an offset (a Clarity export's local time); default UTC. */
  readonly timeZone?: string;
}

/** Per column: empty cells filled, and why the others stayed empty. */
export interface ColumnEnrichment {
  filled: number;
  /** The lookup found no resource (or more than one). */
  notFound: number;
  /** The row has no MRN (or user id) to look up. */
  noKey: number;
  /** Found, but FHIR has no value for it either. */
  emptyInFhir: number;
}

export interface EnrichReport {
  readonly rows: number;
  readonly rowsEnriched: number;
  readonly columns: Record<string, ColumnEnrichment>;
  /** Distinct identifiers looked up, per side, and how many found nothing. */
  readonly lookups: { readonly patient: { found: number; notFound: number }; readonly employee: { found: number; notFound: number } };
}

export interface FileEnricher {
  /** Writes the enriched copy of `file` to `outPath` (0600) and returns it as the file to push. */
  enrich(file: NormalizedFile, outPath: string, signal?: AbortSignal): Promise<{ file: NormalizedFile; report: EnrichReport }>;
}

type Side = 'patient' | 'employee';

/** The columns each side fills and the one it looks up by, per schema (names as in SCHEMA_COLUMNS). */
const COLUMNS: Readonly<Record<ConnectorSchema, { time: string; patientKey: string; patient: string[]; employeeKey: string; employee: string[] }>> = {
  epic: {
    time: 'ACCESS_LOG.ACCESS_TIME',
    patientKey: 'PATIENT.PAT_MRN_ID',
    employeeKey: 'CLARITY_EMP.USER_ID',
    patient: [
      'PATIENT.PAT_FIRST_NAME',
      'PATIENT.PAT_MIDDLE_NAME',
      'PATIENT.PAT_LAST_NAME',
      'PATIENT.ADD_LINE_1',
      'PATIENT.ADD_LINE_2',
      'PATIENT.CITY',
      'PATIENT.ZIP',
      'ZC_STATE.NAME',
      'ZC_COUNTRY.NAME',
    ],
    employee: ['EMP.SYSTEM_LOGIN', 'employee_last_name', 'employee_first_name'],
  },
  healthcare: {
    time: 'Creation Time',
    patientKey: 'Patient Reg Id',
    employeeKey: 'Employee Id',
    patient: [
      'Patient First Name',
      'Patient Middle Name',
      'Patient Last Name',
      'Patient Address Line 1',
      'Patient Address Line 2',
      'Patient City',
      'Patient Zip Code',
      'Patient State',
      'Patient Country',
    ],
    employee: ['Email Address (UPN) or SamAccountName', 'Employee Last Name', 'Employee First Name'],
  },
};

/** The column names each side fills, for reports and tests. */
export function enrichedColumns(schema: ConnectorSchema): { patient: readonly string[]; employee: readonly string[] } {
  return { patient: COLUMNS[schema].patient, employee: COLUMNS[schema].employee };
}

export function createFileEnricher(settings: EnrichSettings): FileEnricher {
  const schema = settings.mapping.schema;
  const names = SCHEMA_COLUMNS[schema].map((c) => c.name);
  const at = (name: string): number => names.indexOf(name);
  const spec = COLUMNS[schema];
  const layout = {
    time: at(spec.time),
    patientKey: at(spec.patientKey),
    employeeKey: at(spec.employeeKey),
    patient: spec.patient.map(at),
    employee: spec.employee.map(at),
  };
  return {
    async enrich(file, outPath, signal) {
      const tally = new Tally(names);
      const writer = new ConnectorFileWriter(outPath, file.header.toString('utf8').replace(/\r\n$/, ''));
      const offsets = new RowOffsets(writer.bytes);
      const lines = createInterface({
        input: createReadStream(file.spoolPath, { encoding: 'utf8', start: file.header.length }),
        crlfDelay: Number.POSITIVE_INFINITY,
      });
      let batch: string[] = [];
      const flush = async (): Promise<void> => {
        const plans = batch.map((line) => planRow(line, file.delimiter, layout, settings));
        batch = [];
        const wanted = new Map<string, IdentifierReference>();
        for (const plan of plans) for (const ref of plan.lookups) wanted.set(refKey(ref), ref);
        if (wanted.size > 0) await settings.resolver.prefetch({ keys: [], identifiers: [...wanted.values()] }, signal);
        for (const ref of wanted.values()) tally.lookup(ref.type === 'Patient' ? 'patient' : 'employee', settings.resolver.get(refKey(ref)) !== undefined);
        for (const plan of plans) offsets.rowEnded(writer.append([fillRow(plan, file.delimiter, settings, tally, names)]));
      };
      try {
        for await (const line of lines) {
          if (line.length === 0) continue;
          batch.push(line);
          if (batch.length >= settings.batchRows) await flush();
        }
        await flush();
        writer.finish();
      } finally {
        writer.close();
        lines.close();
      }
      if (offsets.rowCount !== file.rows)
        throw new BridgeError('BRG_ERR_INTERNAL', `Enriching ${file.spoolPath} read ${offsets.rowCount} rows of ${file.rows}.`);
      return { file: { ...file, spoolPath: outPath, bytes: writer.bytes, offsets }, report: tally.report(offsets.rowCount) };
    },
  };
}

/** Adds one report to another (a run enriches several files). */
export function mergeEnrichReports(a: EnrichReport | undefined, b: EnrichReport): EnrichReport {
  if (!a) return b;
  const columns: Record<string, ColumnEnrichment> = {};
  for (const name of new Set([...Object.keys(a.columns), ...Object.keys(b.columns)])) {
    const x = a.columns[name];
    const y = b.columns[name];
    columns[name] = {
      filled: (x?.filled ?? 0) + (y?.filled ?? 0),
      notFound: (x?.notFound ?? 0) + (y?.notFound ?? 0),
      noKey: (x?.noKey ?? 0) + (y?.noKey ?? 0),
      emptyInFhir: (x?.emptyInFhir ?? 0) + (y?.emptyInFhir ?? 0),
    };
  }
  const sum = (s: Side) => ({ found: a.lookups[s].found + b.lookups[s].found, notFound: a.lookups[s].notFound + b.lookups[s].notFound });
  return { rows: a.rows + b.rows, rowsEnriched: a.rowsEnriched + b.rowsEnriched, columns, lookups: { patient: sum('patient'), employee: sum('employee') } };
}

type Layout = { time: number; patientKey: number; employeeKey: number; patient: number[]; employee: number[] };

interface RowPlan {
  readonly fields: string[];
  readonly line: string;
  /** Empty columns of each side, by index. */
  readonly empty: Readonly<Record<Side, number[]>>;
  readonly probe: { readonly recorded: string; readonly mrn?: string; readonly userId?: string };
  /** What the probes will look up, as the mapping itself asks for it. */
  readonly lookups: IdentifierReference[];
  readonly refs: Partial<Record<Side, IdentifierReference>>;
}

function planRow(line: string, delimiter: NormalizedFile['delimiter'], layout: Layout, settings: EnrichSettings): RowPlan {
  const fields = splitFields(line, delimiter);
  const value = (index: number): string => fieldValue(fields[index] ?? '', delimiter);
  const empty = {
    patient: layout.patient.filter((i) => isEmptyField(fields[i] ?? '', delimiter)),
    employee: layout.employee.filter((i) => isEmptyField(fields[i] ?? '', delimiter)),
  };
  const mrn = empty.patient.length > 0 ? value(layout.patientKey) : '';
  const userId = empty.employee.length > 0 ? value(layout.employeeKey) : '';
  const parsed = accessTime(value(layout.time), settings);
  const recorded = new Date(parsed ?? settings.clock.now()).toISOString();
  const probe = { recorded, ...(mrn ? { mrn } : {}), ...(userId ? { userId } : {}) };
  const refs: Partial<Record<Side, IdentifierReference>> = {};
  const lookups = mrn || userId ? collectReferences(probeEvent(probe, settings, false), settings.mapping).identifiers.slice() : [];
  for (const ref of lookups) refs[ref.type === 'Patient' ? 'patient' : 'employee'] = ref;
  return { fields, line, empty, probe, lookups, refs };
}

const WITH_OFFSET = /(?:Z|[+-]\d{2}:?\d{2})$/i;
const zones = new Map<string, Extract<TimeFormat, { kind: 'local' }> | undefined>();

/**
 * A row's access time in epoch ms, for choosing the name and address valid then: as written when it carries its offset,
 * else as wall-clock time in `timeZone` (UTC by default), never in this host's zone (a container's is UTC, a
 * Windows server's the site's: the same file would be read two ways). undefined when it is no time.
 */
function accessTime(text: string, settings: EnrichSettings): number | undefined {
  if (WITH_OFFSET.test(text.trim())) {
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? undefined : ms;
  }
  const zone = settings.timeZone ?? 'UTC';
  if (!zones.has(zone)) {
    const format = parseTimeFormat(`local:${zone}`);
    zones.set(zone, format?.kind === 'local' ? format : undefined);
  }
  const format = zones.get(zone);
  return format === undefined ? undefined : wallTimeInZone(isoWallTime(text.trim()), format);
}

const US_TIME = /^(\d{1,2})\/(\d{1,2})\/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP]M)?)?$/i;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The wall-clock forms exports write besides ISO's, as ISO: `12/7/2026 2:30:00 PM` (en-US, as SQL Server Management
 * Studio and PowerShell write it) and a date alone (its midnight). Anything else as it is.
 */
function isoWallTime(text: string): string {
  if (DATE_ONLY.test(text)) return `${text} 00:00:00`;
  const us = US_TIME.exec(text);
  if (!us) return text;
  const [, month = '', day = '', year = '', hour = '0', minute = '00', second = '00', half] = us;
  let h = Number(hour);
  if (half !== undefined) {
    if (h < 1 || h > 12) return text;
    h = (h % 12) + (half.toUpperCase() === 'PM' ? 12 : 0);
  }
  const two = (value: string | number): string => String(value).padStart(2, '0');
  return `${year}-${two(month)}-${two(day)} ${two(h)}:${minute}:${second}`;
}

/** The row with its empty cells filled where FHIR has a value; counts every empty cell's outcome. */
function fillRow(plan: RowPlan, delimiter: NormalizedFile['delimiter'], settings: EnrichSettings, tally: Tally, names: readonly string[]): string {
  const lookup = settings.resolver;
  const found = (side: Side): boolean => plan.refs[side] !== undefined && lookup.get(refKey(plan.refs[side] as IdentifierReference)) !== undefined;
  const cells = probeCells(plan, settings, found('patient'), found('employee'));
  let changed = false;
  for (const side of ['patient', 'employee'] as const) {
    for (const index of plan.empty[side]) {
      const name = names[index] as string;
      if (!plan.refs[side]) tally.column(name, 'noKey');
      else if (!found(side)) tally.column(name, 'notFound');
      else {
        const value = cells[side]?.[index] ?? '';
        if (value === '') tally.column(name, 'emptyInFhir');
        else {
          plan.fields[index] = encodeField(value, delimiter);
          tally.column(name, 'filled');
          changed = true;
        }
      }
    }
  }
  if (changed) tally.rowEnriched();
  return changed ? plan.fields.join(DELIMITER_CHARS[delimiter]) : plan.line;
}

/**
 * The mapping's cells for the found sides. One probe for both; if the mapping refuses it (e.g. the user has no
 * login, a critical column), each side alone, the user side last with a placeholder login so its names still come.
 */
function probeCells(plan: RowPlan, settings: EnrichSettings, patient: boolean, employee: boolean): Partial<Record<Side, Row>> {
  if (!patient && !employee) return {};
  const map = (mrn: boolean, user: boolean, placeholderLogin: boolean): Row | undefined => {
    const probe = { recorded: plan.probe.recorded, ...(mrn ? { mrn: plan.probe.mrn } : {}), ...(user ? { userId: plan.probe.userId } : {}) };
    return mapEvent(probeEvent(probe, settings, placeholderLogin), settings.mapping, settings.resolver).rows[0];
  };
  const both = map(patient, employee, !employee);
  if (both) return { ...(patient ? { patient: both } : {}), ...(employee ? { employee: both } : {}) };
  const patientRow = patient ? map(true, false, true) : undefined;
  const employeeRow = employee ? map(false, true, false) : undefined;
  // With the placeholder login only the names are the user's: the login cell is dropped.
  const namesOnly = employee && !employeeRow ? map(false, true, true)?.map((cell, index) => (index === loginIndex(settings) ? '' : cell)) : undefined;
  const employeeCells = employeeRow ?? namesOnly;
  return { ...(patientRow ? { patient: patientRow } : {}), ...(employeeCells ? { employee: employeeCells } : {}) };
}

function loginIndex(settings: EnrichSettings): number {
  const schema = settings.mapping.schema;
  return SCHEMA_COLUMNS[schema].findIndex((c) => c.name === COLUMNS[schema].employee[0]);
}

const PLACEHOLDER_PATIENT: Patient = { resourceType: 'Patient', id: 'enrich-patient', name: [{ family: '-', given: ['-'] }] };
const PLACEHOLDER_USER: Practitioner = { resourceType: 'Practitioner', id: 'enrich-user', name: [{ family: '-', given: ['-'] }] };
/** Matches the default login pattern; its cell is never used (names-only probe). */
const PLACEHOLDER_LOGIN = 'enrich@placeholder.invalid';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';

/** An AuditEvent saying "this user read this patient at this time", naming both by identifier (or a stand-in). */
function probeEvent(
  probe: { recorded: string; mrn?: string | undefined; userId?: string | undefined },
  settings: EnrichSettings,
  placeholderLogin: boolean,
): AuditEvent {
  const identifier = (system: string | undefined, value: string) => (system ? { system, value } : { value });
  const what: Reference = probe.mrn ? { type: 'Patient', identifier: identifier(settings.mrnSystem, probe.mrn) } : { reference: '#enrich-patient' };
  const who: Reference = probe.userId ? { type: 'Practitioner', identifier: identifier(settings.userSystem, probe.userId) } : { reference: '#enrich-user' };
  return {
    resourceType: 'AuditEvent',
    id: 'enrich',
    recorded: probe.recorded,
    outcome: '0',
    type: { code: 'rest' },
    contained: [...(probe.mrn ? [] : [PLACEHOLDER_PATIENT]), ...(probe.userId ? [] : [PLACEHOLDER_USER])],
    agent: [{ requestor: true, who, ...(placeholderLogin ? { altId: PLACEHOLDER_LOGIN } : {}) }],
    source: { observer: { display: 'flat-file' } },
    entity: [{ what, role: { system: OBJECT_ROLE, code: '1' } }],
  };
}

function refKey(ref: IdentifierReference): string {
  return identifierKey(ref.type, ref.system, ref.value);
}

class Tally {
  private readonly columns: Record<string, ColumnEnrichment> = {};
  private enriched = 0;
  private readonly lookups = { patient: { found: 0, notFound: 0 }, employee: { found: 0, notFound: 0 } };

  constructor(private readonly names: readonly string[]) {}

  column(name: string, outcome: keyof ColumnEnrichment): void {
    let entry = this.columns[name];
    if (!entry) {
      entry = { filled: 0, notFound: 0, noKey: 0, emptyInFhir: 0 };
      this.columns[name] = entry;
    }
    entry[outcome] += 1;
  }

  lookup(side: Side, found: boolean): void {
    this.lookups[side][found ? 'found' : 'notFound'] += 1;
  }

  rowEnriched(): void {
    this.enriched += 1;
  }

  report(rows: number): EnrichReport {
    // Columns in schema order, for a stable report.
    const columns: Record<string, ColumnEnrichment> = {};
    for (const name of this.names) if (this.columns[name]) columns[name] = this.columns[name];
    return { rows, rowsEnriched: this.enriched, columns, lookups: { patient: { ...this.lookups.patient }, employee: { ...this.lookups.employee } } };
  }
}
