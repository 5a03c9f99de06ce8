export { loadConfig, validateConfig, profileFlag, PROFILES, ENV_PREFIX, CONFIG_PATH_ENV, type LoadConfigOptions } from './load.js';
export { readSecret } from './secrets.js';
export { configSchema, connectorSchema, DEFAULT_SCOPE, type Config, type ConfigInput, type ConnectorConfig, type SecretRef } from './schema.js';
export { fhirSettings, smartSettings, type FhirSettings, type SmartSettings } from './sections.js';
