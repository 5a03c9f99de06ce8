/**
 * Status and manifest answers that are not the FHIR server's own, from a hand-written server: a body that never ends
 * (a byte now and then, each within undici's gap timeout), one that stalls, and a 200 with no JSON at all (a captive
 * portal's HTML page, an empty body). None may hold the run for good, end it with an untyped error, or throw away
 * (and DELETE) an export the server may have spent hours on.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { BridgeError } from '../../../src/errors.js';
import { BulkHttp } from '../../../src/fhir/bulk/http.js';
import { createBulkExportSource } from '../../../src/fhir/bulk-source.js';
import { createFhirClient, createReferenceResolver } from '../../../src/fhir/index.js';
import { silentLogger } from '../../../src/log.js';
import { createDispatcher, DIRECT_NETWORK } from '../../../src/net/index.js';
import { InstantClock } from '../../support/manual-clock.js';
import { FIRST_RUN, MemoryCheckpoints } from './support.js';

/** fhir.timeoutMs of these tests: each answer that never ends costs this much real time. */
const TIMEOUT_MS = 400;
/** How long a test waits before it calls the run stuck (the old code read a trickling answer for ever). */
const STUCK_MS = 5_000;

/** Answers one status or manifest-page request (the kick-off and DELETE are answered by the server itself). */
type Answer = (res: ServerResponse, n: number, path: string) => void;
let answer: Answer = (res) => res.end();
let server: Server;
let base = '';
const requests: string[] = [];
/** Status and manifest-page requests of the current test. */
let n = 0;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${(req.url ?? '/').replace(/\?.*/, '')}`);
    if ((req.url ?? '').includes('$export')) {
      res.writeHead(202, { 'content-location': `${base}/status/1` });
      res.end();
    } else if (req.method === 'DELETE') {
      res.writeHead(202);
      res.end();
    } else answer(res, ++n, (req.url ?? '/').replace(/\?.*/, ''));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
});
afterEach(() => {
  server.closeAllConnections();
  requests.length = 0;
  n = 0;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const manifest = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ transactionTime: '2026-11-02T00:00:00Z', requiresAccessToken: true, output: [], error: [], ...extra });

function json(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
}

/** Headers and the first bytes of `body`, then a space every 50 ms for as long as the client reads. */
function trickle(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write(body.slice(0, 10));
  const timer = setInterval(() => res.write(' '), 50);
  res.on('close', () => clearInterval(timer));
}

/** Runs one export to its end; undefined pages when the run is still reading after STUCK_MS. */
async function run(store = new MemoryCheckpoints(), maxJsonBytes = 1 << 20): Promise<{ pages?: unknown[]; error?: BridgeError; stuck?: boolean }> {
  const clock = new InstantClock();
  const tokens = { getToken: async () => 'tok', invalidate: () => undefined };
  const http = new BulkHttp({
    baseUrl: base,
    tokenSource: tokens,
    dispatcher: createDispatcher(DIRECT_NETWORK),
    clock,
    logger: silentLogger(),
    timeoutMs: TIMEOUT_MS,
    retry: { maxAttempts: 3, maxTotalMs: 10_000, baseDelayMs: 1, maxDelayMs: 10 },
    maxJsonBytes,
  });
  const fallback = createReferenceResolver(createFhirClient({ baseUrl: base, tokenSource: tokens, clock, logger: silentLogger() }), { clock });
  const bulk = createBulkExportSource({
    http,
    fallback,
    store,
    dir: mkdtempSync(join(tmpdir(), 'bridge-bulk-gateway-')),
    newId: () => 'gateway',
    overlapMs: 0,
    cacheSize: 10,
    settings: { level: 'system', types: ['AuditEvent'], pollMinSeconds: 1, pollMaxMinutes: 5 },
  });
  const read = (async () => {
    const pages: unknown[] = [];
    for await (const page of bulk.pages(FIRST_RUN)) pages.push(...page);
    return { pages };
  })().catch((error: unknown) => ({ error: error as BridgeError }));
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<{ stuck: true }>((resolve) => {
    timer = setTimeout(() => resolve({ stuck: true }), STUCK_MS);
  });
  try {
    return await Promise.race([read, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

it('a status answer that never ends is cut at fhir.timeoutMs and polled again: the export completes', async () => {
  answer = (res, n) => (n === 1 ? trickle(res, manifest()) : json(res, manifest()));
  const started = Date.now();
  const result = await run();
  expect(result).toEqual({ pages: [] });
  expect(Date.now() - started).toBeLessThan(STUCK_MS);
  expect(requests.filter((request) => request === 'GET /fhir/status/1')).toHaveLength(2);
});

it('a gzip status answer whose wire bytes trickle is cut, though each few bytes inflate to kilobytes of spaces', async () => {
  answer = (res, n) => {
    if (n > 1) return json(res, manifest());
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    const gzip = createGzip();
    gzip.pipe(res);
    gzip.write(manifest().slice(0, 10));
    const timer = setInterval(() => {
      gzip.write(' '.repeat(2048));
      gzip.flush();
    }, 100);
    res.on('close', () => clearInterval(timer));
  };
  const result = await run();
  expect(result).toEqual({ pages: [] });
  expect(requests.filter((request) => request === 'GET /fhir/status/1')).toHaveLength(2);
});

it('an answer that brings just enough each fhir.timeoutMs is cut once it has taken longer than its size cap allows', async () => {
  answer = (res, n) => {
    if (n > 1) return json(res, manifest());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(manifest().slice(0, 10));
    const timer = setInterval(() => res.write(' '.repeat(1100)), 300);
    res.on('close', () => clearInterval(timer));
  };
  // A 64 KiB cap at 64 KiB/s: the whole answer is due within the timeout plus 1 s.
  const result = await run(new MemoryCheckpoints(), 64 * 1024);
  expect(result).toEqual({ pages: [] });
  expect(requests.filter((request) => request === 'GET /fhir/status/1')).toHaveLength(2);
});

it('a manifest page that never ends is read again', async () => {
  answer = (res, n) =>
    n === 1 ? json(res, manifest({ link: [{ relation: 'next', url: `${base}/page/2` }] })) : n === 2 ? trickle(res, manifest()) : json(res, manifest());
  expect(await run()).toEqual({ pages: [] });
  expect(requests.filter((request) => request === 'GET /fhir/page/2')).toHaveLength(2);
});

it('a status answer that stalls every time stops the run with BRG_ERR_FHIR_UNAVAILABLE, and the export is kept for the next run', async () => {
  answer = (res) => {
    res.writeHead(202, { 'content-type': 'application/json' });
    res.write('{"resourceType":');
  };
  const store = new MemoryCheckpoints();
  const { error } = await run(store);
  expect(error?.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
  expect(error?.message).toMatch(
    /^FHIR \$export status at http:\/\/127\.0\.0\.1:\d+ kept failing after 3 attempts; the last was a network error \(UND_ERR_BODY_TIMEOUT\)\.$/,
  );
  expect(store.parsed()?.statusUrl).toBe(`${base}/status/1`);
  expect(requests).not.toContain('DELETE /fhir/status/1');
});

it.each([
  ['an HTML page', '<html><body>Sign in to the guest network</body></html>'],
  ['an empty body', ''],
])('a 200 with %s on the status URL (a captive portal, a gateway) is polled again, not taken for a broken manifest', async (_what, page) => {
  answer = (res, n) => {
    if (n > 1) return json(res, manifest());
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page);
  };
  expect(await run()).toEqual({ pages: [] });
  // The DELETE comes once the export is read, never before the second poll.
  expect(requests.slice(1)).toEqual(['GET /fhir/status/1', 'GET /fhir/status/1', 'DELETE /fhir/status/1']);
});

it('a status URL that keeps answering an HTML 200 stops the run naming it, the export kept (not deleted) for the next run', async () => {
  answer = (res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html>Maintenance</html>');
  };
  const store = new MemoryCheckpoints();
  const { error } = await run(store);
  expect(error?.code).toBe('BRG_ERR_FHIR_HTTP');
  expect(error?.message).toBe(
    `FHIR $export status at ${new URL(base).origin} answered HTTP 200 with a body that is not FHIR JSON: "Maintenance", not the export's manifest: the page of something in front of the FHIR server (a captive portal, a proxy, a gateway). If this repeats, check the network path from this host to the FHIR server.`,
  );
  expect(store.parsed()?.statusUrl).toBe(`${base}/status/1`);
  expect(requests).not.toContain('DELETE /fhir/status/1');
});

it('a large manifest still arriving (more than 1 KiB in every fhir.timeoutMs) is read whole, however long it takes', async () => {
  const files = Array.from({ length: 200 }, (_, i) => ({ type: 'AuditEvent', url: `${base}/file/${i}.ndjson`, count: 0 }));
  const body = manifest({ output: files });
  answer = (res) => {
    // About 2.4 s in all, six times the timeout: 16 pieces of some 900 bytes, one every 150 ms.
    res.writeHead(200, { 'content-type': 'application/json' });
    const size = Math.ceil(body.length / 16);
    let at = 0;
    const timer = setInterval(() => {
      res.write(body.slice(at, at + size));
      at += size;
      if (at >= body.length) {
        clearInterval(timer);
        res.end();
      }
    }, 150);
    res.on('close', () => clearInterval(timer));
  };
  expect(body.length / 16).toBeGreaterThan(1024 / 2);
  await run();
  // Read whole at the first poll: its files were asked for next (here they do not exist), not the status URL again.
  const firstFile = requests.findIndex((request) => request.startsWith('GET /fhir/file/'));
  expect(firstFile).toBeGreaterThan(0);
  expect(requests.slice(0, firstFile).filter((request) => request === 'GET /fhir/status/1')).toHaveLength(1);
});

it("a status URL's manifest that says it is JSON but is broken is the server's broken manifest: given up as before", async () => {
  answer = (res) => json(res, manifest().slice(0, 40));
  const { error } = await run();
  expect(error?.code).toBe('BRG_ERR_FHIR_EXPORT');
  expect(error?.message).not.toContain('captive portal');
});

it('a manifest page answering an HTML 200 stops the run (BRG_ERR_FHIR_HTTP); the export is kept and its manifest read again next run', async () => {
  let portal = true;
  answer = (res, _n, path) => {
    if (path.endsWith('/status/1')) return json(res, manifest({ link: [{ relation: 'next', url: `${base}/page/2` }] }));
    if (!portal) return json(res, manifest());
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html>Sign in</html>');
  };
  const store = new MemoryCheckpoints();
  const first = await run(store);
  expect(first.error?.code).toBe('BRG_ERR_FHIR_HTTP');
  expect(first.error?.message).toMatch(
    /^FHIR \$export manifest page at http:\/\/127\.0\.0\.1:\d+ answered HTTP 200 with a body that is not FHIR JSON: "Sign in", not the export's manifest/,
  );
  expect(store.parsed()?.statusUrl).toBe(`${base}/status/1`);
  expect(requests).not.toContain('DELETE /fhir/status/1');
  portal = false;
  expect(await run(store)).toEqual({ pages: [] });
});
