/**
 * Where the configuration set each key of a connector's mapping.options: the mapping compiler checks those values (it
 * knows what they mean), and a refusal must name this setting, in the config file or the environment variable that gave
 * it, not the mapping file the option overrides (docs/configuration.md). Kept beside the frozen config, keyed by the
 * options object itself, so copies of a connector's settings (`{ ...connector, mapping: { ...connector.mapping } }`)
 * still find it.
 */
import type { Config } from './schema.js';

const ORIGINS = new WeakMap<object, (name: string) => string>();

/** Records where each connector's mapping.options were set; `describe` says where the key at a config path was. */
export function recordMappingOptionOrigins(config: Config, describe: (path: ReadonlyArray<string | number>) => string): void {
  config.connectors.forEach((connector, index) => {
    const options = connector.mapping.options;
    if (options) ORIGINS.set(options, (name) => describe(['connectors', index, 'mapping', 'options', name]));
  });
}

/**
 * Where the configuration set mapping option `name` of this `options` object (`connectors.0.mapping.options.loginRegex
 * in /etc/bridge/config.json (line 12, column 7)`), or undefined for options no loaded configuration holds.
 */
export function mappingOptionOrigin(options: object | undefined, name: string): string | undefined {
  return options === undefined ? undefined : ORIGINS.get(options)?.(name);
}
