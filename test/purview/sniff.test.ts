/** Delimiter sniffing and the mandatory-column check that runs before anything is sent. */
import { describe, expect, it } from 'vitest';
import { checkHeader, MANDATORY_COLUMNS, SCHEMA_COLUMNS, sniffDelimiter } from '../../src/connector-file/index.js';
import { BridgeError } from '../../src/errors.js';

const EPIC = MANDATORY_COLUMNS.epic;
const HEALTHCARE = MANDATORY_COLUMNS.healthcare;

function headerError(line: string, schema: 'epic' | 'healthcare'): string {
  try {
    checkHeader(line, schema, 'export.txt');
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    return (error as BridgeError).message;
  }
  throw new Error('expected a refusal');
}

describe('mandatory columns', () => {
  it('are the "*" columns of the mapping schemas, in documented order', () => {
    for (const schema of ['epic', 'healthcare'] as const) {
      expect(MANDATORY_COLUMNS[schema]).toEqual(SCHEMA_COLUMNS[schema].filter((c) => c.mandatory).map((c) => c.name));
    }
  });
});

describe('sniffDelimiter', () => {
  it('prefers tab, then pipe, then comma', () => {
    expect(sniffDelimiter('a\tb,c|d')).toBe('tab');
    expect(sniffDelimiter('a|b,c')).toBe('pipe');
    expect(sniffDelimiter('a,b')).toBe('comma');
    expect(sniffDelimiter('only one column')).toBeUndefined();
  });
});

describe('checkHeader', () => {
  it('accepts every mandatory column in any case, order, quoting and spacing, among optional ones', () => {
    const header = ['PATIENT.PAT_MRN_ID', ...[...EPIC].reverse().map((c, i) => (i % 2 ? `"${c.toLowerCase()}"` : ` ${c} `))].join('|');
    expect(checkHeader(header, 'epic', 'export.txt').delimiter).toBe('pipe');
    expect(checkHeader(HEALTHCARE.join(','), 'healthcare', 'export.csv')).toEqual({ delimiter: 'comma', columns: [...HEALTHCARE] });
  });

  it('names the file, line 1 and every missing column', () => {
    const header = EPIC.filter((c) => c !== 'PATIENT.ZIP' && c !== 'EMP.SYSTEM_LOGIN').join('\t');
    expect(headerError(header, 'epic')).toBe(
      'export.txt line 1: the header lacks mandatory epic column(s) "PATIENT.ZIP", "EMP.SYSTEM_LOGIN" (tab-separated). Nothing was sent.',
    );
  });

  it('says when the file is of the other schema', () => {
    expect(headerError(HEALTHCARE.join('\t'), 'epic')).toContain('It looks like a healthcare file: pass --schema healthcare.');
  });

  it('refuses a comma-separated Epic file and a header without any delimiter', () => {
    expect(headerError(EPIC.join(','), 'epic')).toBe(
      'export.txt line 1: the header is comma-separated, but the epic connector takes tab or pipe-separated files; re-export it or pass --schema healthcare.',
    );
    expect(headerError('ACCESS_LOG.ACCESS_TIME', 'epic')).toBe(
      'export.txt line 1: the header has no tab, pipe or comma; the first line must be the column names.',
    );
  });
});
