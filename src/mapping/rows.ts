/**
 * One AuditEvent → connector rows (docs/mapping.md §3, §9). Pure: all lookups come through `lookup`, and the only state
 * is the per-resource memo inside the compiled mapping. One row per (event × distinct patient), attributed to the one
 * requesting human; missing critical values reject the row, other empty mandatory cells warn (or reject when strict).
 * Hot path (bench/transform.ts): no closures are created per event or row.
 */
import type { AuditEvent, HumanName } from 'fhir/r4.js';
import type { ResourceLookup } from '../reference-keys.js';
import type { WarningSink } from './builtins.js';
import type { View } from './cache.js';
import { programOf, type CellScope, type CompiledColumn, type MappingProgram } from './compile.js';
import { asPatient, patientSubjects, resolveUser, selectRequestor } from './context.js';
import { createResolver } from './resolve.js';
import type { RowContext } from './row-context.js';
import { joinCells } from '../connector-file/index.js';
import { MappedEvent } from './mapped-event.js';
import { chooseEventTime } from './time.js';
import type { CompiledMapping, EventMapResult, Row, RowReject } from './types.js';

/**
 * Warning codes of one event, as `<code>:<column>`; most events raise none, so the list is made on demand (a few
 * codes at most: an array beats a Set here).
 */
class EventWarnings implements WarningSink {
  private codes: string[] | undefined;
  column = '';

  warn(code: string): void {
    this.add(`${code}:${this.column}`);
  }

  add(code: string): void {
    if (this.codes === undefined) this.codes = [code];
    else if (!this.codes.includes(code)) this.codes.push(code);
  }

  list(): string[] {
    return this.codes ?? [];
  }
}

/** Records the warnings raised while a memoised value is computed, so every later hit can replay them. */
class Recorder implements WarningSink {
  readonly codes: string[] = [];

  warn(code: string): void {
    this.codes.push(code);
  }
}

function skippedBy(reason: string): EventMapResult {
  return new MappedEvent([], [], [], [], reason, undefined);
}

export function mapEvent(event: AuditEvent, mapping: CompiledMapping, lookup: ResourceLookup): EventMapResult {
  const program = programOf(mapping);
  const eventId = event.id ?? '';
  const { skip, options } = program;
  // docs/mapping.md §3.1: outcome is 0..1 and an absent outcome counts as success.
  if (skip.failureOutcome && event.outcome !== undefined && event.outcome !== '0') return skippedBy('failure-outcome');
  const resolver = createResolver(event, lookup, options.parseCxIdentifiers);
  const subjects = patientSubjects(event, resolver, options);
  if (subjects.length === 0) {
    return skip.noPatient ? skippedBy('no-patient') : new MappedEvent([], [], [{ eventId, reason: 'missing-patient' }], [], undefined, undefined);
  }
  const choice = selectRequestor(event, resolver);
  if (choice.kind === 'patient' && skip.patientRequestor) return skippedBy('patient-requestor');
  if (choice.kind === 'none' && skip.nonHumanRequestor) return skippedBy('non-human-requestor');
  const warnings = new EventWarnings();
  if (choice.kind === 'human' && choice.ambiguous) warnings.add('multiple-requestors');
  const requestor = choice.kind === 'none' ? undefined : choice.agent;
  const instant = chooseEventTime(event);
  const tMs = instant?.epochMs ?? Number.NaN;
  const { user, role, global } = resolveUser(requestor, resolver);
  const userView = user ? program.userViews.view(user, tMs) : undefined;
  const rows: Row[] = [];
  const lines: string[] = [];
  const rejects: RowReject[] = [];
  for (const subject of subjects) {
    const patient = asPatient(resolver.resolve(subject.ref, 'Patient'));
    const patientView = patient ? program.patientViews.view(patient, tMs) : undefined;
    if (!patient) warnings.add('unresolved-patient');
    // docs/mapping.md §3.3 (step 4), §5.4: a display-only patient keeps its display, as a name that cannot be split
    // (text-only).
    const name: HumanName | undefined = patientView ? patientView.name : subject.ref.display ? { text: subject.ref.display } : undefined;
    // One literal with every field, so all row contexts share a shape.
    const ctx: RowContext = {
      event, instant, tMs, requestor, user, role, userName: userView?.name, patient, subject, name, address: patientView?.address,
      resolver, options, timeFormat: program.timeFormat, userIdIsGlobal: global,
    };
    const outcome = mapRow(program, mapping.strict, ctx, patientView, userView, warnings);
    if (outcome.length === 2) rejects.push({ eventId, patientRef: subject.label, reason: outcome[0], column: outcome[1] });
    else {
      rows.push(outcome);
      lines.push(joinCells(outcome, program.delimiter));
    }
  }
  return new MappedEvent(rows, lines, rejects, warnings.list(), undefined, program.delimiter);
}

/** The row's cells, or [reason, column] when it is rejected (a row always has more than two cells). */
function mapRow(
  program: MappingProgram, strict: boolean, ctx: RowContext, patientView: View | undefined, userView: View | undefined, warnings: EventWarnings,
): readonly string[] {
  const columns = program.columns;
  const patientCells = patientView ? scopedCells(program, 'patient', patientView, ctx) : undefined;
  const userCells = userView ? scopedCells(program, 'user', userView, ctx) : undefined;
  const cells = new Array<string>(columns.length);
  for (let index = 0; index < columns.length; index += 1) {
    const column = columns[index] as CompiledColumn;
    const scope = column.scope;
    const memo = scope === 'patient' ? patientView : scope === 'user' ? userView : undefined;
    if (memo) {
      const position = program.scopedPosition[index] as number;
      cells[index] = ((scope === 'patient' ? patientCells : userCells) as readonly string[])[position] as string;
      const raised = memo.cellWarnings?.[position];
      if (raised) for (const code of raised) warnings.add(code);
    } else cells[index] = cellValue(program, column, ctx, patientView, userView, warnings);
  }
  for (const group of program.criticalGroups) {
    if (allEmpty(cells, group.columns)) return [`missing-${group.code}`, columns[group.columns[0] as number]?.name ?? ''];
  }
  for (const index of program.checkedColumns) {
    if (cells[index] !== '') continue;
    const name = (columns[index] as CompiledColumn).name;
    if (strict) return ['empty-mandatory', name];
    warnings.add(`empty-mandatory:${name}`);
  }
  return cells;
}

/**
 * The cells of the columns that read only the patient (or only the user), from the view: computed together on its
 * first use, with the warnings each raised kept for replay.
 */
function scopedCells(program: MappingProgram, scope: CellScope, view: View, ctx: RowContext): readonly string[] {
  if (view.cells) return view.cells;
  const indexes = program.scopedColumns[scope];
  const cells = new Array<string>(indexes.length);
  let raised: Array<readonly string[] | undefined> | undefined;
  for (let position = 0; position < indexes.length; position += 1) {
    const recorder = new EventWarnings();
    // No views: a whole-cell column's expressions have no slots, so every one is evaluated for this row.
    cells[position] = cellValue(program, program.columns[indexes[position] as number] as CompiledColumn, ctx, undefined, undefined, recorder);
    const codes = recorder.list();
    if (codes.length > 0) (raised ??= [])[position] = codes;
  }
  view.cells = cells;
  view.cellWarnings = raised;
  return cells;
}

function allEmpty(cells: readonly string[], indexes: readonly number[]): boolean {
  for (const index of indexes) if (cells[index] !== '') return false;
  return true;
}

/** First non-empty (sanitised) value of the column's expressions; patient- and user-scoped ones come from the memo. */
function cellValue(
  program: MappingProgram, column: CompiledColumn, ctx: RowContext, patientView: View | undefined, userView: View | undefined, warnings: EventWarnings,
): string {
  warnings.column = column.name;
  for (const expression of column.expressions) {
    const view = expression.scope === 'patient' ? patientView : expression.scope === 'user' ? userView : undefined;
    const value = view ? memoised(program, view, expression, ctx, warnings) : program.sanitize(expression.evaluate(ctx, warnings));
    if (value !== '') {
      if (expression.warn) warnings.add(expression.warn);
      return value;
    }
  }
  return '';
}

function memoised(
  program: MappingProgram, view: View, expression: CompiledColumn['expressions'][number], ctx: RowContext, warnings: EventWarnings,
): string {
  const slot = expression.slot;
  let value = view.values[slot];
  if (value === undefined) {
    const recorder = new Recorder();
    value = program.sanitize(expression.evaluate(ctx, recorder));
    view.values[slot] = value;
    if (recorder.codes.length > 0) (view.warnings ??= [])[slot] = recorder.codes;
  }
  const raised = view.warnings?.[slot];
  if (raised) for (const code of raised) warnings.warn(code);
  return value;
}
