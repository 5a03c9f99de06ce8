/**
 * Issue #20.1, per client, against the loopback proxy: a proxy refusing the tunnel (407) ends SMART, FHIR and Entra
 * requests at once with BRG_ERR_PROXY_REFUSED naming the proxy, never its credentials, and without retries; the FHIR
 * size cap (fhir.maxResponseBytes) still holds when the answer comes through the proxy; network.caFile alone makes a
 * TLS server with a private CA trusted (corporate TLS inspection), for these clients only.
 */
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Bundle } from 'fhir/r4.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { type BridgeError, toBridgeError } from '../../src/errors.js';
import { BulkHttp } from '../../src/fhir/bulk/http.js';
import { silentLogger } from '../../src/log.js';
import { createDispatcher, fetchVia, type NetworkSettings, resolveNetwork } from '../../src/net/index.js';
import { createPurviewTokenSource } from '../../src/purview/index.js';
import { type EntraEmulator, startEntraEmulator } from '../../src/sandbox/entra.js';
import { createSandboxCertificate } from '../../src/sandbox/tls.js';
import { createSmartTokenSource } from '../../src/smart/index.js';
import { allResources, buildFixtures, type FixtureServer, startFixtureServer } from '../fhir/support.js';
import { makeKey } from '../smart/support.js';
import { rejectionOf } from '../support/error-of.js';
import { hostPort, startTestProxy, type TestProxy } from './support.js';

const PASSWORD = 'wr0ng-Pass';
let proxy: TestProxy;
let entra: EntraEmulator;
let fixture: FixtureServer | undefined;
const app = { tenantId: crypto.randomUUID(), appId: crypto.randomUUID(), secret: 'entra-app-secret' };

beforeAll(async () => {
  proxy = await startTestProxy({ credentials: 'svc:right-pass' });
  entra = await startEntraEmulator({ tls: await createSandboxCertificate() });
  entra.registerApp(app);
});
afterAll(async () => {
  await proxy?.close();
  await entra?.close();
});
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

/** Every target through the test proxy, with `credentials` (user:password) in the URL; NO_PROXY set, covering nothing here. */
function viaProxy(credentials?: string): NetworkSettings {
  const url = credentials ? proxy.url.replace('http://', `http://${credentials}@`) : proxy.url;
  return resolveNetwork(undefined, { HTTPS_PROXY: url, HTTP_PROXY: url, NO_PROXY: 'localhost' });
}

/** A SMART token source for `origin`'s token endpoint (`/oauth2/token`), its requests through `network`. */
async function smartSourceThrough(network: NetworkSettings, origin: string) {
  return createSmartTokenSource({
    fhirBaseUrl: `${origin}/R4`,
    tokenUrl: `${origin}/oauth2/token`,
    clientId: 'c',
    scope: 'system/Patient.read',
    key: (await makeKey('ES384')).signingKey,
    clock: systemClock,
    logger: silentLogger(),
    fetch: fetchVia(createDispatcher(network)),
  });
}

function expectRefusal(error: BridgeError, what: string): void {
  expect([error.code, error.exitCode]).toEqual(['BRG_ERR_PROXY_REFUSED', 2]);
  expect(error.message).toContain(`${what}: the proxy ${proxy.url} (HTTPS_PROXY) refused the connection with HTTP 407`);
  expect(error.message).toContain('network.proxy.credentials');
  expect(error.details).toEqual({ proxy: proxy.url, source: 'HTTPS_PROXY', status: 407 });
  for (const text of [error.message, JSON.stringify(error.details)]) expect(text).not.toContain(PASSWORD);
}

describe('a proxy refusing with 407', () => {
  it('ends a FHIR search at once (forwarded http request), not retried', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 3, patients: 1, practitioners: 1 })));
    const network = resolveNetwork(undefined, { HTTP_PROXY: proxy.url.replace('http://', `http://svc:${PASSWORD}@`), NO_PROXY: '' });
    const fhir = fixture.client({ network });
    const refusedBefore = proxy.refused.length;

    const error = await rejectionOf(fhir.searchPages('AuditEvent', {}).next());

    expect([error.code, error.details['source']]).toEqual(['BRG_ERR_PROXY_REFUSED', 'HTTP_PROXY']);
    expect(error.message).toContain(
      `FHIR AuditEvent search at ${fixture.server.origin}: the proxy ${proxy.url} (HTTP_PROXY) refused the connection with HTTP 407`,
    );
    expect(error.message).not.toContain(PASSWORD);
    expect(fhir.stats).toEqual({ requests: 1, retries: 0 });
    expect(proxy.refused.slice(refusedBefore)).toEqual([hostPort(fixture.server.baseUrl)]);
    expect(fixture.server.requests).toHaveLength(0);
  });

  it('ends an Entra ID token request at once (CONNECT), not retried', async () => {
    const refusedBefore = proxy.refused.length;
    const source = createPurviewTokenSource({
      ...app,
      credential: { kind: 'secret', secret: app.secret },
      authorityHost: entra.authorityHost,
      caPem: entra.caPem,
      network: viaProxy(`svc:${PASSWORD}`),
      clock: systemClock,
      logger: silentLogger(),
    });
    const error = await rejectionOf(source.getToken());
    expectRefusal(error, `Entra ID token request for app ${app.appId} in tenant ${app.tenantId} at ${entra.authorityHost}`);
    expect(proxy.refused.slice(refusedBefore)).toEqual([hostPort(entra.authorityHost)]);
  });

  it('ends a SMART token request at once, not retried', async () => {
    const refusedBefore = proxy.refused.length;
    const tokenUrl = 'https://127.0.0.1:65000/oauth2/token'; // never reached: the proxy refuses the tunnel first
    const source = await smartSourceThrough(viaProxy(), 'https://127.0.0.1:65000');
    const error = await rejectionOf(source.getToken());
    expectRefusal(error, `SMART token request to ${tokenUrl}`);
    expect(error.message).toContain('wants credentials');
    expect(proxy.refused.slice(refusedBefore)).toEqual(['127.0.0.1:65000']);
  });
});

describe('a proxy answering 502 to CONNECT (it cannot reach or resolve the host)', () => {
  it('is a network failure naming the proxy and its answer, retried, never "the run was cancelled", for a Bulk request and a SMART token request', async () => {
    let connects = 0;
    const failing = createServer((_request, response) => response.end());
    failing.on('connect', (_request, socket: Socket) => {
      connects += 1;
      socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 30\r\n\r\n<html>DNS lookup failed</html>');
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
    const network = resolveNetwork(undefined, { HTTPS_PROXY: proxyUrl });
    try {
      const bulk = new BulkHttp({
        baseUrl: 'https://ehr.example.org/FHIR/R4',
        tokenSource: { getToken: async () => 't', invalidate: () => undefined },
        dispatcher: createDispatcher(network),
        clock: systemClock,
        logger: silentLogger(),
        timeoutMs: 5000,
        retry: { maxAttempts: 3, maxTotalMs: 10_000, baseDelayMs: 1, maxDelayMs: 2 },
        maxJsonBytes: 1e6,
      });
      const kickOff = await rejectionOf(
        bulk.withRetries('FHIR $export kick-off', () =>
          bulk.expect({ method: 'GET', url: 'https://ehr.example.org/FHIR/R4/$export', what: 'kick-off', bearer: true }, [202]),
        ),
      );
      const edge = toBridgeError(kickOff);
      expect(edge.code).not.toBe('BRG_ERR_ABORTED');
      expect(edge.message).toContain(`the proxy ${proxyUrl} (HTTPS_PROXY) answered HTTP 502 to CONNECT`);
      expect(connects).toBe(3);

      connects = 0;
      const smart = await smartSourceThrough(network, 'https://ehr.example.org');
      const token = await rejectionOf(smart.getToken());
      expect(token.code).toBe('BRG_ERR_SMART_TOKEN');
      expect(token.message).toContain(`answered HTTP 502 to CONNECT`);
      expect(connects).toBeGreaterThan(0);
    } finally {
      failing.closeAllConnections();
      await new Promise<void>((resolve) => failing.close(() => resolve()));
    }
  });
});

describe('a proxy that takes CONNECT and never answers', () => {
  it("fails the request at the proxy connect timeout, not at undici's 300 s default (every client and retry waits on it)", async () => {
    const sockets: Socket[] = [];
    const silent = createServer((_request, response) => response.end());
    silent.on('connect', (_request, socket: Socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const dispatcher = createDispatcher(resolveNetwork(undefined, { HTTPS_PROXY: proxyUrl }), { proxyConnectTimeoutMs: 300 });
    try {
      const error = (await fetchVia(dispatcher)('https://ehr.example.org/FHIR/R4/metadata').catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(TypeError);
      expect((error.cause as { code?: string } | undefined)?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
      expect(sockets).toHaveLength(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      await dispatcher.close();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('through the proxy', () => {
  it.each([true, false])('the FHIR size cap holds (Content-Length %s)', async (contentLength) => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 3, patients: 1, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'huge-body', bytes: 4 * 1024 * 1024, contentLength }, match: /\/AuditEvent\?/, times: 5 });
    const forwardedBefore = proxy.forwarded.length;
    const fhir = fixture.client({ maxResponseBytes: 256 * 1024, network: viaProxy('svc:right-pass') });

    const error = await rejectionOf(fhir.searchPages('AuditEvent', { _count: '10' }).next());

    expect(error.code).toBe('BRG_ERR_FHIR_TOO_LARGE');
    expect(error.message).toContain(contentLength ? 'a body of 4 MiB (Content-Length), over the 256 KiB limit' : 'a body larger than the 256 KiB limit');
    expect(fhir.stats).toEqual({ requests: 1, retries: 0 });
    expect(proxy.forwarded.slice(forwardedBefore)).toEqual([hostPort(fixture.server.baseUrl)]);
  });

  it('a page under the cap is read as usual', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 3, patients: 1, practitioners: 1 })));
    const page = (
      await fixture
        .client({ network: viaProxy('svc:right-pass') })
        .searchPages('AuditEvent', {})
        .next()
    ).value as Bundle;
    expect(page.entry).toHaveLength(3);
  });
});

describe('network.caFile', () => {
  /** A Purview token source for the Entra emulator, whose certificate a private CA signed. */
  const tokenOptions = () => ({
    ...app,
    credential: { kind: 'secret' as const, secret: app.secret },
    authorityHost: entra.authorityHost,
    clock: systemClock,
    logger: silentLogger(),
  });

  it('is trusted on top of the system roots by these clients only: Entra ID with a private CA works with it, fails without', async () => {
    const options = tokenOptions();
    const trusted = resolveNetwork({ caFile: 'corporate-ca.pem' }, {}, { readFile: () => entra.caPem });
    expect(entra.verifyAccessToken(await createPurviewTokenSource({ ...options, network: trusted }).getToken())).toMatchObject({ appId: app.appId });

    const untrusted = await rejectionOf(
      createPurviewTokenSource({ ...options, retry: { maxAttempts: 1, maxTotalMs: 1_000, baseDelayMs: 1, maxDelayMs: 1 } }).getToken(),
    );
    expect(untrusted.code).toBe('BRG_ERR_PURVIEW_AUTH');
    // Nothing global: a plain fetch in this process still refuses the private CA.
    await expect(fetch(`${entra.authorityHost}/`)).rejects.toThrow();
  });

  it('keeps what NODE_EXTRA_CA_CERTS trusts (a TLS-inspecting proxy) when a caFile of another CA is added', async () => {
    const options = { ...tokenOptions(), retry: { maxAttempts: 1, maxTotalMs: 1_000, baseDelayMs: 1, maxDelayMs: 1 } };
    const files: Record<string, string> = { 'internal-epic-ca.pem': rootCertificates[0] as string, '/etc/ssl/proxy-ca.pem': entra.caPem };
    const readFile = (path: string): string => files[path] ?? '';
    const both = resolveNetwork({ caFile: 'internal-epic-ca.pem' }, { NODE_EXTRA_CA_CERTS: '/etc/ssl/proxy-ca.pem' }, { readFile });
    expect(entra.verifyAccessToken(await createPurviewTokenSource({ ...options, network: both }).getToken())).toMatchObject({ appId: app.appId });
    // Without it, the caFile's own trust does not reach the proxy's CA.
    const caFileOnly = resolveNetwork({ caFile: 'internal-epic-ca.pem' }, {}, { readFile });
    expect((await rejectionOf(createPurviewTokenSource({ ...options, network: caFileOnly }).getToken())).code).toBe('BRG_ERR_PURVIEW_AUTH');
    // Without a caFile, no trust of our own is built: Node's default store (where Node itself put those CAs, and the
    // system's on a Node that uses it) is left as it is.
    expect(resolveNetwork(undefined, { NODE_EXTRA_CA_CERTS: '/etc/ssl/proxy-ca.pem' }, { readFile }).caPems).toEqual([]);
  });
});
