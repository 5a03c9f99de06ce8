/**
 * Resume within one ledger: a rerun over the same spool content starts at the first block not acknowledged; a block
 * left 'sending' (sent, then the process died) is sent again and flagged. The real kill -9 case is crash.test.ts.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryLedger, pushSpoolFile, scanSpool, type PushEvent, type PushOptions } from '../../src/purview/index.js';
import { chunk, makeRows, startEmulators, tempDir, writeSpool, type Emulators } from './support.js';

const dir = tempDir('bridge-resume-');
let emu: Emulators;

beforeAll(async () => {
  emu = await startEmulators();
});
afterAll(async () => {
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

function options(app: ReturnType<Emulators['newApp']>, spoolPath: string, overrides: Partial<PushOptions> = {}): PushOptions {
  return {
    spoolPath, blockRows: 10, ingestionBase: emu.ingest.baseUrl, jobId: app.jobId, tokenSource: emu.tokenSource(app, systemClock),
    ledger: createMemoryLedger(), clock: systemClock, logger: silentLogger(), caPem: emu.tls.certPem, ...overrides,
  };
}

describe('resume within one ledger', () => {
  it('a graceful stop after block 0, then a rerun that skips it and sends the rest once', async () => {
    const app = emu.newApp();
    const rows = makeRows(30);
    const spoolPath = writeSpool(dir, rows);
    const ledger = createMemoryLedger();
    const stop = new AbortController();
    const stopped = await pushSpoolFile(options(app, spoolPath, {
      ledger, stopAfterBlock: stop.signal, onEvent: (e) => e.type === 'block_acked' && stop.abort(),
    })).then(() => undefined, (e: unknown) => e);
    expect(stopped).toBeInstanceOf(BridgeError);
    expect((stopped as BridgeError).code).toBe('BRG_ERR_ABORTED');
    expect((stopped as BridgeError).message).toBe('Stopped on request before block 1 of 3; the next run resumes there.');

    const events: PushEvent[] = [];
    // The same content under another path resumes too: the ledger key is the content hash.
    const copy = join(dir, 'copy.txt');
    writeFileSync(copy, readFileSync(spoolPath));
    const report = await pushSpoolFile(options(app, copy, { ledger, onEvent: (e) => events.push(e) }));
    expect(report).toMatchObject({ blocks: 3, blocksSent: 2, blocksSkipped: 1, rowsAcked: 30, possiblyDuplicated: [] });
    expect(events[0]).toEqual({ type: 'block_skipped', index: 0, rows: 10 });
    expect(emu.ingest.accepted(app.jobId).map((b) => b.rows)).toEqual(chunk(rows, 10));
  });

  it("a block found 'sending' is sent again and flagged possibly duplicated", async () => {
    const app = emu.newApp();
    const rows = makeRows(20);
    const spoolPath = writeSpool(dir, rows);
    const { sha256 } = await scanSpool(spoolPath, 10);
    const ledger = createMemoryLedger();
    ledger.markSending(sha256, 1, 10); // an earlier run sent block 1 and died before the answer
    const report = await pushSpoolFile(options(app, spoolPath, { ledger }));
    expect(report).toMatchObject({ spoolSha256: sha256, blocksSent: 2, possiblyDuplicated: [1] });
    expect([...ledger.entries().values()].map((e) => [e.state, e.attempts, e.possiblyDuplicated])).toEqual([['acked', 2, true], ['acked', 1, false]]);
    expect(emu.ingest.accepted(app.jobId).map((b) => b.rows)).toEqual(chunk(rows, 10));
  });

  it('refuses to resume with another block size', async () => {
    const app = emu.newApp();
    const spoolPath = writeSpool(dir, makeRows(20));
    const ledger = createMemoryLedger();
    const stop = new AbortController();
    await pushSpoolFile(options(app, spoolPath, { ledger, stopAfterBlock: stop.signal, onEvent: (e) => e.type === 'block_acked' && stop.abort() })).catch(() => undefined);
    const error = await pushSpoolFile(options(app, spoolPath, { ledger, blockRows: 5 })).then(() => undefined, (e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_STATE');
    expect((error as BridgeError).message).toMatch(/^Block 0 of spool [0-9a-f]{64} was recorded with 10 rows, but is 5 rows now/);
  });
});
