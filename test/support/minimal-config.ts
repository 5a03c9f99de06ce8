/** The smallest valid config: one FHIR search connector with its SMART client and Purview job (secret from the env). */
export const MINIMAL_CONFIG = {
  connectors: [
    {
      name: 'main',
      fhir: { baseUrl: 'https://ehr.example.org/api/FHIR/R4' },
      smart: { clientId: 'client-1' },
      purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'PURVIEW_APP_SECRET' } },
    },
  ],
};
