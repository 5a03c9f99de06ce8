/** Token URL discovery against tiny loopback servers shaped like Epic's documents. */
import { afterEach, describe, expect, it } from 'vitest';
import type { BridgeError } from '../../src/errors.js';
import { discoverTokenUrl } from '../../src/smart/index.js';
import { rejectionOf } from '../support/error-of.js';
import { type StubServer, sendJson, startStubServer } from './support.js';

const BASE_PATH = '/interconnect-fhir-oauth/api/FHIR/R4';
const servers: StubServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Epic's published smart-configuration (docs/epic-smart.md §5.2): no signing-alg list, no system scopes. */
function epicSmartConfiguration(origin: string): Record<string, unknown> {
  return {
    authorization_endpoint: `${origin}/interconnect-fhir-oauth/oauth2/authorize`,
    token_endpoint: `${origin}/interconnect-fhir-oauth/oauth2/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic', 'private_key_jwt'],
    grant_types_supported: ['authorization_code', 'client_credentials', 'urn:ietf:params:oauth:grant-type:jwt-bearer'],
    scopes_supported: ['epic.scanning.dmsusername', 'fhirUser', 'launch', 'openid', 'profile'],
    response_types_supported: ['code'],
    capabilities: [
      'launch-ehr',
      'launch-standalone',
      'client-public',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'permission-v1',
      'permission-v2',
    ],
  };
}

function capabilityStatement(tokenUrl: string): Record<string, unknown> {
  return {
    resourceType: 'CapabilityStatement',
    rest: [
      {
        mode: 'server',
        security: {
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [
                { url: 'authorize', valueUri: `${tokenUrl}/../authorize` },
                { url: 'token', valueUri: tokenUrl },
              ],
            },
          ],
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
        },
      },
    ],
  };
}

async function serve(routes: Record<string, (origin: string) => [number, unknown]>): Promise<StubServer> {
  let origin = '';
  const server = await startStubServer((request, response) => {
    const route = routes[request.url];
    if (!route) return sendJson(response, 404, { resourceType: 'OperationOutcome' });
    const [status, body] = route(origin);
    sendJson(response, status, body);
  });
  origin = server.origin;
  servers.push(server);
  return server;
}

/** The discovery error `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<BridgeError> {
  const error = await rejectionOf(promise);
  expect(error.code).toBe('BRG_ERR_SMART_DISCOVERY');
  return error;
}

describe('discoverTokenUrl', () => {
  it("reads Epic's smart-configuration (appended to the base path, trailing slash or not) and sends Epic-Client-ID", async () => {
    const server = await serve({ [`${BASE_PATH}/.well-known/smart-configuration`]: (origin) => [200, epicSmartConfiguration(origin)] });
    for (const base of [`${server.origin}${BASE_PATH}`, `${server.origin}${BASE_PATH}/`]) {
      expect(await discoverTokenUrl(base, { clientId: 'np-client-id' })).toBe(`${server.origin}/interconnect-fhir-oauth/oauth2/token`);
    }
    expect(server.requests.map((r) => [r.url, r.headers['epic-client-id'], r.headers['accept']])).toEqual([
      [`${BASE_PATH}/.well-known/smart-configuration`, 'np-client-id', 'application/json'],
      [`${BASE_PATH}/.well-known/smart-configuration`, 'np-client-id', 'application/json'],
    ]);
  });

  it('falls back to the CapabilityStatement oauth-uris extension when there is no smart-configuration', async () => {
    const server = await serve({ [`${BASE_PATH}/metadata`]: (origin) => [200, capabilityStatement(`${origin}/oauth2/token`)] });
    expect(await discoverTokenUrl(`${server.origin}${BASE_PATH}`, { clientId: 'np' })).toBe(`${server.origin}/oauth2/token`);
    expect(server.requests.map((r) => [r.url, r.headers['accept'], r.headers['epic-client-id']])).toEqual([
      [`${BASE_PATH}/.well-known/smart-configuration`, 'application/json', 'np'],
      [`${BASE_PATH}/metadata`, 'application/fhir+json', 'np'],
    ]);
  });

  it('refuses a server whose auth methods leave out private_key_jwt, without falling back', async () => {
    const server = await serve({
      [`${BASE_PATH}/.well-known/smart-configuration`]: (origin) => [
        200,
        { ...epicSmartConfiguration(origin), token_endpoint_auth_methods_supported: ['client_secret_basic'] },
      ],
      [`${BASE_PATH}/metadata`]: (origin) => [200, capabilityStatement(`${origin}/oauth2/token`)],
    });
    const error = await failure(discoverTokenUrl(`${server.origin}${BASE_PATH}`, { clientId: 'np' }));
    expect(error.message).toContain('lists token_endpoint_auth_methods_supported = ["client_secret_basic"], without "private_key_jwt"');
    expect(server.requests).toHaveLength(1);
  });

  it('names both URLs and what they gave when nothing is found; 5xx is marked transient', async () => {
    const server = await serve({ [`${BASE_PATH}/metadata`]: () => [503, {}] });
    const base = `${server.origin}${BASE_PATH}`;
    const error = await failure(discoverTokenUrl(base, { clientId: 'np' }));
    expect(error.message).toBe(
      `No token endpoint found for ${base}: ${base}/.well-known/smart-configuration gave HTTP 404; ${base}/metadata gave HTTP 503. ` +
        'Check fhir.baseUrl, or set smart.tokenUrl explicitly.',
    );
    expect(error.details['transient']).toBe(true);
  });

  it('refuses a plain-http token endpoint off loopback', async () => {
    const server = await serve({
      [`${BASE_PATH}/.well-known/smart-configuration`]: (origin) => [
        200,
        { ...epicSmartConfiguration(origin), token_endpoint: 'http://ehr.example.org/oauth2/token' },
      ],
    });
    const error = await failure(discoverTokenUrl(`${server.origin}${BASE_PATH}`, { clientId: 'np' }));
    expect(error.message).toContain('names token endpoint http://ehr.example.org/oauth2/token, which is not https');
  });
});
