/**
 * Downloads followed by their reader, against a hand-written file server that breaks a body half-way (the sandbox
 * never does): a failed download is retried while its reader waits for it, and refused once the reader has its bytes.
 * The retry's wait runs on a ManualClock, so the test decides whether the reader arrives before or during it.
 */
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock.js';
import { Downloads } from '../../../src/fhir/bulk/downloads.js';
import { downloadFile } from '../../../src/fhir/bulk/files.js';
import { BulkHttp } from '../../../src/fhir/bulk/http.js';
import { silentLogger } from '../../../src/log.js';
import { createDispatcher, DIRECT_NETWORK } from '../../../src/net/index.js';
import { rejectionOf } from '../../support/error-of.js';
import { InstantClock, ManualClock } from '../../support/manual-clock.js';
import { until } from './support.js';

/** How the server answers the n-th request (1-based) for a file. */
type Answer = (res: ServerResponse, n: number) => void;
let answers: Record<string, Answer> = {};
const hits = new Map<string, number>();
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    const answer = answers[path];
    if (!answer) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
    answer(res, n);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const ndjson = (prefix: string, count: number): string =>
  Array.from({ length: count }, (_, i) => `${JSON.stringify({ resourceType: 'AuditEvent', id: `${prefix}-${i + 1}` })}\n`).join('');

/** Sends part of a body, then drops the connection once `cut` resolves (the client meets "other side closed"). */
function cutOff(res: ServerResponse, body: string, cut: Promise<void>): void {
  res.write(body, () => void cut.then(() => res.socket?.destroy()));
}

function downloads(clock: Clock, files: readonly string[], dir = mkdtempSync(join(tmpdir(), 'bridge-bulk-downloads-'))): Downloads {
  const http = bulkHttp(clock);
  const output = files.map((path) => ({ type: 'AuditEvent', url: `${base}${path}` }));
  return new Downloads(
    http,
    { output, requiresAccessToken: false, complete: {}, pathOf: (i) => join(dir, `${i}.ndjson`), onComplete: () => undefined },
    files.map((_, i) => i),
  );
}

function bulkHttp(clock: Clock): BulkHttp {
  hits.clear();
  return new BulkHttp({
    baseUrl: base,
    tokenSource: { getToken: async () => 'tok', invalidate: () => undefined },
    dispatcher: createDispatcher(DIRECT_NETWORK),
    clock,
    logger: silentLogger(),
    timeoutMs: 5000,
    retry: { maxAttempts: 4, maxTotalMs: 600_000, baseDelayMs: 1000, maxDelayMs: 1000 },
    maxJsonBytes: 1 << 20,
    random: () => 0.5,
  });
}

async function ids(lines: AsyncIterable<{ length: number; text(i: number): string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const chunk of lines) for (let k = 0; k < chunk.length; k++) out.push((JSON.parse(chunk.text(k)) as { id: string }).id);
  return out;
}

describe('a download that fails mid-body', () => {
  it('is retried when its reader arrives during the wait, and the reader reads the retry from its start', async () => {
    answers = {
      '/f/0': (res) => res.end(ndjson('zero', 3)),
      '/f/1': (res, n) => (n === 1 ? cutOff(res, ndjson('failed', 5), Promise.resolve()) : res.end(ndjson('retry', 10))),
    };
    const clock = new ManualClock('2026-11-01T00:00:00Z');
    const d = downloads(clock, ['/f/0', '/f/1']);
    try {
      expect(await ids(d.lines(0))).toEqual(['zero-1', 'zero-2', 'zero-3']);
      // File 1's first try broke off after some of its bytes were on disk; the download waits to try again.
      await until(() => clock.pending === 1);
      const reading = ids(d.lines(1));
      await clock.advance(1000);
      expect(await reading).toEqual(Array.from({ length: 10 }, (_, i) => `retry-${i + 1}`));
      expect(hits.get('/f/1')).toBe(2);
    } finally {
      await d.stop();
    }
  });

  it('is not retried once the reader has lines of it: those cannot be taken back', async () => {
    let cut: () => void = () => undefined;
    const cutting = new Promise<void>((resolve) => (cut = resolve));
    answers = { '/f/0': (res, n) => (n === 1 ? cutOff(res, ndjson('first', 5), cutting) : res.end(ndjson('again', 5))) };
    const d = downloads(new InstantClock(), ['/f/0']);
    try {
      const seen: string[] = [];
      const reading = (async () => {
        for await (const chunk of d.lines(0)) {
          for (let k = 0; k < chunk.length; k++) seen.push((JSON.parse(chunk.text(k)) as { id: string }).id);
          cut();
        }
      })();
      const error = await rejectionOf(reading);
      expect(seen).toEqual(['first-1', 'first-2', 'first-3', 'first-4', 'first-5']);
      expect(error.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
      expect(hits.get('/f/0')).toBe(1);
    } finally {
      await d.stop();
    }
  });
});

describe('a download this machine cannot write', () => {
  // /dev/full answers every write with ENOSPC: the part file on a full disk, without filling one. Only the first
  // attempt meets it (the part file, here a link, is removed after a failed attempt), so a retry would succeed.
  it.skipIf(!existsSync('/dev/full'))('is not fetched again as a network error: BRG_ERR_STATE names the file, after one request', async () => {
    answers = { '/f/0': (res) => res.end(ndjson('zero', 3)) };
    const dir = mkdtempSync(join(tmpdir(), 'bridge-bulk-downloads-'));
    const part = join(dir, '0.ndjson.part');
    symlinkSync('/dev/full', part);
    const d = downloads(new InstantClock(), ['/f/0'], dir);
    try {
      const error = await rejectionOf(ids(d.lines(0)));
      expect(error.code).toBe('BRG_ERR_STATE');
      expect(error.message).toContain(`Cannot write ${part} (ENOSPC). Free space on its disk`);
      expect(error.message).toContain('the export is kept, and the next run downloads only the files not yet here');
      expect(hits.get('/f/0')).toBe(1);
    } finally {
      await d.stop();
    }
  });

  it.skipIf(!existsSync('/dev/full'))('an error file (downloaded whole) neither: BRG_ERR_STATE names the file, after one request', async () => {
    answers = { '/e/0': (res) => res.end('{"resourceType":"OperationOutcome"}\n') };
    const dir = mkdtempSync(join(tmpdir(), 'bridge-bulk-downloads-'));
    const path = join(dir, 'error-0.ndjson');
    symlinkSync('/dev/full', `${path}.part`);
    const file = { type: 'OperationOutcome', url: `${base}/e/0` };
    const error = await rejectionOf(downloadFile(bulkHttp(new InstantClock()), file, 'error file 1 of 1', path, false));
    expect(error.code).toBe('BRG_ERR_STATE');
    expect(error.message).toContain(`Cannot write ${path}.part (ENOSPC). Free space on its disk`);
    expect(hits.get('/e/0')).toBe(1);
  });
});
