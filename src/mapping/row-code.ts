/**
 * Compiles a mapping's columns into one specialised function per mapping (docs/mapping.md §12.4): what interpret.ts
 * computes for a row, as straight-line code. Each column becomes its own block (its expressions in order, the first
 * non-empty sanitised value wins, its `warn` code added), memoised cells are read from the views at fixed positions,
 * then the critical groups and the mandatory checks follow as plain comparisons. So a row runs no loop over columns
 * or expressions, reads no column options, and every call site calls one function: V8 can inline the built-ins and
 * path functions into it.
 *
 * Generated with `new Function`. The source holds only identifiers and numbers the compiler made itself (array
 * positions, slots); everything from the mapping file (names, codes, functions) reaches the code through the
 * parameters below, never as text.
 */
import { DELIMITER_CHARS, joinCells } from '../connector-file/index.js';
import type { View } from './cache.js';
import type { CellScope, CompiledColumn, ProgramCore } from './compile.js';
import type { CompiledExpression } from './expression.js';
import { cellValue, fillSlot, scopedCells } from './interpret.js';
import type { RowContext } from './row-context.js';
import type { EventWarnings } from './warnings.js';

/** Why a row is rejected: the reason code and the column (the first of its group). */
export type RowRejection = readonly [reason: string, column: string];

/**
 * Maps one row: pushes its cells to `rows` and its line (for the mapping's delimiter) to `lines`, or returns why it is
 * rejected and pushes nothing.
 */
export type RowFunction = (
  ctx: RowContext,
  patientView: View | undefined,
  userView: View | undefined,
  warnings: EventWarnings,
  rows: Array<readonly string[]>,
  lines: string[],
) => RowRejection | undefined;

/** What the generated source refers to, by position. */
interface RowParts {
  /** Raw cell functions of the expressions the code calls. */
  readonly E: Array<CompiledExpression['cell']>;
  /** The expressions themselves, for the memo helpers. */
  readonly X: CompiledExpression[];
  readonly S: (value: string) => string;
  /** Column names. */
  readonly N: string[];
  /** `<code>:<column>` warnings, by expression position in X (undefined when none). */
  readonly K: Array<string | undefined>;
  /** `missing-<code>` per critical group. */
  readonly R: string[];
  /** `empty-mandatory:<column>` per column. */
  readonly M: string[];
  readonly cellsOf: (scope: CellScope, view: View, ctx: RowContext) => readonly string[];
  /** A memoised column's value when there is no view (an unresolved patient, an event without a user). */
  readonly live: (column: number, ctx: RowContext, warnings: EventWarnings) => string;
  /** A memo slot's value (computed on first use), its warnings replayed. */
  readonly slot: (view: View, expression: number, ctx: RowContext, warnings: EventWarnings) => string;
  /** The delimiter character (tab, pipe), and the full join (CSV quoting included) for every delimiter. */
  readonly D: string;
  readonly join: (cells: readonly string[]) => string;
}

export function compileRowFunction(program: ProgramCore): RowFunction {
  const expressions: CompiledExpression[] = [];
  const parts: RowParts = {
    E: [],
    X: expressions,
    S: program.sanitize,
    N: program.columns.map((column) => column.name),
    K: [],
    R: program.criticalGroups.map((group) => `missing-${group.code}`),
    M: program.columns.map((column) => `empty-mandatory:${column.name}`),
    cellsOf: (scope, view, ctx) => scopedCells(program, scope, view, ctx),
    live: (column, ctx, warnings) => cellValue(program, program.columns[column] as CompiledColumn, ctx, undefined, undefined, warnings),
    slot: (view, expression, ctx, warnings) => slotValue(program, view, expressions[expression] as CompiledExpression, ctx, warnings),
    D: DELIMITER_CHARS[program.delimiter],
    join: (cells) => joinCells(cells, program.delimiter),
  };
  const expressionIndex = (expression: CompiledExpression): number => {
    expressions.push(expression);
    parts.E.push(expression.cell);
    parts.K.push(expression.warn);
    return expressions.length - 1;
  };
  const body = program.columns.map((column, index) => columnCode(program, column, index, expressionIndex));
  const source = [
    '"use strict";',
    ...parts.E.map((_, k) => `const e${k} = E[${k}];`),
    'return function mappedRow(ctx, pv, uv, w, rows, lines) {',
    ...prologue(program),
    'let v;',
    ...body,
    ...checks(program),
    `const cells = [${program.columns.map((_, index) => `c${index}`).join(', ')}];`,
    'rows.push(cells);',
    `lines.push(${lineCode(program)});`,
    'return undefined;',
    '};',
  ].join('\n');
  const names = Object.keys(parts) as Array<keyof RowParts>;
  const factory = new Function(...names, source) as (...values: Array<RowParts[keyof RowParts]>) => RowFunction;
  return factory(...names.map((name) => parts[name]));
}

/** The whole-cell memo of each scope with a memoised column, read once per row. */
function prologue(program: ProgramCore): string[] {
  const lines: string[] = [];
  for (const [scope, view, cells, raised] of [
    ['patient', 'pv', 'pc', 'pw'],
    ['user', 'uv', 'uc', 'uw'],
  ] as const) {
    if (program.scopedColumns[scope].length === 0) continue;
    lines.push(
      `let ${cells}, ${raised};`,
      `if (${view} !== undefined) { ${cells} = ${view}.cells === undefined ? cellsOf(${JSON.stringify(scope)}, ${view}, ctx) : ${view}.cells; ${raised} = ${view}.cellWarnings; }`,
    );
  }
  return lines;
}

function columnCode(program: ProgramCore, column: CompiledColumn, index: number, expressionIndex: (expression: CompiledExpression) => number): string {
  const c = `c${index}`;
  if (column.scope !== 'event') {
    const [cells, raised] = column.scope === 'patient' ? ['pc', 'pw'] : ['uc', 'uw'];
    const position = program.scopedPosition[index] as number;
    return `let ${c};
if (${cells} !== undefined) { ${c} = ${cells}[${position}]; if (${raised} !== undefined && ${raised}[${position}] !== undefined) w.addAll(${raised}[${position}]); }
else ${c} = live(${index}, ctx, w);`;
  }
  const live = column.expressions.filter((expression) => !expression.never);
  const attempts = live.map((expression, k) => {
    const at = expressionIndex(expression);
    const last = k === live.length - 1;
    const warn = expression.warn === undefined ? '' : `w.add(K[${at}]); `;
    const found = last ? (warn ? `if (${c} !== '') ${warn}` : '') : `if (${c} !== '') { ${warn}break L${index}; }`;
    return `${valueCode(expression, at, c)}\n${found}`;
  });
  return `let ${c} = '';\nw.column = N[${index}];\nL${index}: {\n${attempts.join('\n')}\n}`;
}

/** Sets `c` to the expression's sanitised value: from the patient's or user's memo slot when the row has that view. */
function valueCode(expression: CompiledExpression, at: number, c: string): string {
  const evaluate = `v = e${at}(ctx, w); ${c} = v === undefined || v === '' ? '' : S(v);`;
  if (expression.slot < 0) return evaluate;
  const view = expression.scope === 'patient' ? 'pv' : 'uv';
  return `if (${view} !== undefined) { ${c} = ${view}.values[${expression.slot}]; if (${c} === undefined || ${view}.warnings !== undefined) ${c} = slot(${view}, ${at}, ctx, w); }
else { ${evaluate} }`;
}

/** docs/mapping.md §9: critical groups reject first, then empty mandatory cells warn (or reject, when strict). */
function checks(program: ProgramCore): string[] {
  const lines = program.criticalGroups.map(
    (group, g) => `if (${group.columns.map((index) => `c${index} === ''`).join(' && ')}) return [R[${g}], N[${group.columns[0] as number}]];`,
  );
  for (const index of program.checkedColumns) {
    lines.push(program.strict ? `if (c${index} === '') return ['empty-mandatory', N[${index}]];` : `if (c${index} === '') w.add(M[${index}]);`);
  }
  return lines;
}

/**
 * The row's line. Joining the cells reads every cell's characters, and a memoised cell lives wherever its resource was
 * parsed (a cache miss per cell); a run of memoised cells is one segment the view already joined (interpret.ts). CSV
 * quotes per cell, so it joins the cells.
 */
function lineCode(program: ProgramCore): string {
  const scopes = (['patient', 'user'] as const).filter((scope) => program.scopedRuns[scope].length > 0);
  if (program.delimiter === 'comma' || scopes.length === 0) return 'join(cells)';
  const parts: string[] = [];
  for (let index = 0; index < program.columns.length; index += 1) {
    const column = program.columns[index] as CompiledColumn;
    const scope = column.scope === 'event' ? undefined : column.scope;
    const k = scope === undefined ? -1 : program.scopedRuns[scope].findIndex((run) => run.first === index);
    if (scope === undefined || k < 0) {
      parts.push(`c${index}`);
      continue;
    }
    const run = program.scopedRuns[scope][k] as { first: number; last: number };
    parts.push(`${scope === 'patient' ? 'pc' : 'uc'}[${program.scopedColumns[scope].length + k}]`);
    index = run.last;
  }
  const views = scopes.map((scope) => `${scope === 'patient' ? 'pc' : 'uc'} !== undefined`).join(' && ');
  return `${views} ? [${parts.join(', ')}].join(D) : cells.join(D)`;
}

/** interpret.ts memoised(), for the generated code's slow path (first use, or a slot that raised warnings). */
function slotValue(program: ProgramCore, view: View, expression: CompiledExpression, ctx: RowContext, warnings: EventWarnings): string {
  const value = view.values[expression.slot] ?? fillSlot(program, view, expression, ctx);
  const raised = view.warnings?.[expression.slot];
  if (raised) for (const code of raised) warnings.warn(code);
  return value;
}
