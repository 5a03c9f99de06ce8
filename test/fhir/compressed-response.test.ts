/**
 * A compressed FHIR answer is held to fhir.maxResponseBytes by its decoded size: the bytes on the wire of a gzip page
 * can be a thousandth of what `response.text()` would hold (a 300 KB page of 300 MB ran the 256 MB heap out). A page
 * within the limit is decoded once and read as usual. The client asks for gzip and br only (the decoder reads no raw
 * deflate), and an error answer with an empty compressed body is still the error it says.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import type { Bundle } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createFhirClient } from '../../src/fhir/index.js';
import { silentLogger } from '../../src/log.js';
import { InstantClock } from '../support/manual-clock.js';
import { RevocableTokens, START } from './support.js';

const ENCODERS = { gzip: gzipSync, br: brotliCompressSync } as const;
type Encoding = keyof typeof ENCODERS;

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** Answers every request with `body` (an empty one when undefined), encoded as `encoding`; notes what the client accepted. */
async function serve(body: string | undefined, encoding: Encoding, status = 200): Promise<{ baseUrl: string; accepted: string[] }> {
  const accepted: string[] = [];
  server = createServer((request, response) => {
    accepted.push(String(request.headers['accept-encoding'] ?? ''));
    const encoded = body === undefined ? Buffer.alloc(0) : ENCODERS[encoding](Buffer.from(body));
    response.writeHead(status, { 'content-type': 'application/fhir+json', 'content-encoding': encoding, 'content-length': encoded.length });
    response.end(encoded);
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/R4`, accepted };
}

function searchset(padding: number): string {
  const event = { resourceType: 'AuditEvent', id: 'ae-1', recorded: '2026-11-01T00:00:00Z', padding: 'x'.repeat(padding) };
  return JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: 1, entry: [{ resource: event, search: { mode: 'match' } }] });
}

async function firstPage(baseUrl: string, maxResponseBytes: number): Promise<Bundle | BridgeError> {
  const client = createFhirClient({ baseUrl, tokenSource: new RevocableTokens(), clock: new InstantClock(START), logger: silentLogger(), maxResponseBytes });
  try {
    return (await client.searchPages('AuditEvent', { _count: '10' }).next()).value as Bundle;
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    return error as BridgeError;
  }
}

describe('compressed FHIR answers', () => {
  it.each(['gzip', 'br'] as const)('a %s page within the limit is decoded once and read; deflate is not asked for', async (encoding) => {
    const { baseUrl, accepted } = await serve(searchset(100_000), encoding);
    const page = (await firstPage(baseUrl, 256 * 1024)) as Bundle;
    expect(page.resourceType).toBe('Bundle');
    expect(page.entry?.[0]?.resource?.id).toBe('ae-1');
    expect(accepted[0]).toBe('gzip, br');
  });

  it('a 401 with an empty gzip body stays a 401: the token is renewed once, then the run stops saying so', async () => {
    const { baseUrl, accepted } = await serve(undefined, 'gzip', 401);
    const error = (await firstPage(baseUrl, 256 * 1024)) as BridgeError;
    expect(error.message).toContain('access token');
    expect(error.message).not.toMatch(/network error|Z_BUF_ERROR/);
    expect(accepted).toHaveLength(2);
  });

  it('a gzip page whose decoded size is over fhir.maxResponseBytes is refused (BRG_ERR_FHIR_TOO_LARGE), unretried, though few bytes came', async () => {
    const body = searchset(8 * 1024 * 1024);
    const { baseUrl, accepted } = await serve(body, 'gzip');
    expect(gzipSync(Buffer.from(body)).length).toBeLessThan(64 * 1024);
    const error = (await firstPage(baseUrl, 256 * 1024)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_FHIR_TOO_LARGE');
    expect(error.message).toContain('answered a body larger than the 256 KiB limit; it was not read further');
    expect(accepted).toHaveLength(1);
  });
});
