/**
 * Column fill report: how many rows left each column empty. An optional column that is empty on every row raises no
 * row warning (only empty mandatory cells do), so a site whose MRN sits under an identifier the mapping does not
 * recognise would otherwise send Purview empty MRNs for ever without a word. Pure and cheap: counting a row is one
 * comparison per watched column; the caller (pipeline, doctor) decides where the report goes. Names and counts only,
 * never a cell value (no PHI).
 */
import { programOf } from './compile.js';
import { MappedEvent } from './mapped-event.js';
import type { CompiledMapping, ConnectorSchema, EventMapResult, Row } from './types.js';

/** Above this share of empty rows a watched column warns (more than 5%). */
export const FILL_WARN_THRESHOLD = 0.05;

/**
 * Columns Purview relies on although its schema marks them optional: the MRN ties rows to one patient, the user id
 * to one employee, the employee's family name feeds the "same family name" detection.
 */
export const KEY_COLUMNS: Readonly<Record<ConnectorSchema, readonly string[]>> = {
  epic: ['PATIENT.PAT_MRN_ID', 'CLARITY_EMP.USER_ID', 'employee_last_name'],
  healthcare: ['Patient Reg Id', 'Employee Id', 'Employee Last Name'],
};

const MRN_FIX = 'set mapping.options.mrnSystems (the identifier system) or mapping.options.mrnTypeTexts (its type.text, e.g. a site text) to where the MRN is';
const LOGIN_FIX =
  'set mapping.options.loginSystems or mapping.options.loginTypeTexts to the Practitioner identifier that holds the login (or loginRegex if altId holds it)';
const USER_ID_FIX = 'set mapping.options.userIdSystems or mapping.options.userIdTypeTexts to the Practitioner identifier that holds the EHR user id';
const ADDRESS_FIX = 'patients have no home address valid at the access time; check Patient.address (use, period) at the EHR';
const NAME_FIX = 'the requestor does not resolve to a Practitioner with a name; check agent.who and the Practitioner scope';
const DEPARTMENT_FIX = 'set mapping.options.departmentSources to where the department is (encounter, requestor location, PractitionerRole)';
const BTG_FIX = 'set mapping.options.btgCodes / btgDetailTypes to the codes and detail types the EHR uses for break-the-glass';

/** What usually fixes a mostly empty column, by column name of either schema. */
export const FILL_FIXES: Readonly<Record<string, string>> = {
  'PATIENT.PAT_MRN_ID': MRN_FIX,
  'Patient Reg Id': MRN_FIX,
  'EMP.SYSTEM_LOGIN': LOGIN_FIX,
  'Email Address (UPN) or SamAccountName': LOGIN_FIX,
  'CLARITY_EMP.USER_ID': USER_ID_FIX,
  'Employee Id': USER_ID_FIX,
  'PATIENT.ADD_LINE_1': ADDRESS_FIX,
  'PATIENT.CITY': ADDRESS_FIX,
  'PATIENT.ZIP': ADDRESS_FIX,
  'Patient Address Line 1': ADDRESS_FIX,
  'Patient City': ADDRESS_FIX,
  'Patient Zip Code': ADDRESS_FIX,
  employee_last_name: NAME_FIX,
  employee_first_name: NAME_FIX,
  'Employee Last Name': NAME_FIX,
  'Employee First Name': NAME_FIX,
  'CLARITY_DEP.DEPARTMENT_NAME': DEPARTMENT_FIX,
  'Patient Department': DEPARTMENT_FIX,
  'PAT_BTG_AUDIT.BTG_EXPLANATION': BTG_FIX,
  'Restricted Access Comment': BTG_FIX,
};

export interface ColumnFill {
  readonly column: string;
  /** Rows whose cell for this column was empty. */
  readonly empty: number;
  /** Mandatory in the Purview schema (some, like the BTG reason, are empty by design: allowEmpty). */
  readonly mandatory: boolean;
  /** Mandatory (and not allowed to be empty) or a key column: over the threshold it warns. */
  readonly watched: boolean;
}

/** Plain data (JSON as is), so a run record can store it and warnings can be made from it later. */
export interface FillReport {
  readonly rows: number;
  /** In mapping column order. */
  readonly columns: readonly ColumnFill[];
}

export interface FillWarning {
  /** `column-fill-low:<column>`, in the `<code>:<column>` form of the row warnings. */
  readonly code: string;
  readonly column: string;
  readonly empty: number;
  readonly rows: number;
  /** empty / rows, 0…1. */
  readonly emptyShare: number;
  /** The site option (or data check) that usually fixes it; absent when there is none to suggest. */
  readonly fix?: string;
  /** One line: column, share and counts, and the fix. No values. */
  readonly message: string;
}

export interface FillCounter {
  /** Counts one row (cells in the mapping's column order). */
  add(row: Row): void;
  /** Counts every row of one mapped event. */
  addResult(result: EventMapResult): void;
  /** Rows counted so far. */
  readonly rows: number;
  /** A snapshot; counting may go on. */
  report(): FillReport;
}

/**
 * @param columns - 'watched' (default): the mandatory columns that may not be empty plus KEY_COLUMNS, the set a run
 *   summary reports; 'all': every column (bridge doctor's table), each still flagged watched or not.
 */
export function createFillCounter(mapping: CompiledMapping, columns: 'watched' | 'all' = 'watched'): FillCounter {
  return new Counter(mapping, columns);
}

class Counter implements FillCounter {
  rows = 0;
  private readonly names: readonly string[];
  private readonly mandatory: readonly boolean[];
  private readonly watched: readonly boolean[];
  /** Cell positions counted, and their counts, side by side. */
  private readonly indexes: Int32Array;
  private readonly empty: Float64Array;

  constructor(mapping: CompiledMapping, scope: 'watched' | 'all') {
    const checked = new Set(programOf(mapping).checkedColumns);
    const keys = new Set(KEY_COLUMNS[mapping.schema]);
    const watched = mapping.columns.map((column, index) => checked.has(index) || keys.has(column.name));
    const counted = mapping.columns.flatMap((_, index) => (scope === 'all' || watched[index] ? [index] : []));
    this.names = counted.map((index) => mapping.columns[index]?.name ?? '');
    this.mandatory = counted.map((index) => mapping.columns[index]?.mandatory ?? false);
    this.watched = counted.map((index) => watched[index] ?? false);
    this.indexes = Int32Array.from(counted);
    this.empty = new Float64Array(counted.length);
  }

  add(row: Row): void {
    this.rows += 1;
    const { indexes, empty } = this;
    for (let k = 0; k < indexes.length; k += 1) {
      if (row[indexes[k] as number] === '') empty[k] = (empty[k] as number) + 1;
    }
  }

  addResult(result: EventMapResult): void {
    const empties = MappedEvent.emptiesFor(result);
    if (empties === undefined) {
      for (const row of result.rows) this.add(row);
      return;
    }
    // mapEvent's own results carry each row's empty-cell mask (row-code.ts): no cell is read.
    const { indexes, empty } = this;
    for (const mask of empties) {
      this.rows += 1;
      if (mask === 0) continue;
      for (let k = 0; k < indexes.length; k += 1) {
        if ((mask >>> (indexes[k] as number)) & 1) empty[k] = (empty[k] as number) + 1;
      }
    }
  }

  report(): FillReport {
    return {
      rows: this.rows,
      columns: this.names.map((column, k) => ({
        column,
        empty: this.empty[k] as number,
        mandatory: this.mandatory[k] as boolean,
        watched: this.watched[k] as boolean,
      })),
    };
  }
}

/** Adds reports column by column (several pages, resumed runs); columns missing from one count as never empty there. */
export function mergeFillReports(a: FillReport, b: FillReport): FillReport {
  const merged = new Map(a.columns.map((column) => [column.column, { ...column }]));
  for (const column of b.columns) {
    const seen = merged.get(column.column);
    merged.set(
      column.column,
      seen
        ? { ...seen, empty: seen.empty + column.empty, mandatory: seen.mandatory || column.mandatory, watched: seen.watched || column.watched }
        : { ...column },
    );
  }
  return { rows: a.rows + b.rows, columns: [...merged.values()] };
}

/** One warning per watched column with more than `threshold` of its rows empty, in column order. */
export function fillWarnings(report: FillReport, threshold: number = FILL_WARN_THRESHOLD): FillWarning[] {
  if (report.rows === 0) return [];
  return report.columns.flatMap((column) => {
    const share = column.empty / report.rows;
    if (!column.watched || !(share > threshold)) return [];
    const fix = FILL_FIXES[column.column];
    const message = `${column.column} is empty in ${formatShare(share)} of rows (${column.empty} of ${report.rows})${fix ? `; ${fix}` : ''}`;
    return [
      {
        code: `column-fill-low:${column.column}`,
        column: column.column,
        empty: column.empty,
        rows: report.rows,
        emptyShare: share,
        ...(fix ? { fix } : {}),
        message,
      },
    ];
  });
}

/** "0%", "4.8%", "100%": one decimal below 10%, none above; never rounds a non-zero share to 0% or a partial one to 100%. */
export function formatShare(share: number): string {
  if (share <= 0) return '0%';
  if (share >= 1) return '100%';
  const percent = share * 100;
  const text = percent < 10 ? percent.toFixed(1) : percent.toFixed(0);
  if (Number(text) === 0) return '<0.1%';
  if (Number(text) === 100) return '>99%';
  return `${text.replace(/\.0$/, '')}%`;
}
