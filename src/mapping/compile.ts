/**
 * Mapping file → compiled program, once per run. Pure: load.ts does the reading. Everything that can be wrong with
 * a file (shape, unknown or missing columns, expressions, options, delimiter, time zone) fails here.
 */
import type { Patient, Practitioner } from 'fhir/r4.js';
import type { z } from 'zod';
import { SCHEMA_COLUMNS, SCHEMA_DELIMITERS, type SchemaColumn, sanitizer, toDelimiter } from '../connector-file/index.js';
import { BridgeError } from '../errors.js';
import type { Scope } from './builtins.js';
import { createViewCache, type ViewCache } from './cache.js';
import { type CompiledExpression, compileExpression } from './expression.js';
import { checkUnusedOptions, type ResolvedOptions, resolveOptions, resolveSkipPolicy, type SkipPolicy } from './options.js';
import { compileRowFunction, type RowFunction } from './row-code.js';
import { type ColumnSpec, type MappingFileSpec, mappingFileSpec } from './spec.js';
import { parseTimeFormat, type TimeFormat } from './time.js';
import type { CompiledMapping, Delimiter, MappingOverrides } from './types.js';

export interface CompiledColumn {
  readonly name: string;
  readonly label: string;
  readonly mandatory: boolean;
  readonly allowEmpty: boolean;
  /**
   * patient or user when every expression reads only that scope: the whole cell is then memoised per view
   * (cache.ts), and its expressions take no slots; event otherwise (per-expression slots where they apply).
   */
  readonly scope: Scope;
  readonly expressions: readonly CompiledExpression[];
}

export type CellScope = Exclude<Scope, 'event'>;

/** What the row engine reads (interpret.ts, and row-code.ts when it generates the row function). */
export interface ProgramCore {
  readonly columns: readonly CompiledColumn[];
  /** Indexes of the columns whose scope is patient (resp. user), in column order: a view's `cells` follow it. */
  readonly scopedColumns: Readonly<Record<CellScope, readonly number[]>>;
  /** Per column: its position in scopedColumns[its scope], or -1 for event columns. */
  readonly scopedPosition: readonly number[];
  /**
   * Event columns whose first expression reads only the patient (resp. the user) from a memo slot and raises no `warn`
   * of its own, such as the MRN (mrn, then the subject's identifier) or the user's family name: when that slot holds a
   * value, it is the cell. In column order.
   */
  readonly leadingColumns: Readonly<Record<CellScope, readonly number[]>>;
  /**
   * Runs of two or more adjacent columns that are memoised (scopedColumns) or led (leadingColumns) in the same scope
   * (first and last column index). A view keeps each run's cells joined as one line segment when every led cell has its
   * value (viewLayout), so a row's line copies one string per run and reads none of the run's cells (row-code.ts).
   */
  readonly scopedRuns: Readonly<Record<CellScope, ReadonlyArray<{ readonly first: number; readonly last: number }>>>;
  /** Indexes of the mandatory columns that warn (or reject, when strict) if empty. */
  readonly checkedColumns: readonly number[];
  /** Each group rejects the row ("missing-<code>") when all its columns are empty. */
  readonly criticalGroups: ReadonlyArray<{ readonly code: string; readonly columns: readonly number[] }>;
  readonly options: ResolvedOptions;
  readonly skip: SkipPolicy;
  readonly timeFormat: TimeFormat;
  readonly delimiter: Delimiter;
  readonly sanitize: (value: string) => string;
  readonly patientViews: ViewCache<Patient>;
  readonly userViews: ViewCache<Practitioner>;
  readonly needsDepartment: boolean;
  /** Reject rows with any empty mandatory cell (the mapping's `strict`). */
  readonly strict: boolean;
}

/**
 * Where a view's `cells` keep what (cache.ts): the memoised cells (scopedColumns order), then the led cells'
 * values (leadingColumns order), then one line segment per run (undefined when a led cell of the run has no value).
 */
export function viewLayout(program: ProgramCore, scope: CellScope): { cellOf(column: number): number; segmentOf(run: number): number } {
  const whole = program.scopedColumns[scope];
  const leading = program.leadingColumns[scope];
  return {
    cellOf: (column) => (program.columns[column]?.scope === scope ? (program.scopedPosition[column] as number) : whole.length + leading.indexOf(column)),
    segmentOf: (run) => whole.length + leading.length + run,
  };
}

/** The expression a column tries first (for a led column, the one its view keeps; leadingColumns). */
export function leadingExpression(column: CompiledColumn): CompiledExpression | undefined {
  return column.expressions.find((expression) => !expression.never);
}

export interface MappingProgram extends ProgramCore {
  /** The columns as one specialised function (row-code.ts). */
  readonly row: RowFunction;
}

const PROGRAM = Symbol('mapping program');
type Compiled = CompiledMapping & { readonly [PROGRAM]: MappingProgram };

/** The IANA zone of a mapping whose timeFormat is `local:<zone>`: the site's local time. */
export function localZoneOf(mapping: CompiledMapping): string | undefined {
  const format = programOf(mapping).timeFormat;
  return format.kind === 'local' ? format.zone : undefined;
}

export function programOf(mapping: CompiledMapping): MappingProgram {
  const program = (mapping as Partial<Compiled>)[PROGRAM];
  if (!program) throw new BridgeError('BRG_ERR_INTERNAL', 'This mapping was not made by compileMapping/loadMapping.');
  return program;
}

export function compileMapping(spec: unknown, source: string, overrides: MappingOverrides = {}): CompiledMapping {
  const file = parseSpec(spec, source);
  if (file.extends) throw invalid(source, '"extends" is resolved by loadMapping; pass a complete mapping to compileMapping');
  if (!file.schema) throw invalid(source, '"schema" is required (epic or healthcare)');
  const schema = file.schema;
  const options = resolveOptions(file, overrides.options, source, overrides.fhirBase, overrides.optionOrigin);
  const delimiter: Delimiter = toDelimiter(overrides.delimiter ?? file.delimiter ?? 'tab');
  if (!SCHEMA_DELIMITERS[schema].includes(delimiter)) {
    throw invalid(
      source,
      `delimiter "${delimiter}" is only allowed for the healthcare schema; the ${schema} connector takes ${SCHEMA_DELIMITERS[schema].join(' or ')}`,
    );
  }
  const timeText = overrides.timeFormat ?? file.timeFormat ?? 'iso-utc';
  const timeFormat = parseTimeFormat(timeText);
  if (!timeFormat) throw invalid(source, `timeFormat "${timeText}" is not iso-utc, iso-offset or local:<IANA zone> with a zone this Node knows`);
  const ordered = orderColumns(file.columns, SCHEMA_COLUMNS[schema], source);
  const slots: Record<CellScope, number> = { patient: 0, user: 0 };
  const slotFor = (scope: Scope): number => (scope === 'event' ? -1 : slots[scope]++);
  const columns = ordered.map(({ spec: column, schemaColumn }) => compileColumn(column, schemaColumn, source, options, slotFor));
  checkLabels(columns, delimiter, source);
  checkUnusedOptions(options, new Set(columns.flatMap((column) => column.expressions.flatMap((expression) => expression.variables))), source);
  const indexesWhere = (test: (column: CompiledColumn) => boolean): number[] => columns.flatMap((column, index) => (test(column) ? [index] : []));
  const scopedColumns = { patient: indexesWhere((column) => column.scope === 'patient'), user: indexesWhere((column) => column.scope === 'user') };
  const runs = { patient: runsOf(columns, 'patient'), user: runsOf(columns, 'user') };
  const leadingColumns = {
    patient: indexesWhere((column) => ledBy(column, 'patient')).filter((index) => runHolding(runs.patient, index) >= 0),
    user: indexesWhere((column) => ledBy(column, 'user')).filter((index) => runHolding(runs.user, index) >= 0),
  };
  const strict = overrides.strict ?? file.strict ?? false;
  const core: ProgramCore = {
    columns,
    scopedColumns,
    scopedPosition: columns.map((column, index) => (column.scope === 'event' ? -1 : scopedColumns[column.scope].indexOf(index))),
    leadingColumns,
    scopedRuns: runs,
    checkedColumns: indexesWhere((column) => column.mandatory && !column.allowEmpty),
    criticalGroups: criticalGroups(ordered.map((entry) => entry.spec)),
    options,
    skip: resolveSkipPolicy(file),
    timeFormat,
    delimiter,
    sanitize: sanitizer(delimiter),
    patientViews: createViewCache<Patient>(slots.patient),
    userViews: createViewCache<Practitioner>(slots.user),
    needsDepartment: columns.some((column) => column.expressions.some((expression) => expression.text === 'builtin:department')),
    strict,
  };
  const program: MappingProgram = { ...core, row: compileRowFunction(core) };
  const compiled: Compiled = {
    schema,
    source,
    delimiter,
    strict,
    columns: columns.map(({ name, label, mandatory }) => ({ name, label, mandatory })),
    [PROGRAM]: program,
  };
  return Object.freeze(compiled);
}

/**
 * The header labels as written (sanitised): none empty (a mandatory column would be missing, and Purview imports none of
 * the file), no two alike (the portal matches names case-insensitively: one column's data could land in another's field),
 * and no pipe in a comma file's (the delimiter is told by the header, a pipe before a comma: the file would read as
 * pipe-separated).
 */
function checkLabels(columns: readonly CompiledColumn[], delimiter: Delimiter, source: string): void {
  const clean = sanitizer(delimiter);
  const seen = new Map<string, string>();
  for (const column of columns) {
    const label = clean(column.label);
    if (label === '') fail(source, `column "${column.name}" has a label that is empty once cleaned (white space, control characters)`, { column: column.name });
    if (delimiter === 'comma' && label.includes('|'))
      fail(source, `column "${column.name}" has a label with "|": a comma file's header holding one reads as pipe-separated`, { column: column.name });
    const earlier = seen.get(label.toLowerCase());
    if (earlier !== undefined)
      fail(source, `columns "${earlier}" and "${column.name}" have the same label "${label}" (names are matched without case)`, { column: column.name });
    seen.set(label.toLowerCase(), column.name);
  }
}

function parseSpec(spec: unknown, source: string): MappingFileSpec {
  const parsed = mappingFileSpec.safeParse(spec);
  if (parsed.success) return parsed.data;
  const issue = deepestIssue(parsed.error.issues[0]);
  const path = issue?.path ?? [];
  const columns = (spec as { columns?: unknown } | null)?.columns;
  const raw = path[0] === 'columns' && Array.isArray(columns) ? (columns[Number(path[1])] as { name?: unknown; expressions?: unknown } | undefined) : undefined;
  const column = typeof raw?.name === 'string' ? raw.name : undefined;
  const expression = path[2] === 'expressions' && Array.isArray(raw?.expressions) ? JSON.stringify(raw.expressions[Number(path[3])]) : undefined;
  const where = column ? `column "${column}"${expression ? `, expression ${expression}` : ''}` : `at ${path.join('.') || '(root)'}`;
  return fail(source, `${where}: ${issue?.message ?? 'invalid'}`, { ...(column ? { column } : {}), ...(expression ? { expression } : {}) });
}

/**
 * zod reports a bad union member as "Invalid input"; the branch that fits best (fewest issues, then the deepest)
 * says what is actually wrong, e.g. the unknown built-in name rather than a missing "expression" key.
 */
function deepestIssue(issue: z.core.$ZodIssue | undefined): z.core.$ZodIssue | undefined {
  if (issue?.code !== 'invalid_union') return issue;
  const branches = issue.errors.filter((branch) => branch.length > 0);
  branches.sort((a, b) => a.length - b.length || (b[0]?.path.length ?? 0) - (a[0]?.path.length ?? 0));
  const best = deepestIssue(branches[0]?.[0]);
  return best ? { ...best, path: [...issue.path, ...best.path] } : issue;
}

function orderColumns(
  specs: readonly ColumnSpec[],
  schemaColumns: readonly SchemaColumn[],
  source: string,
): Array<{ spec: ColumnSpec; schemaColumn: SchemaColumn }> {
  const byName = new Map<string, ColumnSpec>();
  for (const spec of specs) {
    if (!schemaColumns.some((column) => column.name === spec.name)) {
      fail(source, `unknown column "${spec.name}"; this schema's columns are: ${schemaColumns.map((column) => column.name).join(', ')}`, { column: spec.name });
    }
    if (byName.has(spec.name)) fail(source, `column "${spec.name}" is listed twice`, { column: spec.name });
    byName.set(spec.name, spec);
  }
  const missing = schemaColumns.filter((column) => !byName.has(column.name)).map((column) => column.name);
  if (missing.length > 0)
    fail(source, `missing columns: ${missing.join(', ')} (every schema column needs an entry; or use "extends")`, { column: missing[0] ?? '' });
  return schemaColumns.map((schemaColumn) => ({ spec: byName.get(schemaColumn.name) as ColumnSpec, schemaColumn }));
}

function compileColumn(
  spec: ColumnSpec,
  schemaColumn: SchemaColumn,
  source: string,
  options: ResolvedOptions,
  slotFor: (scope: Scope) => number,
): CompiledColumn {
  if (!spec.expressions) fail(source, `column "${spec.name}" has no expressions`, { column: spec.name });
  if (schemaColumn.mandatory && spec.mandatory === false)
    fail(source, `column "${spec.name}" is mandatory in the Purview schema and cannot be marked optional`, { column: spec.name });
  const compiled = (spec.expressions ?? []).map((entry) =>
    compileExpression(entry, { source, column: spec.name, join: spec.join, options: options.variables, settingOf: options.settingOf }),
  );
  const first = compiled[0]?.scope ?? 'event';
  const scope = compiled.every((expression) => expression.scope === first) ? first : 'event';
  // A whole-cell memo needs no per-expression slots; mixed columns memoise what they can, expression by expression.
  const expressions = compiled.map((expression) => ({ ...expression, slot: scope === 'event' ? slotFor(expression.scope) : -1 }));
  return {
    name: spec.name,
    label: spec.label ?? spec.name,
    mandatory: spec.mandatory ?? schemaColumn.mandatory,
    allowEmpty: spec.allowEmpty ?? false,
    scope,
    expressions,
  };
}

/** The index of the run that holds column `index`, or -1. */
export function runHolding(runs: ProgramCore['scopedRuns'][CellScope], index: number): number {
  return runs.findIndex((run) => run.first <= index && index <= run.last);
}

/** An event column whose first expression is memoised in `scope`'s views and has no `warn` (leadingColumns). */
function ledBy(column: CompiledColumn, scope: CellScope): boolean {
  if (column.scope !== 'event') return false;
  const first = leadingExpression(column);
  return first !== undefined && first.scope === scope && first.slot >= 0 && first.warn === undefined;
}

function runsOf(columns: readonly CompiledColumn[], scope: CellScope): Array<{ first: number; last: number }> {
  const runs: Array<{ first: number; last: number }> = [];
  const member = (column: CompiledColumn | undefined): boolean => column !== undefined && (column.scope === scope || ledBy(column, scope));
  for (let first = 0; first < columns.length; first += 1) {
    if (!member(columns[first])) continue;
    let last = first;
    while (member(columns[last + 1])) last += 1;
    if (last > first) runs.push({ first, last });
    first = last;
  }
  return runs;
}

function criticalGroups(specs: readonly ColumnSpec[]): Array<{ code: string; columns: number[] }> {
  const groups = new Map<string, number[]>();
  specs.forEach((spec, index) => {
    if (!spec.critical) return;
    const code =
      spec.critical === true
        ? spec.name
            .toLowerCase()
            .replace(/[^a-z0-9]+/g, '-')
            .replace(/^-|-$/g, '')
        : spec.critical;
    groups.set(code, [...(groups.get(code) ?? []), index]);
  });
  return [...groups].map(([code, columns]) => ({ code, columns }));
}

function fail(source: string, what: string, details: Record<string, string> = {}): never {
  throw invalid(source, what, details);
}

function invalid(source: string, what: string, details: Record<string, string> = {}): BridgeError {
  return new BridgeError('BRG_ERR_MAPPING_INVALID', `Mapping file ${source}: ${what}.`, { details: { file: source, ...details } });
}
