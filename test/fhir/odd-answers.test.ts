/**
 * A 200 that is no Bundle: an OperationOutcome (Epic may answer an expired search session, 4113, so), or JSON that is
 * no object at all. The first is told apart by its codes, so an expired session is searched again as a 4xx one is; the
 * second is named as what it is, not as a bare TypeError from the client library.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditEvent } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createFhirClient, pullAuditEvents } from '../../src/fhir/index.js';
import { silentLogger } from '../../src/log.js';
import { InstantClock } from '../support/manual-clock.js';
import { RevocableTokens, START } from './support.js';

let server: Server | undefined;
afterEach(async () => {
  const open = server;
  server = undefined;
  if (!open) return;
  open.closeAllConnections();
  await new Promise((resolve) => open.close(resolve));
});

const WINDOW = { since: '2026-11-01T00:00:00.000Z', until: '2026-11-02T00:00:00.000Z' };

function event(i: number): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: `ae-${i}`,
    meta: { versionId: '1' },
    type: { code: '110110' },
    recorded: new Date(START + i * 60_000).toISOString(),
    agent: [{ who: { reference: 'Practitioner/p1' }, requestor: true }],
    source: { observer: { display: 'Epic' } },
  };
}

const bundle = (events: AuditEvent[], next?: string) => ({
  resourceType: 'Bundle',
  type: 'searchset',
  link: next ? [{ relation: 'next', url: next }] : [],
  entry: events.map((resource) => ({ resource, search: { mode: 'match' } })),
});

/** `answer(path and query, request number)` gives the JSON text of each 200. */
async function serve(answer: (url: string, n: number) => string): Promise<{ baseUrl: string; requests: string[] }> {
  const requests: string[] = [];
  server = createServer((request, response) => {
    const url = request.url ?? '/';
    requests.push(url);
    response.writeHead(200, { 'content-type': 'application/fhir+json' });
    response.end(answer(url, requests.length));
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/R4`, requests };
}

async function pull(baseUrl: string): Promise<{ ids: string[]; error?: BridgeError }> {
  const client = createFhirClient({ baseUrl, tokenSource: new RevocableTokens(), clock: new InstantClock(START), logger: silentLogger() });
  const ids: string[] = [];
  try {
    for await (const page of pullAuditEvents(client, WINDOW, { pageSize: 2 })) ids.push(...page.map((e) => e.id ?? ''));
    return { ids };
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    return { ids, error: error as BridgeError };
  }
}

const expired = JSON.stringify({
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code: 'processing', details: { coding: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.657369', code: '4113' }] } }],
});

describe('a 200 that is no Bundle', () => {
  it('an OperationOutcome 4113 (search session expired) on a next page: the search is issued again, no event lost or doubled', async () => {
    let expiredOnce = false;
    const { baseUrl, requests } = await serve((url) => {
      if (url.includes('page=2') && !expiredOnce) {
        expiredOnce = true;
        return expired;
      }
      if (url.includes('page=2')) return JSON.stringify(bundle([event(3), event(4)]));
      return JSON.stringify(bundle([event(1), event(2)], `${baseUrl}/AuditEvent?page=2`));
    });
    const { ids, error } = await pull(baseUrl);
    expect(error).toBeUndefined();
    expect(ids).toEqual(['ae-1', 'ae-2', 'ae-3', 'ae-4']);
    expect(requests.filter((url) => url.includes('page=2'))).toHaveLength(2);
  });

  it('an OperationOutcome of another code stops the run naming the page and its codes, never its text', async () => {
    const refusal = JSON.stringify({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'forbidden', diagnostics: 'MRN 123456 not allowed', details: { coding: [{ code: '59100' }] } }],
    });
    const { baseUrl } = await serve((url) => (url.includes('page=2') ? refusal : JSON.stringify(bundle([event(1)], `${baseUrl}/AuditEvent?page=2`))));
    const { ids, error } = await pull(baseUrl);
    expect(ids).toEqual(['ae-1']);
    expect(error?.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error?.message).toBe(
      'FHIR AuditEvent search (page 2) answered an OperationOutcome instead of a Bundle, with HTTP 200 (issue codes forbidden, 59100).',
    );
    expect(error?.details).toMatchObject({ page: 2, outcomeCode: '59100' });
  });

  it.each(['null', '42', '"text"'])('JSON that is no object (%s) is named as such, not a bare TypeError', async (json) => {
    const { baseUrl } = await serve(() => json);
    const { error } = await pull(baseUrl);
    expect(error?.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error?.message).toMatch(/answered JSON that is no FHIR resource \(not an object\)\. Check fhir\.baseUrl/);
  });

  const outcomeWithIssue = (issue: unknown) => ({ resource: { resourceType: 'OperationOutcome', issue }, search: { mode: 'outcome' } });
  it.each([
    ['entry', 'an entry that is null', { entry: [{ resource: event(1) }, null] }],
    ['entry', 'entry that is one object', { entry: { resource: event(1) } }],
    ['link', 'link that is one object', { link: { relation: 'next', url: 'AuditEvent?page=2' }, entry: [{ resource: event(1) }] }],
    ['an entry’s OperationOutcome.issue', 'an outcome whose issue is one object', { entry: [{ resource: event(1) }, outcomeWithIssue({ severity: 'error' })] }],
  ])('a Bundle with %s not a list of objects (%s) is the server’s broken answer (BRG_ERR_FHIR_HTTP), not a bare TypeError', async (field, _case, body) => {
    const { baseUrl } = await serve(() => JSON.stringify({ resourceType: 'Bundle', type: 'searchset', ...body }));
    const { ids, error } = await pull(baseUrl);
    expect(ids).toEqual([]);
    expect(error?.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error?.message).toBe(
      `FHIR AuditEvent search (page 1) answered a broken Bundle (${field} not a list of objects), so nothing of it was used. Run again; if it repeats, report the broken answer to the EHR team (or any gateway in front of the server).`,
    );
    expect(error?.details).toEqual({ resourceType: 'AuditEvent', status: 200, page: 1 });
  });

  it('entries without a resource, outcome warnings and included resources pass: only the AuditEvents are read', async () => {
    const { baseUrl } = await serve(() =>
      JSON.stringify({
        ...bundle([event(1), event(2)]),
        total: 2,
        entry: [
          { resource: event(1), search: { mode: 'match' } },
          { search: { mode: 'match' } },
          outcomeWithIssue([{ severity: 'warning', code: 'informational' }]),
          { resource: { resourceType: 'Practitioner', id: 'p1' }, search: { mode: 'include' } },
          { resource: event(2), search: { mode: 'match' } },
        ],
      }),
    );
    const { ids, error } = await pull(baseUrl);
    expect(error).toBeUndefined();
    expect(ids).toEqual(['ae-1', 'ae-2']);
  });
});

describe('a throttle longer than the retry time left', () => {
  it('stops at once (no early retry into the throttle), and says how long the server asked to wait', async () => {
    const requests: string[] = [];
    server = createServer((request, response) => {
      requests.push(request.url ?? '');
      response.writeHead(429, { 'content-type': 'application/fhir+json', 'retry-after': '3600' });
      response.end('{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled"}]}');
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/R4`;
    const { error } = await pull(baseUrl);
    expect(error?.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
    expect(error?.message).toMatch(
      /kept failing after 1 attempts; the last was HTTP 429 .*; its answer asked to wait \(Retry-After: 3600\), so run again after that\.$/,
    );
    expect(requests).toHaveLength(1);
  });
});

describe('a redirect', () => {
  it('is not followed: the query (identifiers) never reaches the other host, and the request fails naming where it pointed', async () => {
    const hits: string[] = [];
    const foreign = createServer((request, response) => {
      hits.push(request.url ?? '');
      response.setHeader('content-type', 'application/fhir+json');
      response.end(JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: 1, entry: [{ resource: { resourceType: 'Patient', id: 'impostor' } }] }));
    });
    const own = createServer((request, response) => {
      response.statusCode = 302;
      response.setHeader('location', `http://127.0.0.1:${(foreign.address() as AddressInfo).port}${request.url ?? '/'}`);
      response.end();
    });
    for (const server of [foreign, own]) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = createFhirClient({
        baseUrl: `http://127.0.0.1:${(own.address() as AddressInfo).port}/R4`,
        tokenSource: { getToken: async () => 'token', invalidate: () => undefined },
        clock: new InstantClock(START),
        logger: silentLogger(),
      });
      const error = await (async () => {
        for await (const page of client.searchPages('Patient', { identifier: 'urn:mrn|MRN0042' })) void page;
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_HTTP');
      expect((error as BridgeError).message).toContain(`was redirected (HTTP 302) to http://127.0.0.1:${(foreign.address() as AddressInfo).port}`);
      expect((error as BridgeError).message).not.toContain('MRN0042');
      expect(hits).toEqual([]);
    } finally {
      for (const server of [foreign, own]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
  });
});
