/**
 * Compiles a mapping's columns into one specialised function per mapping (docs/mapping.md §12.4): what interpret.ts
 * computes for a row, as straight-line code. Each column becomes its own block (its expressions in order, the first
 * non-empty sanitised value wins, its `warn` code added), memoised cells are read from the views at fixed positions,
 * then the critical groups and the mandatory checks follow as bit tests on the row's empty-cell mask. So a row runs no
 * loop over columns or expressions, reads no column options, and every call site calls one function: V8 can inline
 * the built-ins and path functions into it. A run of memoised (or led) cells goes into the line as the segment its
 * view keeps, so the row reads none of those cells' characters.
 *
 * Generated with `new Function`. The source holds only identifiers and numbers the compiler made itself (array
 * positions, slots); everything from the mapping file (names, codes, functions) reaches the code through the
 * parameters below, never as text.
 */
import { DELIMITER_CHARS, joinCells } from '../connector-file/index.js';
import { BridgeError } from '../errors.js';
import type { View } from './cache.js';
import { type CellScope, type CompiledColumn, type ProgramCore, runHolding, viewLayout } from './compile.js';
import type { CompiledExpression } from './expression.js';
import { cellValue, memoised, scopedCells } from './interpret.js';
import type { RowContext } from './row-context.js';
import type { EventWarnings } from './warnings.js';

/** Why a row is rejected: the reason code and the column (the first of its group). */
export type RowRejection = readonly [reason: string, column: string];

/**
 * Maps one row: pushes its cells to `rows`, its line (for the mapping's delimiter) to `lines` and its empty-cell mask
 * (bit i set = cell i is empty) to `empties`; or returns why it is rejected and pushes nothing.
 */
export type RowFunction = (
  ctx: RowContext,
  patientView: View | undefined,
  userView: View | undefined,
  warnings: EventWarnings,
  rows: Array<readonly string[]>,
  lines: string[],
  empties: number[],
) => RowRejection | undefined;

/** The empty-cell mask is one small integer: bits 0…30. Both schemas have fewer columns (22 and 23). */
const MAX_MASKED_COLUMNS = 31;

/** What the generated source refers to, by position. */
interface RowParts {
  /** Raw cell functions of the expressions the code calls. */
  readonly E: Array<CompiledExpression['cell']>;
  readonly S: (value: string) => string;
  /** Column names. */
  readonly N: string[];
  /** `<code>:<column>` warnings, by expression position in X (undefined when none). */
  readonly K: Array<string | undefined>;
  /** `missing-<code>` per critical group. */
  readonly R: string[];
  /** `empty-mandatory:<column>` per column. */
  readonly M: string[];
  readonly cellsOf: (scope: CellScope, view: View, ctx: RowContext) => ReadonlyArray<string | undefined>;
  /** A memoised column's value when there is no view (an unresolved patient, an event without a user). */
  readonly live: (column: number, ctx: RowContext, warnings: EventWarnings) => string;
  /** A memo slot's value (computed on first use), its warnings replayed. */
  readonly slot: (view: View, expression: number, ctx: RowContext, warnings: EventWarnings) => string;
  /** The delimiter character (tab, pipe), and the full join (CSV quoting included) for every delimiter. */
  readonly D: string;
  readonly join: (cells: readonly string[]) => string;
}

export function compileRowFunction(program: ProgramCore): RowFunction {
  if (program.columns.length > MAX_MASKED_COLUMNS) {
    throw new BridgeError('BRG_ERR_INTERNAL', `A schema with ${program.columns.length} columns needs a wider empty-cell mask than row-code.ts makes.`);
  }
  const expressions: CompiledExpression[] = [];
  const parts: RowParts = {
    E: [],
    S: program.sanitize,
    N: program.columns.map((column) => column.name),
    K: [],
    R: program.criticalGroups.map((group) => `missing-${group.code}`),
    M: program.columns.map((column) => `empty-mandatory:${column.name}`),
    cellsOf: (scope, view, ctx) => scopedCells(program, scope, view, ctx),
    live: (column, ctx, warnings) => cellValue(program, program.columns[column] as CompiledColumn, ctx, undefined, undefined, warnings),
    slot: (view, expression, ctx, warnings) => memoised(program, view, expressions[expression] as CompiledExpression, ctx, warnings),
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
    'return function mappedRow(ctx, pv, uv, w, rows, lines, empties) {',
    'let m = 0;',
    ...prologue(program),
    'let v;',
    ...body,
    ...checks(program),
    `const cells = [${program.columns.map((_, index) => `c${index}`).join(', ')}];`,
    'rows.push(cells);',
    `lines.push(${lineCode(program)});`,
    'empties.push(m);',
    'return undefined;',
    '};',
  ].join('\n');
  const names = Object.keys(parts) as Array<keyof RowParts>;
  const factory = new Function(...names, source) as (...values: Array<RowParts[keyof RowParts]>) => RowFunction;
  return factory(...names.map((name) => parts[name]));
}

const SCOPE_NAMES = {
  patient: { view: 'pv', cells: 'pc', raised: 'pw', segment: 'ps' },
  user: { view: 'uv', cells: 'uc', raised: 'uw', segment: 'us' },
} as const;

/** The run (index in program.scopedRuns[scope]) that holds column `index`, or -1. */
function runOf(program: ProgramCore, scope: CellScope, index: number): number {
  return runHolding(program.scopedRuns[scope], index);
}

/** Each scope's view cells (memoised cells, led values, run segments), read once per row. */
function prologue(program: ProgramCore): string[] {
  const lines: string[] = [];
  for (const scope of ['patient', 'user'] as const) {
    const runs = program.scopedRuns[scope];
    if (program.scopedColumns[scope].length === 0 && runs.length === 0) continue;
    const { view, cells, raised, segment } = SCOPE_NAMES[scope];
    const layout = viewLayout(program, scope);
    const segments = runs.map((_, k) => `${segment}${k}`);
    lines.push(
      `let ${[cells, raised, ...segments].join(', ')};`,
      `if (${view} !== undefined) { ${cells} = ${view}.cells === undefined ? cellsOf(${JSON.stringify(scope)}, ${view}, ctx) : ${view}.cells; ${raised} = ${view}.cellWarnings; m |= ${view}.cellsEmpty; ${segments.map((name, k) => `${name} = ${cells}[${layout.segmentOf(k)}];`).join(' ')} }`,
    );
  }
  return lines;
}

function columnCode(program: ProgramCore, column: CompiledColumn, index: number, expressionIndex: (expression: CompiledExpression) => number): string {
  const c = `c${index}`;
  if (column.scope !== 'event') {
    const { cells, raised } = SCOPE_NAMES[column.scope];
    const position = viewLayout(program, column.scope).cellOf(index);
    return `let ${c};
if (${cells} !== undefined) { ${c} = ${cells}[${position}]; if (${raised} !== undefined && ${raised}[${position}] !== undefined) w.addAll(${raised}[${position}]); }
else { ${c} = live(${index}, ctx, w); if (${c} === '') m |= ${bit(index)}; }`;
  }
  const live = column.expressions.filter((expression) => !expression.never);
  const attempts = live.map((expression, k) => {
    const at = expressionIndex(expression);
    const last = k === live.length - 1;
    const warn = expression.warn === undefined ? '' : `w.add(K[${at}]); `;
    const found = last ? (warn ? `if (${c} !== '') ${warn}` : '') : `if (${c} !== '') { ${warn}break L${index}; }`;
    return `${valueCode(expression, at, c)}\n${found}`;
  });
  const evaluate = `${c} = '';\nw.column = N[${index}];\nL${index}: {\n${attempts.join('\n')}\n}\nif (${c} === '') m |= ${bit(index)};`;
  const scope = (['patient', 'user'] as const).find((name) => program.leadingColumns[name].includes(index));
  if (scope === undefined) return `let ${c};\n${evaluate}`;
  // A led column whose run has its segment: the view holds the first expression's value, and it is not empty.
  const { cells, segment } = SCOPE_NAMES[scope];
  return `let ${c};\nif (${segment}${runOf(program, scope, index)} !== undefined) ${c} = ${cells}[${viewLayout(program, scope).cellOf(index)}];\nelse {\n${evaluate}\n}`;
}

/** Sets `c` to the expression's sanitised value: from the patient's or user's memo slot when the row has that view. */
function valueCode(expression: CompiledExpression, at: number, c: string): string {
  const evaluate = `v = e${at}(ctx, w); ${c} = v === undefined || v === '' ? '' : S(v);`;
  if (expression.slot < 0) return evaluate;
  const view = expression.scope === 'patient' ? 'pv' : 'uv';
  return `if (${view} !== undefined) { ${c} = ${view}.values[${expression.slot}]; if (${c} === undefined || ${view}.warnings !== undefined) ${c} = slot(${view}, ${at}, ctx, w); }
else { ${evaluate} }`;
}

/** Bit `index` of the empty-cell mask. */
function bit(index: number): number {
  return 2 ** index;
}

/** docs/mapping.md §9: critical groups reject first, then empty mandatory cells warn (or reject, when strict). */
function checks(program: ProgramCore): string[] {
  const lines = program.criticalGroups.map((group, g) => {
    const all = group.columns.reduce((mask, index) => mask + bit(index), 0);
    return `if ((m & ${all}) === ${all}) return [R[${g}], N[${group.columns[0] as number}]];`;
  });
  for (const index of program.checkedColumns) {
    lines.push(
      program.strict ? `if ((m & ${bit(index)}) !== 0) return ['empty-mandatory', N[${index}]];` : `if ((m & ${bit(index)}) !== 0) w.add(M[${index}]);`,
    );
  }
  return lines;
}

/**
 * The row's line. Joining the cells reads every cell's characters, and a memoised cell lives wherever its resource was
 * parsed (a cache miss per cell); a run of memoised and led cells is one segment the view already joined
 * (interpret.ts), when it has one. CSV quotes per cell, so it joins the cells.
 */
function lineCode(program: ProgramCore): string {
  if (program.delimiter === 'comma') return 'join(cells)';
  const parts: string[] = [];
  for (let index = 0; index < program.columns.length; index += 1) {
    const scope = (['patient', 'user'] as const).find((name) => runOf(program, name, index) >= 0);
    if (scope === undefined) {
      parts.push(`c${index}`);
      continue;
    }
    const k = runOf(program, scope, index);
    const run = program.scopedRuns[scope][k] as { first: number; last: number };
    const members = Array.from({ length: run.last - run.first + 1 }, (_, offset) => `c${run.first + offset}`);
    parts.push(`(${SCOPE_NAMES[scope].segment}${k} ?? [${members.join(', ')}].join(D))`);
    index = run.last;
  }
  return parts.length === program.columns.length ? 'cells.join(D)' : `[${parts.join(', ')}].join(D)`;
}
