/**
 * Mapping files: the built-in ones, `extends`, the JSON Schema, and every way a file can be wrong. Each error is a
 * BRG_ERR_MAPPING_INVALID naming the file, and the column and expression when there is one.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { builtinMappingPath, createSerializer, loadMapping, mappingJsonSchema, SCHEMA_COLUMNS } from '../../src/mapping/index.js';
import { DEFAULT_LOGIN_REGEX } from '../../src/mapping/options.js';
import { regexProblem } from '../../src/mapping/regex-safety.js';
import { errorOf } from '../support/error-of.js';
import { builtinSpec, compileSpec, repoRoot } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'bridge-mapping-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeMapping(name: string, content: string | object): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

/** The epic built-in with one column replaced. */
function epicWith(column: string, change: Record<string, unknown>): Record<string, unknown> {
  const spec = builtinSpec('epic');
  return { ...spec, columns: spec.columns.map((entry) => (entry.name === column ? { ...entry, ...change } : entry)) };
}

describe('built-in mappings', () => {
  it('list every schema column in the documented order with the documented mandatory flags', () => {
    expect(SCHEMA_COLUMNS.epic.filter((column) => column.mandatory).map((column) => column.name)).toEqual([
      'ACCESS_LOG.ACCESS_TIME',
      'ACCESS_LOG_METRIC.METRIC_NAME',
      'PATIENT.PAT_FIRST_NAME',
      'PATIENT.PAT_LAST_NAME',
      'PATIENT.ADD_LINE_1',
      'PATIENT.CITY',
      'PATIENT.ZIP',
      'ZC_BTG_REASON.NAME',
      'EMP.SYSTEM_LOGIN',
    ]);
    for (const schema of ['epic', 'healthcare'] as const) {
      const mapping = loadMapping(builtinMappingPath(schema));
      expect(mapping.columns).toEqual(SCHEMA_COLUMNS[schema].map(({ name, mandatory }) => ({ name, label: name, mandatory })));
      expect(builtinSpec(schema).columns.map((column) => column.name)).toEqual(SCHEMA_COLUMNS[schema].map((column) => column.name));
    }
    expect(SCHEMA_COLUMNS.epic).toHaveLength(22);
    expect(SCHEMA_COLUMNS.healthcare).toHaveLength(23);
  });

  it('headers: every column, tab-separated by default', () => {
    expect(createSerializer(loadMapping(builtinMappingPath('healthcare'))).headerLine()).toBe(
      'Creation Time\tEvent Name\tWorkstation Id\tEvent Section\tEvent Category\tPatient Reg Id\tPatient First Name\tPatient Middle Name\t' +
        'Patient Last Name\tPatient Address Line 1\tPatient Address Line 2\tPatient City\tPatient Zip Code\tPatient State\tPatient Country\t' +
        'Patient Department\tRestricted Access Reason\tRestricted Access Comment\tEmail Address (UPN) or SamAccountName\tEmployee User Name\t' +
        'Employee Id\tEmployee Last Name\tEmployee First Name',
    );
  });

  it('mappings/mapping.schema.json is the generated JSON Schema', () => {
    const checkedIn: unknown = JSON.parse(readFileSync(join(repoRoot, 'mappings/mapping.schema.json'), 'utf8'));
    expect(checkedIn).toEqual(mappingJsonSchema());
  });
});

describe('extends', () => {
  it('overrides a label, an expression list and an option; the rest comes from the built-in file', () => {
    const path = writeMapping('site.json', {
      extends: 'epic',
      delimiter: 'pipe',
      options: { loginSystems: ['urn:oid:1.2.3'] },
      columns: [
        { name: 'ACCESS_LOG.ACCESS_TIME', label: 'ACCESS_TIME' },
        { name: 'CLARITY_DEP.DEPARTMENT_NAME', expressions: ["'Main campus'"] },
      ],
    });
    const mapping = loadMapping(path);
    expect(mapping).toMatchObject({ schema: 'epic', source: path, delimiter: 'pipe', strict: false });
    expect(mapping.columns[0]).toEqual({ name: 'ACCESS_LOG.ACCESS_TIME', label: 'ACCESS_TIME', mandatory: true });
    expect(createSerializer(mapping).headerLine().split('|').slice(0, 2)).toEqual(['ACCESS_TIME', 'ACCESS_LOG_METRIC.METRIC_NAME']);
  });

  it('refuses labels that would break the header: empty once cleaned, alike but for case, a pipe in a comma file', () => {
    const labelled = (name: string, delimiter: string, columns: Array<{ name: string; label: string }>) =>
      errorOf(() => loadMapping(writeMapping(name, { extends: 'healthcare', delimiter, columns })));
    const blank = labelled('blank.json', 'tab', [{ name: 'Patient City', label: ' \u200b ' }]);
    expect(blank.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(blank.message).toContain('column "Patient City" has a label that is empty once cleaned');
    expect(labelled('twice.json', 'tab', [{ name: 'Patient State', label: 'patient zip code' }]).message).toContain(
      'columns "Patient Zip Code" and "Patient State" have the same label "patient zip code"',
    );
    expect(labelled('pipe.json', 'comma', [{ name: 'Patient Department', label: 'Department|Unit' }]).message).toContain(
      'column "Patient Department" has a label with "|": a comma file\'s header holding one reads as pipe-separated',
    );
    // In a tab or pipe file a pipe or comma is text; relabelled columns keep working.
    expect(
      loadMapping(
        writeMapping('tab-pipe.json', { extends: 'healthcare', delimiter: 'tab', columns: [{ name: 'Patient Department', label: 'Department|Unit' }] }),
      ).columns,
    ).toHaveLength(23);
  });

  it('takes a file that extends another with options only (no columns list)', () => {
    const path = writeMapping('options-only.json', { extends: 'epic', options: { btgCodes: ['BTG', 'ETREAT'] } });
    expect(loadMapping(path).columns).toHaveLength(22);
  });

  it('rejects a schema that contradicts extends, and extends in compileMapping', () => {
    const path = writeMapping('contradict.json', { extends: 'epic', schema: 'healthcare', columns: [] });
    expect(errorOf(() => loadMapping(path)).message).toContain('contradicts "extends": "epic"');
    expect(errorOf(() => compileSpec({ extends: 'epic', columns: [] })).message).toContain('"extends" is resolved by loadMapping');
  });
});

describe('invalid mapping files', () => {
  it('invalid JSON: file, line and column, without quoting the content', () => {
    const path = writeMapping('broken.json', '{\n  "schema": "epic",\n  "columns": [ { "name": "X", } ]\n}\n');
    const error = errorOf(() => loadMapping(path));
    expect(error.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(error.message).toBe(`Mapping file ${path}: invalid JSON at line 3, column 31: expected a property name in double quotes.`);
    expect(error.details).toEqual({ file: path, line: 3, column: 31 });
  });

  it('an option given to matches() that is no regular expression: a mapping error naming file, column and expression, not an internal one', () => {
    const path = writeMapping('bad-regex.json', {
      extends: 'epic',
      options: { empRegex: '^(E[0-9]+' },
      columns: [{ name: 'CLARITY_EMP.USER_ID', expressions: ['%user.identifier.value.where(matches(%empRegex))'] }],
    });
    const error = errorOf(() => loadMapping(path));
    expect(error.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(error.message).toContain(
      `Mapping file ${path}, column "CLARITY_EMP.USER_ID": expression \`%user.identifier.value.where(matches(%empRegex))\` passes matches() the option %empRegex, which is not a regular expression`,
    );
    // Where fhirpath.js evaluates it (no direct path), too: at load, not as an expression-error on every row.
    const general = writeMapping('bad-regex-general.json', {
      extends: 'epic',
      options: { empRegex: '^(E[0-9]+' },
      columns: [{ name: 'CLARITY_EMP.USER_ID', expressions: ['%user.identifier.where(value.matches(%empRegex)).value'] }],
    });
    expect(errorOf(() => loadMapping(general)).message).toContain('passes matches() the option %empRegex, which is not a regular expression');
  });

  it('a missing file', () => {
    const error = errorOf(() => loadMapping(join(dir, 'nope.json')));
    expect(error.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(error.message).toContain('nope.json cannot be read (ENOENT)');
  });

  it('an unknown column, naming it', () => {
    const spec = builtinSpec('epic');
    spec.columns.push({ name: 'PATIENT.SHOE_SIZE', expressions: ['%patient.id'] });
    const error = errorOf(() => loadMapping(writeMapping('unknown-column.json', spec)));
    expect(error.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(error.message).toMatch(
      /^Mapping file .*unknown-column\.json: unknown column "PATIENT\.SHOE_SIZE"; this schema's columns are: ACCESS_LOG\.ACCESS_TIME, /,
    );
    expect(error.details).toMatchObject({ column: 'PATIENT.SHOE_SIZE' });
  });

  it('a missing column', () => {
    const spec = builtinSpec('healthcare');
    spec.columns = spec.columns.filter((column) => column.name !== 'Patient City');
    expect(errorOf(() => compileSpec(spec)).message).toBe(
      'Mapping file test-mapping.json: missing columns: Patient City (every schema column needs an entry; or use "extends").',
    );
  });

  it('an expression that does not parse: file, column and expression', () => {
    const error = errorOf(() => loadMapping(writeMapping('bad-expression.json', epicWith('PATIENT.CITY', { expressions: ['%address.city.where('] }))));
    expect(error.message).toMatch(/^Mapping file .*bad-expression\.json, column "PATIENT\.CITY": expression `%address\.city\.where\(` does not parse: /);
    expect(error.details).toMatchObject({ column: 'PATIENT.CITY', expression: '%address.city.where(' });
  });

  it('an unknown variable and an unknown function', () => {
    expect(errorOf(() => compileSpec(epicWith('PATIENT.CITY', { expressions: ['%adress.city'] }))).message).toBe(
      'Mapping file test-mapping.json, column "PATIENT.CITY": expression `%adress.city` uses the unknown variable %adress.',
    );
    expect(errorOf(() => compileSpec(epicWith('PATIENT.CITY', { expressions: ['%address.city.titleCase()'] }))).message).toBe(
      'Mapping file test-mapping.json, column "PATIENT.CITY": expression `%address.city.titleCase()` calls the unknown function titleCase() (FHIRPath names are case-sensitive: matches(), startsWith(), where() …).',
    );
  });

  it('an unknown function at any depth, where the dry run on an empty event never calls it: inside where(), select(), an iif() branch', () => {
    const cases: Array<[string, string, string]> = [
      ['EMP.SYSTEM_LOGIN', '%requestor.altId.where(matchs(%loginRegex))', 'matchs'],
      ['EMP.SYSTEM_LOGIN', "%requestor.who.identifier.where(value.startWith('E')).value", 'startWith'],
      ['PATIENT.CITY', '%address.select(city.uppercase())', 'uppercase'],
      ['PATIENT.CITY', "iif(%address.exists(), %address.city.titleCase(), 'none')", 'titleCase'],
    ];
    for (const [column, expression, name] of cases) {
      const path = writeMapping('unknown-function.json', epicWith(column, { expressions: [expression] }));
      const error = errorOf(() => loadMapping(path));
      expect(error.code, expression).toBe('BRG_ERR_MAPPING_INVALID');
      expect(error.message, expression).toBe(
        `Mapping file ${path}, column "${column}": expression \`${expression}\` calls the unknown function ${name}() (FHIRPath names are case-sensitive: matches(), startsWith(), where() …).`,
      );
      expect(error.details).toEqual({ file: path, column, expression });
    }
    // A path that names no element is no error (FHIRPath yields nothing): `sytem` is a member, not a function.
    expect(() => compileSpec(epicWith('EMP.SYSTEM_LOGIN', { expressions: ["%requestor.who.identifier.where(sytem = 'x').value"] }))).not.toThrow();
  });

  it('a function given a number of arguments it does not take, or one fhirpath.js runs only asynchronously (resolve)', () => {
    expect(errorOf(() => compileSpec(epicWith('PATIENT.CITY', { expressions: ["%address.city.where($this.substring(1, 2, 3) = 'a')"] }))).message).toContain(
      'calls substring() with 3 arguments, a number it does not take',
    );
    expect(errorOf(() => compileSpec(epicWith('PATIENT.CITY', { expressions: ['%address.city.where(matches())'] }))).message).toContain(
      'calls matches() with 0 arguments, a number it does not take',
    );
    expect(errorOf(() => compileSpec(epicWith('PATIENT.CITY', { expressions: ['%address.city.where(first(1))'] }))).message).toContain(
      'calls first() with 1 argument, a number it does not take',
    );
    expect(
      errorOf(() => compileSpec(epicWith('CLARITY_DEP.DEPARTMENT_NAME', { expressions: ['entity.where(what.resolve() is Location).what.display'] }))).message,
    ).toContain('calls resolve(), which fhirpath.js runs only asynchronously');
  });

  it('known functions at any depth, and those of %factory, load', () => {
    for (const expression of [
      "%requestor.who.identifier.where(value.startsWith('E') and value.length() > 2).value",
      "iif(%address.exists(), %address.city.upper(), 'x')",
      '%address.select(line.first() + city).first()',
      '%user.name.where(period.exists().not() or period.start <= %t.toDateTime()).family.first()',
      "%factory.string('x')",
    ]) {
      expect(() => compileSpec(epicWith('PATIENT.CITY', { expressions: [expression] })), expression).not.toThrow();
    }
  });

  it('an unknown built-in, naming the column and the entry', () => {
    const error = errorOf(() => compileSpec(epicWith('PATIENT.ZIP', { expressions: [{ builtin: 'zipPlus4' }] })));
    expect(error.message).toMatch(
      /^Mapping file test-mapping\.json: column "PATIENT\.ZIP", expression \{"builtin":"zipPlus4"\}: Invalid option: expected one of "eventTime"/,
    );
    expect(error.details).toEqual({ file: 'test-mapping.json', column: 'PATIENT.ZIP', expression: '{"builtin":"zipPlus4"}' });
  });

  it('a mandatory column marked optional', () => {
    expect(errorOf(() => compileSpec(epicWith('PATIENT.ZIP', { mandatory: false }))).message).toContain(
      'column "PATIENT.ZIP" is mandatory in the Purview schema and cannot be marked optional',
    );
  });

  it('csv for the epic schema, in the file or as an override', () => {
    expect(errorOf(() => compileSpec({ ...builtinSpec('epic'), delimiter: 'csv' })).message).toContain(
      'delimiter "comma" is only allowed for the healthcare schema',
    );
    expect(errorOf(() => compileSpec({ ...builtinSpec('epic'), delimiter: 'comma' })).message).toContain('the epic connector takes tab or pipe');
    expect(errorOf(() => compileSpec(builtinSpec('epic'), { delimiter: 'csv' })).code).toBe('BRG_ERR_MAPPING_INVALID');
  });

  it('an unknown time zone, a bad time format, a bad login regex, an option shadowing a variable', () => {
    expect(errorOf(() => compileSpec(builtinSpec('epic'), { timeFormat: 'local:Mars/Olympus_Mons' })).message).toContain(
      'timeFormat "local:Mars/Olympus_Mons"',
    );
    expect(errorOf(() => compileSpec({ ...builtinSpec('epic'), timeFormat: 'unix' })).message).toContain('expected iso-utc, iso-offset or local:<IANA zone>');
    expect(errorOf(() => compileSpec({ ...builtinSpec('epic'), options: { loginRegex: '([a-z' } })).message).toContain(
      'Mapping file test-mapping.json: option "loginRegex" is not a regular expression',
    );
    // Given as an override, the value is the configuration's (docs/configuration.md mapping.options).
    expect(errorOf(() => compileSpec(builtinSpec('epic'), { options: { loginRegex: '([a-z' } })).message).toContain(
      'Invalid configuration: mapping.options.loginRegex in the configuration: option "loginRegex" is not a regular expression',
    );
    expect(errorOf(() => compileSpec(builtinSpec('epic'), { options: { patient: 'x' } })).message).toContain('option "patient" is not a usable variable name');
    expect(errorOf(() => compileSpec(builtinSpec('epic'), { options: { btgCodes: 'BTG' } })).message).toContain('option "btgCodes"');
  });
});

describe('regular expressions that could backtrack for minutes on a long value (docs/mapping.md §12.2)', () => {
  const nested = 'a regular expression with a repeated part inside a repeated group';

  it("a nested repetition in loginRegex is refused at load: the file's, naming the file; the configuration's, naming its setting", () => {
    const path = writeMapping('nested-login.json', { extends: 'epic', options: { loginRegex: '^(a+)+$' } });
    const error = errorOf(() => loadMapping(path));
    expect(error.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(error.message).toBe(
      `Mapping file ${path}: option "loginRegex" is ${nested} (\`(a+)+\`), which can backtrack for minutes on a long value; ` +
        'repeat the group or its content, not both (e.g. `^a+$` for `^(a+)+$`, `^[\\w\\s]*$` for `^(\\w+\\s?)*$`).',
    );
    const override = errorOf(() => loadMapping(builtinMappingPath('epic'), { options: { loginRegex: '(\\w+\\s?)*$' } }));
    expect(override.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(override.message).toContain(`mapping.options.loginRegex in the configuration: option "loginRegex" is ${nested} (\`(\\w+\\s?)*\`)`);
  });

  it('an option or a literal given to matches(), matchesFull() or replaceMatches(), at any depth, naming file, column and expression', () => {
    const option = writeMapping('nested-option.json', {
      extends: 'epic',
      options: { empRegex: '^(E?[0-9]+)*$' },
      columns: [{ name: 'CLARITY_EMP.USER_ID', expressions: ['%user.identifier.value.where(matches(%empRegex))'] }],
    });
    expect(errorOf(() => loadMapping(option)).message).toBe(
      `Mapping file ${option}, column "CLARITY_EMP.USER_ID": expression \`%user.identifier.value.where(matches(%empRegex))\` passes matches() the option %empRegex, which is ${nested} (\`(E?[0-9]+)*\`), which can backtrack for minutes on a long value; ` +
        'repeat the group or its content, not both (e.g. `^a+$` for `^(a+)+$`, `^[\\w\\s]*$` for `^(\\w+\\s?)*$`).',
    );
    for (const expression of [
      "%requestor.altId.where(matches('^(\\\\w+\\\\s?)*$'))",
      "%requestor.who.identifier.where(value.matchesFull('([a-z]+)+')).value",
      "%requestor.altId.replaceMatches('(x*)*', '')",
    ]) {
      const error = errorOf(() => compileSpec(epicWith('EMP.SYSTEM_LOGIN', { expressions: [expression] })));
      expect(error.message, expression).toMatch(
        /^Mapping file test-mapping\.json, column "EMP\.SYSTEM_LOGIN": expression `.*` passes (matches|matchesFull|replaceMatches)\(\) a pattern that is a regular expression with a repeated part inside a repeated group/,
      );
    }
    expect(errorOf(() => compileSpec(epicWith('EMP.SYSTEM_LOGIN', { expressions: ["%requestor.altId.where(matches('^(E'))"] }))).message).toContain(
      'passes matches() a pattern that is not a regular expression (Invalid regular expression: /^(E/su: Unterminated group)',
    );
  });

  it("the built-in mappings' regular expressions, and the usual site ones, load", () => {
    for (const schema of ['epic', 'healthcare'] as const) {
      const spec = builtinSpec(schema);
      expect(regexProblem(String(spec.options['loginRegex']))).toBeUndefined();
      expect(() => loadMapping(builtinMappingPath(schema))).not.toThrow();
    }
    expect(regexProblem(DEFAULT_LOGIN_REGEX)).toBeUndefined();
    for (const loginRegex of ['^[0-9]+$', '.', '^[^@\\s]+@[^@\\s]+$', '^[A-Za-z][A-Za-z0-9._-]{2,19}$', '^(?:[a-z]+\\\\)?[a-z0-9]+$', '^E\\d{4,8}$']) {
      expect(() => loadMapping(builtinMappingPath('epic'), { options: { loginRegex } }), loginRegex).not.toThrow();
    }
    expect(() =>
      compileSpec(epicWith('EMP.SYSTEM_LOGIN', { expressions: ["%requestor.altId.where(matches('^[a-z]+@example\\\\.org$'))", { builtin: 'userLogin' }] })),
    ).not.toThrow();
  });
});
