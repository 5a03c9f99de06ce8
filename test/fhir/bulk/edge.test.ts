/**
 * Answers the sandbox never gives, from a hand-written server: a 202 without Content-Location, a manifest whose next
 * links loop, one listing deleted resources and a type nobody asked for, and a manifest without transactionTime.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BridgeError } from '../../../src/errors.js';
import type { BulkExportEvent } from '../../../src/fhir/bulk/export.js';
import { BulkHttp } from '../../../src/fhir/bulk/http.js';
import { createBulkExportSource } from '../../../src/fhir/bulk-source.js';
import { createFhirClient, createReferenceResolver } from '../../../src/fhir/index.js';
import { silentLogger } from '../../../src/log.js';
import { createDispatcher, DIRECT_NETWORK } from '../../../src/net/index.js';
import { InstantClock } from '../../support/manual-clock.js';
import { FIRST_RUN, MemoryCheckpoints } from './support.js';

type Answer = { status: number; headers?: Record<string, string>; body?: unknown };
let route: (path: string) => Answer = () => ({ status: 404 });
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const answer = route(req.url ?? '/');
    const body = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function source(events: BulkExportEvent[] = []) {
  const clock = new InstantClock();
  const tokens = { getToken: async () => 'tok', invalidate: () => undefined };
  const http = new BulkHttp({
    baseUrl: base,
    tokenSource: tokens,
    dispatcher: createDispatcher(DIRECT_NETWORK),
    clock,
    logger: silentLogger(),
    timeoutMs: 5000,
    retry: { maxAttempts: 2, maxTotalMs: 10_000, baseDelayMs: 1, maxDelayMs: 10 },
    maxJsonBytes: 1 << 20,
  });
  const fallback = createReferenceResolver(createFhirClient({ baseUrl: base, tokenSource: tokens, clock, logger: silentLogger() }), { clock });
  const store = new MemoryCheckpoints();
  const bulk = createBulkExportSource({
    http,
    fallback,
    store,
    dir: mkdtempSync(join(tmpdir(), 'bridge-bulk-edge-')),
    newId: () => 'edge',
    overlapMs: 0,
    cacheSize: 10,
    settings: { level: 'system', types: ['AuditEvent'], pollMinSeconds: 1, pollMaxMinutes: 5 },
    onEvent: (e) => events.push(e),
  });
  return {
    store,
    async read() {
      const out: unknown[] = [];
      for await (const page of bulk.pages(FIRST_RUN)) out.push(...page);
      return out;
    },
  };
}

const manifest = (extra: Record<string, unknown>) => ({ transactionTime: '2026-11-02T00:00:00Z', requiresAccessToken: true, output: [], error: [], ...extra });

it('stops when a kick-off answers 202 without a Content-Location', async () => {
  route = () => ({ status: 202 });
  const error = (await source()
    .read()
    .catch((e: unknown) => e)) as BridgeError;
  expect(error.code).toBe('BRG_ERR_FHIR_EXPORT');
  expect(error.message).toContain('answered 202 without a Content-Location (the status URL)');
});

it('refuses a manifest whose next links loop, and one without transactionTime; abandons that export', async () => {
  route = (path) =>
    path.includes('$export')
      ? { status: 202, headers: { 'content-location': `${base}/status/1` } }
      : path.endsWith('/status/1')
        ? { status: 200, body: manifest({ link: [{ relation: 'next', url: `${base}/page/2` }] }) }
        : path.endsWith('/page/2')
          ? { status: 200, body: manifest({ link: [{ relation: 'next', url: `${base}/page/2` }] }) }
          : { status: 202 };
  const first = source();
  const loop = (await first.read().catch((e: unknown) => e)) as BridgeError;
  expect(loop.message).toMatch(/manifest pages loop/);
  expect(first.store.value).toBeUndefined();
  route = (path) =>
    path.includes('$export')
      ? { status: 202, headers: { 'content-location': `${base}/status/2` } }
      : { status: 200, body: { requiresAccessToken: true, output: [] } };
  expect(
    (
      (await source()
        .read()
        .catch((e: unknown) => e)) as BridgeError
    ).message,
  ).toMatch(/manifest has no transactionTime instant/);
});

it('reads no file of a type it did not ask for, counts deleted entries, and covers an empty export up to its transactionTime', async () => {
  route = (path) =>
    path.includes('$export')
      ? { status: 202, headers: { 'content-location': `${base}/status/3` } }
      : path.endsWith('/status/3')
        ? {
            status: 200,
            body: manifest({
              output: [{ type: 'Observation', url: `${base}/files/obs.ndjson` }],
              deleted: [{ type: 'Bundle', url: `${base}/files/del.ndjson` }],
            }),
          }
        : { status: 202 };
  const events: BulkExportEvent[] = [];
  expect(await source(events).read()).toEqual([]);
  expect(events).toContainEqual({ type: 'manifest', files: 0, transactionTime: '2026-11-02T00:00:00Z', deleted: 1 });
});

it('reads a file listed again on a later manifest page once: the first listing is kept, its events and outcomes counted once', async () => {
  const hits: string[] = [];
  const event = (id: string) => JSON.stringify({ resourceType: 'AuditEvent', id, recorded: '2026-11-01T10:00:00Z' });
  const outcome = JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing' }] });
  const page = (n: number) => ({
    output: [
      { type: 'AuditEvent', url: `${base}/files/a.ndjson`, count: 2 },
      { type: 'AuditEvent', url: `${base}/files/${n === 1 ? 'b' : 'c'}.ndjson` },
    ],
    error: [{ type: 'OperationOutcome', url: `${base}/files/err.ndjson` }],
  });
  route = (path) => {
    hits.push(path);
    if (path.includes('$export')) return { status: 202, headers: { 'content-location': `${base}/status/4` } };
    // The server serves its first page again under a new URL, then a page with one file more (relative, as some send it).
    if (path.endsWith('/status/4')) return { status: 200, body: manifest({ ...page(1), link: [{ relation: 'next', url: `${base}/page/4b` }] }) };
    if (path.endsWith('/page/4b')) return { status: 200, body: manifest({ ...page(1), link: [{ relation: 'next', url: '4c' }] }) };
    if (path.endsWith('/page/4c')) return { status: 200, body: manifest(page(2)) };
    const file = {
      '/fhir/files/a.ndjson': `${event('a1')}\n${event('a2')}\n`,
      '/fhir/files/b.ndjson': `${event('b1')}\n`,
      '/fhir/files/c.ndjson': `${event('c1')}\n`,
    }[path];
    if (file !== undefined) return { status: 200, body: file };
    if (path === '/fhir/files/err.ndjson') return { status: 200, body: `${outcome}\n` };
    return { status: 202 };
  };
  const events: BulkExportEvent[] = [];
  const read = (await source(events).read()) as Array<{ id: string }>;

  expect(read.map((e) => e.id).sort()).toEqual(['a1', 'a2', 'b1', 'c1']);
  expect(events).toContainEqual({ type: 'manifest', files: 3, transactionTime: '2026-11-02T00:00:00Z', deleted: 0 });
  expect(events).toContainEqual({ type: 'export-errors', outcomes: 1, codes: { processing: 1 } });
  for (const file of ['a', 'b', 'c', 'err'])
    expect(
      hits.filter((path) => path === `/fhir/files/${file}.ndjson`),
      file,
    ).toHaveLength(1);
});
