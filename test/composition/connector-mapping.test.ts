/** A connector's mapping: the file named and the schema the config says must agree (docs/configuration.md mapping.*). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConnectorMapping } from '../../src/composition/index.js';
import { loadConfig } from '../../src/config/index.js';
import { builtinMappingPath } from '../../src/mapping/index.js';
import { errorOf } from '../support/error-of.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';

const connectorWith = (env: Record<string, string>) => loadConfig({ base: MINIMAL_CONFIG, env }).connectors[0] as Parameters<typeof loadConnectorMapping>[0];

describe('loadConnectorMapping', () => {
  it('refuses a mapping file of the other schema than mapping.schema (the job would refuse every block), naming both and the fix', () => {
    const error = errorOf(() =>
      loadConnectorMapping(
        connectorWith({ BRIDGE__connectors__0__mapping__schema: 'healthcare', BRIDGE__connectors__0__mapping__file: builtinMappingPath('epic') }),
      ),
    );
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toContain(`mapping.file ${builtinMappingPath('epic')} maps to the epic schema, but mapping.schema is healthcare`);
    expect(error.message).toContain('Set mapping.schema to the schema of the Purview job (epic for this file)');
    // Not set, mapping.schema is epic: a healthcare file must say so in the config too.
    const unset = errorOf(() => loadConnectorMapping(connectorWith({ BRIDGE__connectors__0__mapping__file: builtinMappingPath('healthcare') })));
    expect(unset.message).toContain('but mapping.schema is epic (epic when it is not set)');
  });

  it('takes a file of the schema the config names, and the built-in one by default', () => {
    const healthcare = loadConnectorMapping(
      connectorWith({ BRIDGE__connectors__0__mapping__schema: 'healthcare', BRIDGE__connectors__0__mapping__file: builtinMappingPath('healthcare') }),
    );
    expect(healthcare.schema).toBe('healthcare');
    expect(loadConnectorMapping(connectorWith({})).schema).toBe('epic');
  });
});

describe("the config's mapping.options (docs/configuration.md mapping.options)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-mapping-options-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** A config file (JSON) whose connector sets `options`, and its connector as loadConfig gives it. */
  const configWith = (options: Record<string, unknown>, env: Record<string, string> = {}) => {
    const path = join(dir, 'config.json');
    const connector = { ...MINIMAL_CONFIG.connectors[0], mapping: { options } };
    writeFileSync(path, `${JSON.stringify({ connectors: [connector] }, null, 2)}\n`);
    return { path, connector: loadConfig({ path, env }).connectors[0] as Parameters<typeof loadConnectorMapping>[0] };
  };

  it('a value the config file gives that the mapping refuses is named by its key in the config file, not as the mapping file', () => {
    const { path, connector } = configWith({ loginRegex: '^([a-z' });
    const error = errorOf(() => loadConnectorMapping(connector));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toMatch(
      new RegExp(
        `^Invalid configuration: connectors\\.0\\.mapping\\.options\\.loginRegex in ${path.replace(/[.\\/]/g, '\\$&')} \\(line \\d+, column \\d+\\): option "loginRegex" is not a regular expression`,
      ),
    );
    expect(error.message).toContain(`Correct it in the configuration: it overrides the option of mapping file ${builtinMappingPath('epic')}.`);
    expect(error.message).not.toMatch(/^Mapping file/);
    expect(error.details).toMatchObject({ setting: expect.stringContaining(path), option: 'loginRegex' });
    // A type the option does not take, and a misspelt option no expression reads: the config's errors too.
    expect(errorOf(() => loadConnectorMapping(configWith({ btgCodes: 'BTG' }).connector)).message).toMatch(
      /^Invalid configuration: connectors\.0\.mapping\.options\.btgCodes in .*config\.json \(line \d+, column \d+\): option "btgCodes" is invalid/,
    );
    const typo = errorOf(() => loadConnectorMapping(configWith({ mrnSystem: ['urn:oid:1.2.3'] }).connector));
    expect(typo.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(typo.message).toMatch(/^Invalid configuration: connectors\.0\.mapping\.options\.mrnSystem in .*config\.json .*did you mean "mrnSystems"/);
  });

  it('a value an environment variable gives is named by the variable', () => {
    const { connector } = configWith({}, { BRIDGE__connectors__0__mapping__options__loginRegex: '^(a+)+$' });
    const error = errorOf(() => loadConnectorMapping(connector));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toMatch(
      /^Invalid configuration: connectors\.0\.mapping\.options\.loginRegex \(set by BRIDGE__connectors__0__mapping__options__loginRegex\): option "loginRegex" is a regular expression with a repeated part inside a repeated group/,
    );
  });

  it("the mapping file's own options stay the mapping file's errors; valid config options load", () => {
    expect(loadConnectorMapping(configWith({ loginRegex: '^[a-z0-9]+$', mrnSystems: ['urn:oid:1.2.3'] }).connector).schema).toBe('epic');
    const own = join(dir, 'own.json');
    writeFileSync(own, JSON.stringify({ extends: 'epic', options: { loginRegex: '^([a-z' } }));
    // The config's options beside a file's own: the file's bad value is the file's to fix.
    const { connector } = configWith({ mrnSystems: ['urn:oid:1.2.3'] });
    const error = errorOf(() => loadConnectorMapping({ ...connector, mapping: { ...connector.mapping, file: own } }));
    expect(error.code).toBe('BRG_ERR_MAPPING_INVALID');
    expect(error.message).toMatch(new RegExp(`^Mapping file ${own.replace(/[.\\/]/g, '\\$&')}: option "loginRegex" is not a regular expression`));
  });

  it("a site variable of the mapping file that the config overrides with no usable regular expression: the config's error, naming the column that uses it", () => {
    const own = join(dir, 'emp.json');
    writeFileSync(
      own,
      JSON.stringify({
        extends: 'epic',
        options: { empRegex: '^E[0-9]+$' },
        columns: [{ name: 'CLARITY_EMP.USER_ID', expressions: ['%user.identifier.value.where(matches(%empRegex))'] }],
      }),
    );
    const { path, connector } = configWith({ empRegex: '^(E?[0-9]+)+$' });
    const error = errorOf(() => loadConnectorMapping({ ...connector, mapping: { ...connector.mapping, file: own } }));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toContain(`Invalid configuration: connectors.0.mapping.options.empRegex in ${path} (line`);
    expect(error.message).toContain('column "CLARITY_EMP.USER_ID" passes it to matches() in `%user.identifier.value.where(matches(%empRegex))`');
  });
});

describe("the config's mapping.timeFormat", () => {
  it('is refused at config load, naming the key and the variable that set it, not the mapping file', () => {
    const error = errorOf(() => connectorWith({ BRIDGE__connectors__0__mapping__timeFormat: 'local:Mars/Olympus_Mons' }));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toContain('connectors.0.mapping.timeFormat: got "local:Mars/Olympus_Mons"; expected iso-utc, iso-offset or local:<IANA zone>');
    expect(error.message).toContain('(set by BRIDGE__connectors__0__mapping__timeFormat)');
    expect(loadConnectorMapping(connectorWith({ BRIDGE__connectors__0__mapping__timeFormat: 'local:America/Chicago' })).schema).toBe('epic');
  });
});
