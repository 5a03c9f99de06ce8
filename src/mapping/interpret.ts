/**
 * The row engine as a plain interpreter over the compiled columns: the meaning of a mapping, step by step
 * (docs/mapping.md §9, §12). The hot path runs the specialised function row-code.ts generates from the same columns;
 * this one fills the per-resource memo (once per view), computes the rare cells that have no memo to read, and is what
 * test/mapping/row-code.test.ts compares the generated function with.
 */
import { joinCells } from '../connector-file/index.js';
import type { View } from './cache.js';
import { type CellScope, type CompiledColumn, leadingExpression, type ProgramCore, viewLayout } from './compile.js';
import type { CompiledExpression } from './expression.js';
import type { RowContext } from './row-context.js';
import { EventWarnings, Recorder } from './warnings.js';

/** The row's cells, or [reason, column] when it is rejected (a row always has more than two cells). */
export function interpretRow(
  program: ProgramCore,
  ctx: RowContext,
  patientView: View | undefined,
  userView: View | undefined,
  warnings: EventWarnings,
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
      cells[index] = ((scope === 'patient' ? patientCells : userCells) as ReadonlyArray<string | undefined>)[position] as string;
      const raised = memo.cellWarnings?.[position];
      if (raised) warnings.addAll(raised);
    } else cells[index] = cellValue(program, column, ctx, patientView, userView, warnings);
  }
  for (const group of program.criticalGroups) {
    if (allEmpty(cells, group.columns)) return [`missing-${group.code}`, columns[group.columns[0] as number]?.name ?? ''];
  }
  for (const index of program.checkedColumns) {
    if (cells[index] !== '') continue;
    const name = (columns[index] as CompiledColumn).name;
    if (program.strict) return ['empty-mandatory', name];
    warnings.add(`empty-mandatory:${name}`);
  }
  return cells;
}

/**
 * A view's cells (compile.ts viewLayout), computed together on its first use: the cells of the columns that read only
 * the patient (or only the user), with the warnings each raised kept for replay; the values of the led columns' first
 * expressions (from the view's slots); and each run's line segment, when every led cell of the run has a value that
 * raised no warning (else the row computes those cells one by one).
 */
export function scopedCells(program: ProgramCore, scope: CellScope, view: View, ctx: RowContext): ReadonlyArray<string | undefined> {
  if (view.cells) return view.cells;
  const indexes = program.scopedColumns[scope];
  const leading = program.leadingColumns[scope];
  const runs = program.scopedRuns[scope];
  const layout = viewLayout(program, scope);
  const cells = new Array<string | undefined>(indexes.length + leading.length + runs.length);
  let raised: Array<readonly string[] | undefined> | undefined;
  let empty = 0;
  for (let position = 0; position < indexes.length; position += 1) {
    const recorder = new EventWarnings();
    const index = indexes[position] as number;
    // No views: a whole-cell column's expressions have no slots, so every one is evaluated for this row.
    const cell = cellValue(program, program.columns[index] as CompiledColumn, ctx, undefined, undefined, recorder);
    cells[position] = cell;
    if (cell === '') empty += 2 ** index;
    const codes = recorder.list();
    if (codes.length > 0) {
      raised ??= [];
      raised[position] = codes;
    }
  }
  const usable = new Set<number>();
  for (const index of leading) {
    // A led column has a first expression with a slot (compile.ts ledBy).
    const expression = leadingExpression(program.columns[index] as CompiledColumn) as CompiledExpression;
    const value = view.values[expression.slot] ?? fillSlot(program, view, expression, ctx);
    cells[layout.cellOf(index)] = value;
    if (value !== '' && view.warnings?.[expression.slot] === undefined) usable.add(index);
  }
  runs.forEach((run, k) => {
    const members: string[] = [];
    for (let index = run.first; index <= run.last; index += 1) {
      if (leading.includes(index) && !usable.has(index)) return;
      members.push(cells[layout.cellOf(index)] as string);
    }
    cells[layout.segmentOf(k)] = joinCells(members, program.delimiter);
  });
  view.cells = cells;
  view.cellWarnings = raised;
  view.cellsEmpty = empty;
  return cells;
}

function allEmpty(cells: readonly string[], indexes: readonly number[]): boolean {
  for (const index of indexes) if (cells[index] !== '') return false;
  return true;
}

/** First non-empty (sanitised) value of the column's expressions; patient- and user-scoped ones come from the memo. */
export function cellValue(
  program: ProgramCore,
  column: CompiledColumn,
  ctx: RowContext,
  patientView: View | undefined,
  userView: View | undefined,
  warnings: EventWarnings,
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

/** An expression's sanitised value from the view's slot, computed on first use; its warnings are replayed every time. */
export function memoised(program: ProgramCore, view: View, expression: CompiledExpression, ctx: RowContext, warnings: EventWarnings): string {
  const slot = expression.slot;
  let value = view.values[slot];
  if (value === undefined) value = fillSlot(program, view, expression, ctx);
  const raised = view.warnings?.[slot];
  if (raised) for (const code of raised) warnings.warn(code);
  return value;
}

/** Computes and stores one memo slot, recording the warnings it raised. */
function fillSlot(program: ProgramCore, view: View, expression: CompiledExpression, ctx: RowContext): string {
  const recorder = new Recorder();
  const value = program.sanitize(expression.evaluate(ctx, recorder));
  view.values[expression.slot] = value;
  if (recorder.codes.length > 0) {
    view.warnings ??= [];
    view.warnings[expression.slot] = recorder.codes;
  }
  return value;
}
