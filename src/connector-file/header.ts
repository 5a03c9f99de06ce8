/**
 * The header line of an existing connector file: which delimiter it uses and whether it names every mandatory column
 * of the chosen schema. Microsoft: "if any of the mandatory fields are missing in the text file, the file won't be
 * validated and data in the file won't be imported"; column names are matched case-insensitively, as the portal does
 * (docs/purview-protocol.md §5.2).
 */
import { BridgeError } from '../errors.js';

import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';
import { splitFields } from './fields.js';
import { type ConnectorSchema, MANDATORY_COLUMNS, SCHEMA_COLUMNS, SCHEMA_DELIMITERS } from './schemas.js';

/** Tab, then pipe, then comma: a tab-separated header may hold commas in a column name, never the reverse here. */
export function sniffDelimiter(headerLine: string): Delimiter | undefined {
  if (headerLine.includes('\t')) return 'tab';
  if (headerLine.includes('|')) return 'pipe';
  if (headerLine.includes(',')) return 'comma';
  return undefined;
}

/**
 * Header cells, trimmed and unquoted. White space is trimmed but for the byte order mark (U+FEFF), which String.trim
 * would also take off a name: the header would then pass the check with a column Purview reads as another. A comma
 * header is split as its rows are counted, on commas outside double quotes, and a quoted name's doubled quotes are one
 * ("Dept, Sub" is one column, as it is one field of every row).
 */
export function headerColumns(headerLine: string, delimiter: Delimiter): string[] {
  const unquote = (cell: string): string => {
    const quoted = /^"(.*)"$/.exec(cell);
    if (quoted === null) return cell;
    return delimiter === 'comma' ? (quoted[1] as string).replaceAll('""', '"') : (quoted[1] as string);
  };
  return headerCells(headerLine, delimiter).map((cell) => trimBlank(unquote(trimBlank(cell))));
}

/** The header's cells as written: a comma header's split on commas outside quotes, as rows are. */
function headerCells(headerLine: string, delimiter: Delimiter): string[] {
  return delimiter === 'comma' ? splitFields(headerLine, delimiter) : headerLine.split(DELIMITER_CHARS[delimiter]);
}

function trimBlank(text: string): string {
  return text.replace(/^[^\S\ufeff]+|[^\S\ufeff]+$/g, '');
}

export function missingMandatoryColumns(columns: readonly string[], schema: ConnectorSchema): string[] {
  const present = new Set(columns.map((column) => column.toLowerCase()));
  return MANDATORY_COLUMNS[schema].filter((column) => !present.has(column.toLowerCase()));
}

export interface HeaderCheckOptions {
  /**
   * The header must list the schema's columns exactly, in the documented order (case-insensitive, as the portal
   * matches names): the drop-folder source's rule, where no operator looks at a file before it is sent. Default: only
   * the mandatory columns must be present, anywhere (`bridge push`).
   */
  readonly exact?: boolean;
  /** Put the column of the first wrong header field in the message (the drop folder's `.why.txt`). */
  readonly namePositions?: boolean;
}

/**
 * Sniffs the delimiter and checks the columns; throws BRG_ERR_INPUT_INVALID naming the file, line 1 and the missing
 * (or, with `exact`, the first wrong) column. `details.reason` is a stable code for reject tallies.
 */
export function checkHeader(
  headerLine: string,
  schema: ConnectorSchema,
  file: string,
  options: HeaderCheckOptions = {},
): { delimiter: Delimiter; columns: string[] } {
  const fail = (what: string, reason: string, column?: number): never => {
    const where = column !== undefined && options.namePositions ? `line 1, column ${column}` : 'line 1';
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${file} ${where}: ${what}`, {
      details: { file, line: 1, schema, reason, ...(column !== undefined ? { column } : {}) },
    });
  };
  // Column names are ASCII: NUL characters between them are the zero halves of UTF-16 read as one byte a character
  // (`bcp -w` writes UTF-16LE without a byte order mark). Named as such, not as a header with no known column.
  if (headerLine.includes('\u0000')) {
    fail(
      'the header holds NUL characters: the file looks like UTF-16 without a byte order mark (as `bcp -w` writes it). Save it as UTF-8 (or UTF-16 with a BOM), or for a drop folder set connectors[].source.encoding to utf-16le (utf-16be), and run again. Nothing was sent.',
      'utf16-without-bom',
    );
  }
  const delimiter = sniffDelimiter(headerLine);
  if (!delimiter) fail('the header has no tab, pipe or comma; the first line must be the column names.', 'no-delimiter');
  const d = delimiter as Delimiter;
  if (!SCHEMA_DELIMITERS[schema].includes(d)) {
    fail(
      `the header is ${d}-separated, but the ${schema} connector takes ${SCHEMA_DELIMITERS[schema].join(' or ')}-separated files; re-export it or pass --schema healthcare.`,
      'wrong-delimiter',
    );
  }
  const columns = headerColumns(headerLine, d);
  // A byte order mark inside the header (one more after the file's own, or one a tool put before a column) is invisible,
  // and no trim may hide it: Purview would read that column as another name, and not import the file.
  const marked = columns.findIndex((column) => column.includes('\ufeff'));
  if (marked !== -1) {
    fail(
      `header field ${marked + 1} holds a byte order mark (U+FEFF, invisible): save the file as UTF-8 with at most one BOM at its very start, and run again. Nothing was sent.`,
      'bom-in-header',
      fieldColumn(headerLine, d, marked),
    );
  }
  if (options.exact) {
    const wrong = firstWrongColumn(columns, schema);
    if (wrong) fail(`${wrong.what} (${d}-separated). Nothing was sent.`, 'wrong-header', fieldColumn(headerLine, d, wrong.index));
    return { delimiter: d, columns };
  }
  const missing = missingMandatoryColumns(columns, schema);
  if (missing.length > 0) {
    const other: ConnectorSchema = schema === 'epic' ? 'healthcare' : 'epic';
    const hint = missingMandatoryColumns(columns, other).length === 0 ? ` It looks like a ${other} file: pass --schema ${other}.` : '';
    fail(
      `the header lacks mandatory ${schema} column(s) ${missing.map((c) => `"${c}"`).join(', ')} (${d}-separated).${hint} Nothing was sent.`,
      'missing-columns',
    );
  }
  return { delimiter: d, columns };
}

/**
 * The first field that differs from the schema's column at its place. A found name is quoted only when it is a column
 * name of either schema: a file without a header has a data row here, and its cells are PHI.
 */
function firstWrongColumn(columns: readonly string[], schema: ConnectorSchema): { index: number; what: string } | undefined {
  const expected = SCHEMA_COLUMNS[schema].map((c) => c.name);
  const count = `the ${schema} schema's ${expected.length} columns in their documented order`;
  for (let index = 0; index < Math.max(columns.length, expected.length); index++) {
    const want = expected[index];
    const found = columns[index];
    if (want !== undefined && found !== undefined && want.toLowerCase() === found.toLowerCase()) continue;
    if (want === undefined)
      return { index, what: `the header has ${columns.length} fields; the header must be ${count}, and field ${index + 1} is one too many` };
    if (found === undefined)
      return { index, what: `the header ends after ${columns.length} field(s); field ${index + 1} must be "${want}" (the header must be ${count})` };
    const known = KNOWN_COLUMNS.get(found.toLowerCase());
    const seen =
      known === undefined
        ? `found a name that is no ${schema} column`
        : known.schemas.includes(schema)
          ? `found "${known.name}", which belongs at field ${known.index[schema] + 1}`
          : `found "${known.name}", a column of the ${known.schemas.join('/')} schema`;
    return { index, what: `field ${index + 1} must be "${want}"; ${seen} (the header must be ${count})` };
  }
  return undefined;
}

/** Every column name of both schemas, lower-cased, with where it stands in each. */
const KNOWN_COLUMNS: ReadonlyMap<string, { name: string; schemas: ConnectorSchema[]; index: Record<ConnectorSchema, number> }> = (() => {
  const known = new Map<string, { name: string; schemas: ConnectorSchema[]; index: Record<ConnectorSchema, number> }>();
  for (const schema of ['epic', 'healthcare'] as const) {
    SCHEMA_COLUMNS[schema].forEach((column, index) => {
      const entry = known.get(column.name.toLowerCase()) ?? { name: column.name, schemas: [], index: { epic: -1, healthcare: -1 } };
      entry.schemas.push(schema);
      entry.index[schema] = index;
      known.set(column.name.toLowerCase(), entry);
    });
  }
  return known;
})();

/** 1-based character column where field `index` (0-based) of the header starts; the end of the line when it has fewer. */
function fieldColumn(headerLine: string, delimiter: Delimiter, index: number): number {
  const cells = headerCells(headerLine, delimiter);
  let column = 1;
  for (let i = 0; i < Math.min(index, cells.length); i++) column += [...(cells[i] as string)].length + 1;
  return index >= cells.length ? column - 1 : column;
}
