/**
 * Issue #15.4: messages that fit the server. A client id can be an 800-character JWT pasted by mistake: it is
 * shortened. Epic's vocabulary (production/non-production ids, background users) only when the URLs are Epic's.
 * A non-JSON error body is quoted (cleaned, truncated) instead of dropped. Every message is one line.
 */
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { fetchVia } from '../../src/net/index.js';
import { createSandboxCertificate, type SandboxCertificate } from '../../src/sandbox/tls.js';
import { createSmartTokenSource } from '../../src/smart/index.js';
import { looksLikeEpic } from '../../src/smart/token-errors.js';
import { InstantClock } from '../support/manual-clock.js';
import { captureLogger, makeKey, type StubServer, sendJson, startStubServer } from './support.js';

const SCOPE = 'system/Patient.read';
const stubs: StubServer[] = [];
afterEach(async () => {
  for (const stub of stubs.splice(0)) await stub.close();
});

async function tokenFailure(
  path: string,
  answer: (response: Parameters<Parameters<typeof startStubServer>[0]>[1]) => void,
  clientId: string,
): Promise<BridgeError> {
  const stub = await startStubServer((_request, response) => answer(response));
  stubs.push(stub);
  const key = await makeKey('ES384');
  const tokens = createSmartTokenSource({
    fhirBaseUrl: 'http://127.0.0.1:9/unused',
    tokenUrl: `${stub.origin}${path}`,
    clientId,
    scope: SCOPE,
    key: key.signingKey,
    clock: new InstantClock(),
    logger: captureLogger().logger,
  });
  const error: unknown = await tokens.getToken().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BridgeError);
  return error as BridgeError;
}

/** A token request to an https token endpoint serving `certificate`, trusted (its CA given) or not: the error, and how many requests reached it. */
async function tokenFailureOverTls(certificate: SandboxCertificate, trusted: boolean): Promise<{ error: BridgeError; requests: number }> {
  let requests = 0;
  const server = createHttpsServer({ key: certificate.keyPem, cert: certificate.certPem }, (_request, response) => {
    requests += 1;
    response.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const key = await makeKey('ES384');
    const tokens = createSmartTokenSource({
      fhirBaseUrl: 'http://127.0.0.1:9/unused',
      tokenUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/token`,
      clientId: 'client-1',
      scope: SCOPE,
      key: key.signingKey,
      clock: new InstantClock(),
      logger: captureLogger().logger,
      ...(trusted ? { fetch: fetchVia(new Agent({ connect: { ca: certificate.certPem } })) } : {}),
    });
    const error = (await tokens.getToken().catch((e: unknown) => e)) as BridgeError;
    return { error, requests };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const JWT_AS_CLIENT_ID = `eyJhbGciOiJSUzM4NCJ9.${'eyJpc3MiOiJ4In0'.repeat(50)}.${'s'.repeat(40)}`;

describe('token error messages', () => {
  it('shortens a client id that is really a JWT, and gives no Epic advice to a server that is not Epic', async () => {
    const error = await tokenFailure('/oauth/token', (response) => sendJson(response, 401, { error: 'invalid_client' }), JWT_AS_CLIENT_ID);
    expect(error.code).toBe('BRG_ERR_SMART_INVALID_CLIENT');
    expect(error.message).not.toContain(JWT_AS_CLIENT_ID);
    expect(error.message).toContain(`client id "eyJhbGci…ssss" (${JWT_AS_CLIENT_ID.length} characters; it looks like a JWT, not a client id)`);
    expect(error.message).not.toMatch(/Epic/);
    expect(error.message).toContain('is registered with this authorization server');
    expect(error.message).not.toContain('\n');
  });

  it("keeps Epic's advice for an Epic-shaped token URL", async () => {
    const error = await tokenFailure(
      '/interconnect-fhir-oauth/oauth2/token',
      (response) => sendJson(response, 400, { error: 'unauthorized_client' }),
      'd45049c3-3441-40ef-ab4d-b9cd86a17225',
    );
    expect(error.code).toBe('BRG_ERR_SMART_UNAUTHORIZED_CLIENT');
    expect(error.message).toContain(
      'client id "d45049c3-3441-40ef-ab4d-b9cd86a17225" is incomplete: their Epic Client Systems Administrator must map it to a background user.',
    );
  });

  it("scrubs the server's error_description like any upstream text: no e-mail, bearer token or long number reaches the message", async () => {
    const description = 'client jane.doe@hospital.example.org sent Bearer abc.def.ghi for MRN 12345678';
    const error = await tokenFailure(
      '/oauth/token',
      (response) => sendJson(response, 400, { error: 'invalid_grant', error_description: description }),
      'bridge-np',
    );
    for (const secret of ['jane.doe@hospital.example.org', 'abc.def.ghi', '12345678']) {
      expect(error.message).not.toContain(secret);
      expect(JSON.stringify(error.details)).not.toContain(secret);
    }
    expect(error.details['error_description']).toBe('client [email] sent Bearer [token] for MRN [number]');
  });

  it('scrubs free text a gateway puts in `error` itself (a refused assertion), as it scrubs the description', async () => {
    const assertion = `eyJhbGciOiJFUzM4NCJ9.${'eyJzdWIiOiJ4In0'.repeat(3)}.${'s'.repeat(40)}`;
    const error = await tokenFailure(
      '/oauth/token',
      (response) => sendJson(response, 400, { error: `invalid_client: client_assertion=${assertion} rejected` }),
      'bridge-np',
    );
    expect(error.message).not.toContain(assertion);
    expect(JSON.stringify(error.details)).not.toContain(assertion);
    expect(error.message).not.toContain('eyJ');
  });

  it('quotes a non-JSON error body, one line, without query strings or long numbers', async () => {
    const page =
      '<html>\n<head><title>400 Bad Request</title></head>\n<body><h1>Bad Request</h1>\n<p>rejected /oauth2/token?client_id=abc for MRN 12345678</p></body></html>';
    const error = await tokenFailure(
      '/oauth/token',
      (response) => {
        response.writeHead(400, { 'content-type': 'text/html' });
        response.end(page);
      },
      'bridge-np',
    );
    expect(error.message).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/oauth\/token answered HTTP 400 \(a body that is not JSON: "400 Bad Request Bad Request rejected \/oauth2\/token\?… for MRN \[number\]"\)\. /,
    );
    expect(error.message).not.toContain('12345678');
    expect(error.message).not.toContain('client_id=abc');
    expect(error.message).not.toContain('\n');
  });

  it('names a redirect of the token request, once: the assertion is never re-posted, and no retry changes the answer', async () => {
    let requests = 0;
    const error = await tokenFailure(
      '/oauth/token',
      (response) => {
        requests += 1;
        response.writeHead(302, { location: 'https://login.example.org/oauth/token' }).end();
      },
      'client-1',
    );
    expect(error.code).toBe('BRG_ERR_SMART_TOKEN');
    expect(error.message).toMatch(/\/oauth\/token answered with a redirect; the bridge does not re-send its client assertion elsewhere\. Set smart\.tokenUrl/);
    expect(requests).toBe(1);
  });

  it('names a certificate this machine does not trust, once, pointing at network.caFile', async () => {
    const { error, requests } = await tokenFailureOverTls(await createSandboxCertificate(), false);
    expect(error.code).toBe('BRG_ERR_SMART_TOKEN');
    expect(error.message).toMatch(
      /presented a certificate this machine does not trust \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)\. Add the issuing CA to network\.caFile/,
    );
    expect(requests).toBe(0);
  });

  it('names an expired server certificate as such (no CA to add), once', async () => {
    const expired = await createSandboxCertificate({ validDays: 1, now: new Date(Date.now() - 10 * 86_400_000) });
    const { error, requests } = await tokenFailureOverTls(expired, true);
    expect(error.message).toMatch(/was refused over TLS \(CERT_HAS_EXPIRED\): its certificate has expired: the EHR team must renew it\.$/);
    expect(requests).toBe(0);
  });

  it('recognises Epic only by its URL shapes', () => {
    expect(looksLikeEpic('https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token')).toBe(true);
    expect(looksLikeEpic('https://ehr.example.org/interconnect-ehr-prd/oauth2/token')).toBe(true);
    expect(looksLikeEpic('https://proxy.example.org/FHIRProxy/api/FHIR/R4')).toBe(true);
    expect(looksLikeEpic('https://login.example.org/oauth2/token', 'https://hapi.example.org/fhir')).toBe(false);
    expect(looksLikeEpic('https://epicsomething.example.org/token')).toBe(false);
  });
});
