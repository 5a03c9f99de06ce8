/** A connector's mapping: the file named and the schema the config says must agree (docs/configuration.md mapping.*). */
import { describe, expect, it } from 'vitest';
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
