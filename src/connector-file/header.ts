/**
 * The header line of an existing connector file: which delimiter it uses and whether it names every mandatory column
 * of the chosen schema. Microsoft: "if any of the mandatory fields are missing in the text file, the file won't be
 * validated and data in the file won't be imported"; column names are matched case-insensitively, as the portal does
 * (docs/purview-protocol.md §5.2).
 */
import { BridgeError } from '../errors.js';

import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';
import { MANDATORY_COLUMNS, SCHEMA_DELIMITERS, type ConnectorSchema } from './schemas.js';

/** Tab, then pipe, then comma: a tab-separated header may hold commas in a column name, never the reverse here. */
export function sniffDelimiter(headerLine: string): Delimiter | undefined {
  if (headerLine.includes('\t')) return 'tab';
  if (headerLine.includes('|')) return 'pipe';
  if (headerLine.includes(',')) return 'comma';
  return undefined;
}

/** Header cells, trimmed and unquoted. */
export function headerColumns(headerLine: string, delimiter: Delimiter): string[] {
  return headerLine.split(DELIMITER_CHARS[delimiter]).map((cell) => cell.trim().replace(/^"(.*)"$/, '$1').trim());
}

export function missingMandatoryColumns(columns: readonly string[], schema: ConnectorSchema): string[] {
  const present = new Set(columns.map((column) => column.toLowerCase()));
  return MANDATORY_COLUMNS[schema].filter((column) => !present.has(column.toLowerCase()));
}

/**
 * Sniffs the delimiter and checks the mandatory columns; throws BRG_ERR_INPUT_INVALID naming the file, line 1 and
 * the missing columns.
 */
export function checkHeader(headerLine: string, schema: ConnectorSchema, file: string): { delimiter: Delimiter; columns: string[] } {
  const fail = (what: string): never => {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${file} line 1: ${what}`, { details: { file, line: 1, schema } });
  };
  const delimiter = sniffDelimiter(headerLine);
  if (!delimiter) fail('the header has no tab, pipe or comma; the first line must be the column names.');
  const d = delimiter as Delimiter;
  if (!SCHEMA_DELIMITERS[schema].includes(d)) {
    fail(`the header is ${d}-separated, but the ${schema} connector takes ${SCHEMA_DELIMITERS[schema].join(' or ')}-separated files; re-export it or pass --schema healthcare.`);
  }
  const columns = headerColumns(headerLine, d);
  const missing = missingMandatoryColumns(columns, schema);
  if (missing.length > 0) {
    const other: ConnectorSchema = schema === 'epic' ? 'healthcare' : 'epic';
    const hint = missingMandatoryColumns(columns, other).length === 0 ? ` It looks like a ${other} file: pass --schema ${other}.` : '';
    fail(`the header lacks mandatory ${schema} column(s) ${missing.map((c) => `"${c}"`).join(', ')} (${d}-separated).${hint} Nothing was sent.`);
  }
  return { delimiter: d, columns };
}
