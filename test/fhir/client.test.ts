import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle, FhirResource } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { abortError, type Clock } from '../../src/clock.js';
import { createFhirClient, type FhirClient, FhirError } from '../../src/fhir/index.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryBackend, type FhirBackend } from '../../src/sandbox/fhir-backend.js';
import { startFhirServer } from '../../src/sandbox/fhir-server.js';
import { rejectionOf } from '../support/error-of.js';
import { InstantClock } from '../support/manual-clock.js';
import { allResources, buildFixtures, type FixtureServer, RevocableTokens, START, startFixtureServer } from './support.js';

const AUDIT_SEARCH = /\/AuditEvent\?/;
const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `ae-${String(from + i).padStart(3, '0')}`);
const idsOf = (bundle: Bundle): string[] => (bundle.entry ?? []).map((entry) => entry.resource?.id ?? '?');

async function walk(client: FhirClient, params: Record<string, string | string[]>, signal?: AbortSignal): Promise<string[][]> {
  const pages: string[][] = [];
  for await (const bundle of client.searchPages('AuditEvent', params, signal)) pages.push(idsOf(bundle));
  return pages;
}

const SORTED_30 = { _sort: 'date', _count: '10' };
const cleanups: Array<() => Promise<void>> = [];
let fixture: FixtureServer;

async function fixtureWith30(overrides: Parameters<typeof startFixtureServer>[1] = {}): Promise<FixtureServer> {
  fixture = await startFixtureServer(allResources(buildFixtures({ events: 30, patients: 5, practitioners: 3 })), overrides);
  cleanups.push(() => fixture.server.close());
  return fixture;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('capability probe', () => {
  it('reports the software and AuditEvent search parameters, probing /metadata once per client', async () => {
    const { client, server } = await fixtureWith30({ software: { name: 'Epic', version: 'May 2026' } });
    const fhir = client();
    await expect(fhir.probe()).resolves.toMatchObject({ software: 'Epic May 2026', auditEventSearch: ['_lastUpdated', 'agent', 'date', 'patient'] });
    await fhir.requireAuditEventSearch('date');
    await fhir.requireAuditEventSearch('_lastUpdated');
    expect(server.requests.filter((r) => r.path.endsWith('/metadata'))).toHaveLength(1);
  });

  it('fails with BRG_ERR_FHIR_CAPABILITY naming the software when /metadata lists no AuditEvent', async () => {
    const { client } = await fixtureWith30({ listAuditEvent: false, software: { name: 'Epic', version: 'May 2026' } });
    const error = await rejectionOf(client().requireAuditEventSearch('date'));
    expect(error.code).toBe('BRG_ERR_FHIR_CAPABILITY');
    expect(error.message).toContain('(Epic May 2026)');
    expect(error.message).toContain('lists no AuditEvent search at all');
    expect(error.details).toMatchObject({ software: 'Epic May 2026', param: 'date' });
  });
});

describe('retries', () => {
  it('waits the Retry-After seconds of a 429, then returns the page', async () => {
    const { client, server, clock } = await fixtureWith30();
    server.faults.add({ action: { kind: 'status', status: 429, retryAfter: '7' }, match: AUDIT_SEARCH });
    const seen: Array<{ resourceType: string; status: number; retries: number }> = [];
    const fhir = client({ onRequest: (info) => seen.push(info) });

    expect(await walk(fhir, SORTED_30)).toEqual([range(0, 10), range(10, 20), range(20, 30)]);
    expect(clock.slept).toEqual([7_000]);
    expect(server.requests.map((r) => r.status)).toEqual([429, 200, 200, 200]);
    expect(fhir.stats).toEqual({ requests: 4, retries: 1 });
    expect(seen).toEqual([
      { resourceType: 'AuditEvent', status: 200, retries: 1 },
      { resourceType: 'AuditEvent', status: 200, retries: 0 },
      { resourceType: 'AuditEvent', status: 200, retries: 0 },
    ]);
  });

  it('honours a Retry-After HTTP-date on a paging request', async () => {
    const { client, server, clock } = await fixtureWith30();
    server.faults.add({ action: { kind: 'status', status: 429, retryAfter: new Date(START + 12_000).toUTCString() }, match: /_offset=20/ });
    expect(await walk(client(), SORTED_30)).toEqual([range(0, 10), range(10, 20), range(20, 30)]);
    expect(clock.slept).toEqual([12_000]);
  });

  it('rides out a 503 burst with jittered backoff, and gives up with BRG_ERR_FHIR_UNAVAILABLE when it does not end', async () => {
    const { client, server, clock } = await fixtureWith30();
    server.faults.add({ action: { kind: 'status', status: 503 }, match: AUDIT_SEARCH, times: 3 });
    expect(await walk(client(), { ...SORTED_30, _count: '30' })).toEqual([range(0, 30)]);
    // random() = 0.5 → half of 500, 1000, 2000 ms (full jitter, DEFAULT_RETRY).
    expect(clock.slept).toEqual([250, 500, 1_000]);

    server.faults.add({ action: { kind: 'status', status: 503 }, match: AUDIT_SEARCH, times: 10 });
    const requestsBefore = server.requests.length;
    const error = await rejectionOf(walk(client(), SORTED_30));
    expect(error.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
    expect(error.details).toMatchObject({ status: 503, resourceType: 'AuditEvent', attempts: 6 });
    expect(server.requests.length - requestsBefore).toBe(6);
  });

  it('retries a response slower than the timeout', async () => {
    const { client, server } = await fixtureWith30();
    server.faults.add({ action: { kind: 'delay', ms: 10_000 }, match: /_offset=10/ });
    const fhir = client({ timeoutMs: 200 });
    expect(await walk(fhir, SORTED_30)).toEqual([range(0, 10), range(10, 20), range(20, 30)]);
    expect(fhir.stats).toEqual({ requests: 4, retries: 1 });
    expect(server.faults.fired.map((f) => f.kind)).toEqual(['delay']);
  });

  it('retries connection failures, then reports BRG_ERR_FHIR_UNAVAILABLE', async () => {
    const { client, server } = await fixtureWith30();
    const fhir = client({ retry: { maxAttempts: 3, maxTotalMs: 60_000, baseDelayMs: 100, maxDelayMs: 1_000 } });
    await server.close();
    const error = await rejectionOf(walk(fhir, SORTED_30));
    expect(error.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
    expect(error.message).toContain('after 3 attempts; the last was a network error');
    expect(fhir.stats).toEqual({ requests: 3, retries: 2 });
  });

  it('retries a page whose connection dropped mid-body, and names the search when it keeps dropping', async () => {
    let answers = 0;
    const half = JSON.stringify({ resourceType: 'Bundle', type: 'searchset', entry: [] }).slice(0, 20);
    const server: Server = createServer((req, res) => {
      answers += 1;
      res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': '400' });
      if (answers === 2) {
        const body = JSON.stringify({ resourceType: 'Bundle', type: 'searchset', entry: [] });
        res.end(body.padEnd(400, ' '));
        return;
      }
      // Half a Bundle, then the connection goes: undici says TypeError('terminated').
      res.write(half, () => req.socket.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/R4`;
    const fhir = createFhirClient({
      baseUrl,
      tokenSource: new RevocableTokens(),
      clock: new InstantClock(START),
      logger: silentLogger(),
      retry: { maxAttempts: 3, maxTotalMs: 60_000, baseDelayMs: 1, maxDelayMs: 1 },
    });
    expect(await walk(fhir, SORTED_30)).toEqual([[]]);
    expect(fhir.stats).toEqual({ requests: 2, retries: 1 });

    answers = 10; // every answer drops from now on
    const error = await rejectionOf(walk(fhir, SORTED_30));
    expect(error.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
    expect(error.message).toMatch(/^FHIR AuditEvent search at http:\/\/127\.0\.0\.1:\d+ kept failing after 3 attempts; the last was a network error/);
  });

  it('a token whose scope lacks the type is refused 403 insufficient_scope, which the client reports, not retries', async () => {
    const backend = await createMemoryBackend();
    const server = await startFhirServer({
      backend,
      verifyAccessToken: () => ({ scope: 'Patient.read Practitioner.read' }),
      tokenUrl: 'http://127.0.0.1:9/token',
    });
    cleanups.push(() => server.close());
    const fhir = createFhirClient({ baseUrl: server.baseUrl, tokenSource: new RevocableTokens(), clock: new InstantClock(START), logger: silentLogger() });
    const error = await rejectionOf(walk(fhir, SORTED_30));
    expect(error.code).toBe('BRG_ERR_FHIR_HTTP');
    expect((error as FhirError).status).toBe(403);
    expect(fhir.stats.requests).toBe(1);
    expect(server.requests.at(-1)?.status).toBe(403);
    // v1 wildcards and v2 letters grant it.
    for (const scope of ['system/*.read', 'system/AuditEvent.rs', 'AuditEvent.read']) {
      const granted = await startFhirServer({ backend, verifyAccessToken: () => ({ scope }), tokenUrl: 'http://127.0.0.1:9/token' });
      cleanups.push(() => granted.close());
      const client = createFhirClient({ baseUrl: granted.baseUrl, tokenSource: new RevocableTokens(), clock: new InstantClock(START), logger: silentLogger() });
      expect(await walk(client, SORTED_30)).toEqual([[]]);
    }
  });

  it('never retries after the caller aborts', async () => {
    const { server, tokens } = await fixtureWith30();
    server.faults.add({ action: { kind: 'status', status: 429, retryAfter: '30' }, match: AUDIT_SEARCH });
    const controller = new AbortController();
    // The caller gives up while the client waits out Retry-After.
    const clock: Clock = {
      now: () => START,
      sleep: (_ms, signal) =>
        new Promise((_resolve, reject) => {
          signal?.addEventListener('abort', () => reject(abortError(signal)), { once: true });
          controller.abort();
        }),
    };
    const fhir = createFhirClient({ baseUrl: server.baseUrl, tokenSource: tokens, clock, logger: silentLogger() });
    const error = await walk(fhir, SORTED_30, controller.signal).catch((e: unknown) => e);
    expect((error as Error).name).toBe('AbortError');
    expect(server.requests.map((r) => r.status)).toEqual([429]);
  });
});

describe('tokens and links', () => {
  it('replaces a token that expires mid-paging (401 → invalidate → one replay) and continues', async () => {
    const { client, server, tokens } = await fixtureWith30();
    const pages: string[][] = [];
    for await (const bundle of client().searchPages('AuditEvent', SORTED_30)) {
      pages.push(idsOf(bundle));
      if (pages.length === 1) tokens.revokeAll();
    }
    expect(pages).toEqual([range(0, 10), range(10, 20), range(20, 30)]);
    expect(tokens.invalidated).toEqual(['tok-1']);
    expect(server.requests.map((r) => r.status)).toEqual([200, 401, 200, 200]);
  });

  it('reports BRG_ERR_FHIR_HTTP 401 when a fresh token is rejected too, without leaking it', async () => {
    const { client, server, tokens } = await fixtureWith30();
    const stubborn = { getToken: async () => 'tok-never-valid', invalidate: (stale?: string) => tokens.invalidate(stale) };
    const error = await rejectionOf(walk(client({ tokenSource: stubborn }), SORTED_30));
    expect(error.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error.details).toMatchObject({ status: 401, resourceType: 'AuditEvent' });
    expect(server.requests.map((r) => r.status)).toEqual([401, 401]);
    expect(`${error.message} ${JSON.stringify(error.details)}`).not.toContain('tok-');
  });

  it('refuses a next link to another origin and never sends it a request or the token', async () => {
    const { client, server } = await fixtureWith30();
    const foreign = await startRecordingServer();
    server.faults.add({ action: { kind: 'foreign-next', origin: foreign.origin }, match: AUDIT_SEARCH });
    const pages = client().searchPages('AuditEvent', SORTED_30);
    const first = await pages.next();
    expect(idsOf(first.value as Bundle)).toEqual(range(0, 10));
    const error = await rejectionOf(pages.next());
    expect(error.code).toBe('BRG_ERR_FHIR_FOREIGN_LINK');
    expect(error.message).toContain(foreign.origin);
    expect(error.message).not.toContain('tok-');
    expect(foreign.hits).toEqual([]);
  });

  it('ends the walk at a bundle with no link at all', async () => {
    const bare = await startRecordingServer({ resourceType: 'Bundle', type: 'searchset', entry: [{ resource: { resourceType: 'AuditEvent', id: 'only' } }] });
    const fhir = createFhirClient({ baseUrl: `${bare.origin}/R4`, tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() });
    expect(await walk(fhir, {})).toEqual([['only']]);
    expect(bare.hits).toEqual([{ path: '/R4/AuditEvent', authorization: 'Bearer tok-1' }]);
  });
});

describe('errors and limits', () => {
  it("turns other 4xx into BRG_ERR_FHIR_HTTP with the OperationOutcome's codes, never its text or the query values", async () => {
    const { client } = await fixtureWith30();
    const error = await rejectionOf(collectPages(client().searchPages('Patient', { identifier: 'urn:example:mrn|MRN4', bogus: 'x' })));
    expect(error.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error.details).toMatchObject({ status: 400, resourceType: 'Patient', outcome: 'an OperationOutcome (error not-supported)' });
    // One typed upstream error: the status and the OperationOutcome's codes travel with it.
    expect(error).toBeInstanceOf(FhirError);
    expect((error as FhirError).status).toBe(400);
    expect((error as FhirError).outcome?.summary).toBe('an OperationOutcome (error not-supported)');
    // The server's text ('search parameter "bogus" is not supported') is not quoted: such text may name a patient.
    expect(error.message).toMatch(
      /^FHIR Patient search at http:\/\/127\.0\.0\.1:\d+ answered HTTP 400 with an OperationOutcome \(error not-supported\)\. Its text is not quoted, as it may name a patient; the FHIR server's log has it\.$/,
    );
    expect(`${error.message} ${JSON.stringify(error.details)}`).not.toContain('bogus');
    expect(`${error.message} ${JSON.stringify(error.details)}`).not.toContain('MRN4');
    expect(error.cause).toBeUndefined();
  });

  it("never quotes a read's error answer, which echoes its id", async () => {
    const { origin } = await startRecordingServer(
      { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: 'Invalid FHIR ID: eABC123' }] },
      400,
    );
    const fhir = createFhirClient({ baseUrl: `${origin}/R4`, tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() });
    const error = await rejectionOf(fhir.read('Patient', 'eABC123'));
    expect(error.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error.message).toContain('answered HTTP 400 with an OperationOutcome (error invalid).');
    expect(`${error.message} ${JSON.stringify(error.details)}`).not.toMatch(/eABC123|Invalid FHIR ID/);
  });

  it('never has more than `concurrency` requests in flight at the server', async () => {
    const backend = await createMemoryBackend();
    await backend.load(allResources(buildFixtures({ events: 30, patients: 5, practitioners: 3 })));
    const gauge = { now: 0, max: 0 };
    const slow: FhirBackend = {
      read: (type, id) => backend.read(type, id),
      async search(type, query) {
        gauge.now += 1;
        gauge.max = Math.max(gauge.max, gauge.now);
        await new Promise((resolve) => setTimeout(resolve, 30));
        gauge.now -= 1;
        return backend.search(type, query);
      },
    };
    const tokens = new RevocableTokens();
    const server = await startFhirServer({ backend: slow, verifyAccessToken: tokens.verify, tokenUrl: 'http://127.0.0.1:9/token' });
    cleanups.push(() => server.close());
    const fhir = createFhirClient({
      baseUrl: server.baseUrl,
      tokenSource: tokens,
      clock: new InstantClock(),
      logger: silentLogger(),
      concurrency: 3,
      requestsPerSecond: 1_000,
    });

    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => collectPages(fhir.searchPages('Patient', { _id: `pt-${i % 5}` }))));
    expect(ids.map((pages) => pages.flatMap((page) => idsOf(page)))).toEqual(Array.from({ length: 10 }, (_, i) => [`pt-${i % 5}`]));
    expect(gauge.max).toBe(3);
  });

  it('rejects nonsense options at construction', () => {
    const base = { baseUrl: 'http://127.0.0.1:9/R4', tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() };
    expect(() => createFhirClient({ ...base, concurrency: 0 })).toThrow('Expected `concurrency` to be a whole number >= 1, got `0`');
    expect(() => createFhirClient({ ...base, requestsPerSecond: Number.NaN })).toThrow('`requestsPerSecond`');
    expect(() => createFhirClient({ ...base, baseUrl: 'ehr.example.org/R4' })).toThrow('`baseUrl`');
  });
});

async function collectPages(pages: AsyncGenerator<Bundle>): Promise<Bundle[]> {
  const out: Bundle[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

/** A plain loopback server that records what reaches it and answers `body` (or 404). */
/** Answers every request with `body` (200) or an empty OperationOutcome (404); `status` overrides either. */
async function startRecordingServer(
  body?: FhirResource,
  status = body ? 200 : 404,
): Promise<{ origin: string; hits: Array<{ path: string; authorization: string | undefined }> }> {
  const hits: Array<{ path: string; authorization: string | undefined }> = [];
  const server: Server = createServer((req, res) => {
    hits.push({ path: req.url ?? '', authorization: req.headers.authorization });
    res.writeHead(status, { 'content-type': 'application/fhir+json' });
    res.end(JSON.stringify(body ?? { resourceType: 'OperationOutcome', issue: [] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}
