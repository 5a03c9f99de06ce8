/**
 * One AuditEvent → connector rows (§3, §9). Pure: all lookups come through `lookup`, and the only state is the
 * per-resource memo inside the compiled mapping. One row per (event × distinct patient), attributed to the one
 * requesting human; missing critical values reject the row, other empty mandatory cells warn (or reject when strict).
 * Hot path (bench/transform.ts): no closures are created per event or row.
 */
import type { AuditEvent, HumanName } from 'fhir/r4.js';
import type { ResourceLookup } from '../references.js';
import type { WarningSink } from './builtins.js';
import type { View } from './cache.js';
import { programOf, type CompiledColumn, type MappingProgram } from './compile.js';
import { asPatient, patientSubjects, resolveUser, selectRequestor, type PatientSubject } from './context.js';
import { createResolver } from './resolve.js';
import type { RowContext } from './row-context.js';
import { markSanitised } from './sanitize.js';
import { chooseEventTime } from './time.js';
import type { CompiledMapping, EventMapResult, Row, RowReject } from './types.js';

type EventContext = Omit<RowContext, 'patient' | 'subject' | 'name' | 'address'>;

/** Warning codes of one event, stored as `<code>:<column>`; most events raise none, so the set is made on demand. */
class EventWarnings implements WarningSink {
  private codes: Set<string> | undefined;
  column = '';

  warn(code: string): void {
    this.add(`${code}:${this.column}`);
  }

  add(code: string): void {
    (this.codes ??= new Set()).add(code);
  }

  list(): string[] {
    return this.codes ? [...this.codes] : [];
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
  return { rows: [], skipped: reason, rejects: [], warnings: [] };
}

export function mapEvent(event: AuditEvent, mapping: CompiledMapping, lookup: ResourceLookup): EventMapResult {
  const program = programOf(mapping);
  const eventId = event.id ?? '';
  const { skip, options } = program;
  // §3.1: outcome is 0..1 and an absent outcome counts as success.
  if (skip.failureOutcome && event.outcome !== undefined && event.outcome !== '0') return skippedBy('failure-outcome');
  const resolver = createResolver(event, lookup, options.parseCxIdentifiers);
  const subjects = patientSubjects(event, resolver, options);
  if (subjects.length === 0) {
    return skip.noPatient ? skippedBy('no-patient') : { rows: [], rejects: [{ eventId, reason: 'missing-patient' }], warnings: [] };
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
  const base: EventContext = {
    event, instant, tMs, requestor, user, role, userName: userView?.name, resolver, options,
    timeFormat: program.timeFormat, userIdIsGlobal: global,
  };
  const rows: Row[] = [];
  const rejects: RowReject[] = [];
  for (const subject of subjects) {
    const outcome = mapRow(program, mapping.strict, base, subject, userView, warnings);
    if ('reason' in outcome) rejects.push({ eventId, patientRef: subject.label, ...outcome });
    else rows.push(outcome.cells);
  }
  return { rows, rejects, warnings: warnings.list() };
}

type RowOutcome = { readonly cells: Row } | { readonly reason: string; readonly column: string };

function mapRow(
  program: MappingProgram, strict: boolean, base: EventContext, subject: PatientSubject, userView: View | undefined, warnings: EventWarnings,
): RowOutcome {
  const patient = asPatient(base.resolver.resolve(subject.ref, 'Patient'));
  const patientView = patient ? program.patientViews.view(patient, base.tMs) : undefined;
  if (!patient) warnings.add('unresolved-patient');
  // §3.3 step 5: a display-only patient keeps its display, as a name that cannot be split (text-only, §5).
  const name: HumanName | undefined = patientView ? patientView.name : subject.ref.display ? { text: subject.ref.display } : undefined;
  const ctx = rowContext(base, patient, subject, name, patientView);
  const columns = program.columns;
  const cells: string[] = new Array<string>(columns.length);
  for (let index = 0; index < columns.length; index += 1) {
    cells[index] = cellValue(program, columns[index] as CompiledColumn, ctx, patientView, userView, warnings);
  }
  for (const group of program.criticalGroups) {
    if (allEmpty(cells, group.columns)) return { reason: `missing-${group.code}`, column: columns[group.columns[0] as number]?.name ?? '' };
  }
  for (let index = 0; index < cells.length; index += 1) {
    const column = columns[index] as CompiledColumn;
    if (!column.mandatory || column.allowEmpty || cells[index] !== '') continue;
    if (strict) return { reason: 'empty-mandatory', column: column.name };
    warnings.add(`empty-mandatory:${column.name}`);
  }
  markSanitised(cells, program.delimiter);
  return { cells };
}

/** One literal with every field, so all row contexts share a shape. */
function rowContext(base: EventContext, patient: RowContext['patient'], subject: PatientSubject, name: HumanName | undefined, view: View | undefined): RowContext {
  return {
    event: base.event, instant: base.instant, tMs: base.tMs, requestor: base.requestor, user: base.user, role: base.role,
    userName: base.userName, patient, subject, name, address: view?.address, resolver: base.resolver, options: base.options,
    timeFormat: base.timeFormat, userIdIsGlobal: base.userIdIsGlobal,
  };
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
      if (expression.warn) warnings.warn(expression.warn);
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
