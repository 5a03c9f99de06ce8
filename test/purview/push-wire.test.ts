/**
 * The upload byte for byte, captured by a bare HTTPS server (no multipart parser in between): what Microsoft's script
 * sends through .NET's MultipartFormDataContent (docs/purview-protocol.md §2.2), with the block streamed from the spool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { pushRowFile } from '../../src/purview/index.js';
import { createSandboxCertificate } from '../../src/sandbox/tls.js';
import { InstantClock } from '../support/manual-clock.js';
import { HEADER, makeRows, openStore, prepareFile } from './support.js';

interface Captured {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}
const captured: Captured[] = [];
let baseUrl = '';
let caPem = '';
let close: () => Promise<void>;
const dir = mkdtempSync(join(tmpdir(), 'bridge-wire-'));

beforeAll(async () => {
  const tls = await createSandboxCertificate();
  caPem = tls.certPem;
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      captured.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks) });
      response.writeHead(200, { 'content-length': 0 }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
});
afterAll(async () => {
  await close();
  rmSync(dir, { recursive: true, force: true });
});

it('sends exactly the .NET multipart body: quoted boundary, one unquoted "file" part, header + rows, CRLF, no BOM', async () => {
  const rows = makeRows(5);
  const file = await prepareFile(dir, rows);
  const boundaries = ['b-1', 'b-2'];
  const store = openStore(dir);
  await pushRowFile({
    file,
    blockRows: 3,
    ingestionBase: `${baseUrl}/`,
    jobId: 'Job 1/ü',
    destination: 'wire-test',
    ledger: store,
    tokenSource: { getToken: async () => 'tok-1', invalidate: () => undefined },
    clock: new InstantClock(),
    logger: silentLogger(),
    caPem,
    newBoundary: () => boundaries.shift() ?? 'extra',
    newFileId: () => 'fid',
  });
  store.close();
  expect(captured).toHaveLength(2);
  const blocks = [rows.slice(0, 3), rows.slice(3)];
  captured.forEach((request, i) => {
    const boundary = `b-${i + 1}`;
    const filename = `tmp_fid000${i + 1}.txt`;
    const expected = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name=file; filename=${filename}; filename*=utf-8''${filename}\r\n\r\n`),
      Buffer.from([HEADER, ...(blocks[i] as string[])].map((line) => `${line}\r\n`).join(''), 'utf8'),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    expect(request.method).toBe('POST');
    // The GCC preset's trailing '/' must not double the slash; the job id is URL-encoded.
    expect(request.url).toBe('/api/signals?jobid=Job%201%2F%C3%BC');
    expect(request.headers.authorization).toBe('Bearer tok-1');
    expect(request.headers['content-type']).toBe(`multipart/form-data; boundary="${boundary}"`);
    expect(request.headers['content-length']).toBe(String(expected.length));
    expect(request.headers['transfer-encoding']).toBeUndefined();
    expect(request.body.toString('utf8')).toBe(expected.toString('utf8'));
    expect(request.body.equals(expected)).toBe(true);
  });
});
