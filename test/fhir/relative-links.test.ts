/**
 * A relative `next` (or `self`) link is resolved against the URL of the page that carried it (RFC 3986 §5.1.3), as a
 * browser would: `?page=2` from `/api/FHIR/R4/AuditEvent?…` is `/api/FHIR/R4/AuditEvent?page=2`, and from a page the
 * server serves at another path it stays on that path. Resolved against fhir.baseUrl it became
 * `/api/FHIR/R4/?page=2`, which no server serves. The origin check, loop detection and foreign-link refusal still apply
 * to the resolved URL.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createFhirClient } from '../../src/fhir/index.js';
import { silentLogger } from '../../src/log.js';
import { InstantClock } from '../support/manual-clock.js';
import { RevocableTokens } from './support.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** Links (`next`, and optionally `self`) by the request path+query that serves them; unknown paths answer 404. */
type Site = Record<string, { next?: (origin: string) => string; self?: string }>;

async function walk(site: Site): Promise<{ hits: string[]; pages: number; error: unknown }> {
  const hits: string[] = [];
  let origin = '';
  server = createServer((req, res) => {
    const path = req.url ?? '';
    hits.push(path);
    const page = site[path];
    if (page === undefined) {
      res.writeHead(404, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
      return;
    }
    const link = [
      ...(page.self === undefined ? [] : [{ relation: 'self', url: page.self }]),
      ...(page.next === undefined ? [] : [{ relation: 'next', url: page.next(origin) }]),
    ];
    res.writeHead(200, { 'content-type': 'application/fhir+json' });
    res.end(JSON.stringify({ resourceType: 'Bundle', type: 'searchset', link, entry: [{ resource: { resourceType: 'AuditEvent', id: `e${hits.length}` } }] }));
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fhir = createFhirClient({
    baseUrl: `${origin}/api/FHIR/R4`,
    tokenSource: new RevocableTokens(),
    clock: new InstantClock(),
    logger: silentLogger(),
  });
  let pages = 0;
  const error: unknown = await (async () => {
    for await (const _page of fhir.searchPages('AuditEvent', { _count: '1' })) pages++;
  })().catch((e: unknown) => e);
  return { hits, pages, error };
}

const FIRST = '/api/FHIR/R4/AuditEvent?_count=1';

describe('a relative paging link', () => {
  it('a query-only link (`?page=2&_getpages=…`) stays on the path of the page that carried it', async () => {
    const { hits, pages, error } = await walk({
      [FIRST]: { next: () => '?page=2&_getpages=s1' },
      '/api/FHIR/R4/AuditEvent?page=2&_getpages=s1': {},
    });
    expect(error).toBeUndefined();
    expect(hits).toEqual([FIRST, '/api/FHIR/R4/AuditEvent?page=2&_getpages=s1']);
    expect(pages).toBe(2);
  });

  it('links relative to a page served at another path resolve against that page, not against fhir.baseUrl', async () => {
    const { hits, pages, error } = await walk({
      [FIRST]: { next: (origin) => `${origin}/paging/s1?page=2` },
      '/paging/s1?page=2': { next: () => '?page=3' },
      '/paging/s1?page=3': { next: () => 'AuditEvent?page=4' },
      '/paging/AuditEvent?page=4': { next: () => '/R4/AuditEvent?page=5' },
      '/R4/AuditEvent?page=5': {},
    });
    expect(error).toBeUndefined();
    expect(hits).toEqual([FIRST, '/paging/s1?page=2', '/paging/s1?page=3', '/paging/AuditEvent?page=4', '/R4/AuditEvent?page=5']);
    expect(pages).toBe(5);
  });

  it('a resource-relative link (`AuditEvent?…`) from the search itself lands under the base, as before', async () => {
    const { hits, error } = await walk({
      [FIRST]: { next: () => 'AuditEvent?page=2' },
      '/api/FHIR/R4/AuditEvent?page=2': {},
    });
    expect(error).toBeUndefined();
    expect(hits).toEqual([FIRST, '/api/FHIR/R4/AuditEvent?page=2']);
  });

  it("a relative link back to the page's own URL, or to its relative self, is a loop, never requested again", async () => {
    const own = await walk({ [FIRST]: { next: () => '?_count=1' } });
    expect((own.error as BridgeError).code).toBe('BRG_ERR_FHIR_PAGING');
    expect(own.hits).toEqual([FIRST]);
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));

    const self = await walk({
      [FIRST]: { next: (origin) => `${origin}/paging/s1?page=2` },
      '/paging/s1?page=2': { self: '?page=2b', next: () => 's1?page=2b' },
    });
    expect((self.error as BridgeError).code).toBe('BRG_ERR_FHIR_PAGING');
    expect((self.error as BridgeError).message).toContain('the next link points back to the same page at page 2');
    expect(self.hits).toEqual([FIRST, '/paging/s1?page=2']);
  });

  it('a protocol-relative link to another host is still refused as foreign, never requested', async () => {
    const { hits, pages, error } = await walk({ [FIRST]: { next: () => '//ehr.example.invalid/R4/AuditEvent?page=2' } });
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_FOREIGN_LINK');
    expect(hits).toEqual([FIRST]);
    expect(pages).toBe(1);
  });
});
