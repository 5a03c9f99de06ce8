/**
 * Issue #21.2: under the `epic-sandbox` profile only scopes Epic's sandbox serves are requested, and an
 * `invalid_scope` answer names the requested scopes and the one(s) to remove: from the server's description when it
 * gives one, else from the server's /metadata (a type it does not list), else with an example.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { DEFAULT_SCOPE } from '../../src/config/schema.js';
import { BridgeError } from '../../src/errors.js';
import { type EpicAuthServer, startEpicAuthServer } from '../../src/sandbox/epic-auth.js';
import { createMemoryBackend } from '../../src/sandbox/fhir-backend.js';
import { type SandboxFhirServer, startFhirServer } from '../../src/sandbox/fhir-server.js';
import { createSmartTokenSource } from '../../src/smart/index.js';
import { ManualClock } from '../support/manual-clock.js';
import { captureLogger, jwksUrlFor, makeKey, type TestKey } from './support.js';

const SANDBOX_SCOPES = ['system/Patient.read', 'system/Practitioner.read'];
let clock: ManualClock;
let verbose: EpicAuthServer;
let terse: EpicAuthServer;
let fhir: SandboxFhirServer;
let key: TestKey;
let appKeys: { url: string; close(): Promise<void> };

beforeAll(async () => {
  clock = new ManualClock('2026-11-01T08:00:00Z');
  key = await makeKey('ES384');
  [verbose, terse] = await Promise.all([startEpicAuthServer({ clock }), startEpicAuthServer({ clock, terseErrors: true })]);
  appKeys = await jwksUrlFor([key.publicJwk]);
  for (const server of [verbose, terse]) server.registerClient({ clientId: 'sandbox-app', jwksUrl: appKeys.url, scopes: SANDBOX_SCOPES });
  // Like fhir.epic.com: /metadata lists Patient and Practitioner, no AuditEvent.
  fhir = await startFhirServer({ backend: await createMemoryBackend(), verifyAccessToken: () => false, tokenUrl: terse.tokenUrl, listAuditEvent: false });
});

afterAll(async () => {
  await Promise.all([verbose.close(), terse.close(), fhir.close(), appKeys.close()]);
});

async function scopeError(server: EpicAuthServer, fhirBaseUrl: string, scope = DEFAULT_SCOPE): Promise<BridgeError> {
  const tokens = createSmartTokenSource({
    fhirBaseUrl,
    tokenUrl: server.tokenUrl,
    clientId: 'sandbox-app',
    scope,
    key: key.signingKey,
    clock,
    logger: captureLogger().logger,
  });
  const error: unknown = await tokens.getToken().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe('BRG_ERR_SMART_INVALID_SCOPE');
  expect((error as BridgeError).exitCode).toBe(3);
  expect((error as BridgeError).message).not.toContain('\n');
  return error as BridgeError;
}

const REQUESTED = `The requested scopes (smart.scope) are "${DEFAULT_SCOPE}"`;

describe('invalid_scope names the scope to remove', () => {
  it("from the server's description", async () => {
    const error = await scopeError(verbose, 'http://127.0.0.1:9/unused');
    expect(error.message).toBe(
      `${verbose.tokenUrl} answered HTTP 400 (invalid_scope: scope system/AuditEvent.read is not registered for this client). ` +
        `${REQUESTED}; remove system/AuditEvent.read: the server's answer names it.`,
    );
  });

  it("from the server's /metadata when the answer says nothing (Epic sends error_description null)", async () => {
    const error = await scopeError(terse, fhir.baseUrl);
    expect(error.message).toBe(
      `${terse.tokenUrl} answered HTTP 400 (invalid_scope). ${REQUESTED}; remove system/AuditEvent.read: the server's /metadata lists no AuditEvent.`,
    );
  });

  it('with an example when neither tells', async () => {
    const error = await scopeError(terse, 'http://127.0.0.1:9/unreachable');
    expect(error.message).toBe(
      `${terse.tokenUrl} answered HTTP 400 (invalid_scope). ${REQUESTED}; remove the scopes whose APIs are not selected on the Epic app record, e.g. system/AuditEvent.read.`,
    );
  });
});

describe('the epic-sandbox profile', () => {
  const connector = { name: 'epic', smart: { clientId: 'sandbox-app' }, purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } } };

  it("requests only the scopes Epic's sandbox serves, which its token server grants; an explicit smart.scope wins", async () => {
    const config = loadConfig({ base: { connectors: [{ ...connector, profile: 'epic-sandbox' }] }, env: {} });
    const scope = config.connectors[0]?.smart?.scope ?? '';
    expect(scope).toBe('system/Patient.read system/Practitioner.read');
    expect(scope).not.toContain('AuditEvent');

    const tokens = createSmartTokenSource({
      fhirBaseUrl: fhir.baseUrl,
      tokenUrl: terse.tokenUrl,
      clientId: 'sandbox-app',
      scope,
      key: key.signingKey,
      clock,
      logger: captureLogger().logger,
    });
    expect(terse.verifyAccessToken(await tokens.getToken())?.scope).toBe('Patient.read Practitioner.read');

    const own = loadConfig({
      base: { connectors: [{ ...connector, profile: 'epic-sandbox', smart: { clientId: 'x', scope: 'system/Patient.read' } }] },
      env: {},
    });
    expect(own.connectors[0]?.smart?.scope).toBe('system/Patient.read');
  });
});
