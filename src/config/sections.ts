/** A connector's FHIR and SMART sections, which are optional only for a flat-file source without FHIR enrichment. */
import { BridgeError } from '../errors.js';
import type { ConnectorConfig } from './schema.js';

export type FhirSettings = NonNullable<ConnectorConfig['fhir']>;
export type SmartSettings = NonNullable<ConnectorConfig['smart']>;

export function fhirSettings(connector: ConnectorConfig): FhirSettings {
  if (connector.fhir) return connector.fhir;
  throw missing(connector, 'fhir');
}

export function smartSettings(connector: ConnectorConfig): SmartSettings {
  if (connector.smart) return connector.smart;
  throw missing(connector, 'smart');
}

function missing(connector: ConnectorConfig, section: 'fhir' | 'smart'): BridgeError {
  return new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `Connector "${connector.name}" has no ${section} section, and this needs the FHIR server: add connectors[].${section} (docs/configuration.md).`,
    {
      details: { connector: connector.name, section },
    },
  );
}
