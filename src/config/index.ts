export { canAccess, exposureOf, type FileAccess, fileExposure, warnIfFileExposed } from './file-mode.js';
export { CONFIG_PATH_ENV, ENV_PREFIX, type LoadConfigOptions, loadConfig, PROFILES, profileFlag, validateConfig } from './load.js';
export { mappingOptionOrigin } from './origins.js';
export { type Config, type ConfigInput, type ConnectorConfig, configSchema, connectorSchema, DEFAULT_SCOPE, type SecretRef } from './schema.js';
export { errnoOf, readSecret } from './secrets.js';
export { type FhirSettings, fhirSettings, type SmartSettings, smartSettings } from './sections.js';
