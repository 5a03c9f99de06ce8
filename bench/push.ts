/**
 * Push throughput against a plain baseline, both into the same local ingestion emulator (record:'count', so its memory
 * stays flat): `bridge push`'s path — the file checked and normalised into a spool (SHA-256, field counts, row
 * checkpoints), then blocks claimed in the SQLite ledger and streamed out of the spool — versus `curl -F file=@block.txt`
 * posting the same blocks, pre-split into files, one after another. ratio = curlMs / bridgeMs (goal ≥ 0.8); sendRatio
 * leaves out the bridge's check of the whole file, which it must finish before the first block goes out. Token
 * acquisition and block-file preparation are outside both timings; the bridge's normalisation and ledger are inside.
 * The bridge runs in a child process (this file with --child), like curl, so it does not share the emulator's event
 * loop; it times itself, so process start-up is not counted (curl's per-block start-up is, as a user would pay it).
 * Run directly: `npx tsx bench/push.ts [--rows N] [--block-rows N]` prints the result as JSON.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { systemClock } from '../src/clock.js';
import { silentLogger } from '../src/log.js';
import { createPurviewTokenSource, destinationKey, normalizeFlatFile, pushRowFile } from '../src/purview/index.js';
import { startEntraEmulator } from '../src/sandbox/entra.js';
import { type PurviewIngestEmulator, startPurviewIngestEmulator } from '../src/sandbox/purview-ingest.js';
import { createSandboxCertificate } from '../src/sandbox/tls.js';
import { openStateStore } from '../src/sync/state/index.js';

const run = promisify(execFile);

export interface PushBenchResult {
  bridgeMs: number;
  /** Of bridgeMs: the check of the whole file before anything is sent (fields, encoding, SHA-256, row checkpoints). */
  checkMs: number;
  curlMs: number;
  /** curlMs / bridgeMs. */
  ratio: number;
  /** curlMs / (bridgeMs - checkMs): the sending alone, against curl (which checks nothing). */
  sendRatio: number;
}

const HEADER =
  'ACCESS_LOG.ACCESS_TIME\tACCESS_LOG_METRIC.METRIC_NAME\tPATIENT.PAT_FIRST_NAME\tPATIENT.PAT_LAST_NAME\tPATIENT.ADD_LINE_1\tPATIENT.CITY\tPATIENT.ZIP\tZC_BTG_REASON.NAME\tEMP.SYSTEM_LOGIN\tPATIENT.PAT_MRN_ID';

/** A synthetic Epic-shaped row of about 150 bytes (no real person: numbered placeholders). */
function row(i: number): string {
  const second = String(i % 60).padStart(2, '0');
  return `2026-11-01T${String(Math.floor(i / 3600) % 24).padStart(2, '0')}:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${second}Z\tChart Opened\tFirst${i % 997}\tLast${i % 1009}\t${i % 9000} Main St\tSpringfield\t${String(10000 + (i % 89999))}\t\tUSR${i % 5000}\tMRN${i}`;
}

/** Writes the spool and, in the same pass, the block files curl will post (header + rows, CRLF). */
function writeInputs(dir: string, rows: number, blockRows: number): { spoolPath: string; blockPaths: string[] } {
  const spoolPath = join(dir, 'spool.txt');
  const spool = openSync(spoolPath, 'w', 0o600);
  const blockPaths: string[] = [];
  const header = `${HEADER}\r\n`;
  writeSync(spool, header);
  for (let first = 0; first < rows; first += blockRows) {
    const blockPath = join(dir, `block-${blockPaths.length}.txt`);
    const block = openSync(blockPath, 'w', 0o600);
    writeSync(block, header);
    for (let batch = first; batch < Math.min(rows, first + blockRows); batch += 10_000) {
      const lines: string[] = [];
      for (let i = batch; i < Math.min(rows, first + blockRows, batch + 10_000); i++) lines.push(`${row(i)}\r\n`);
      const text = lines.join('');
      writeSync(spool, text);
      writeSync(block, text);
    }
    closeSync(block);
    blockPaths.push(blockPath);
  }
  closeSync(spool);
  return { spoolPath, blockPaths };
}

function acceptedRows(ingest: PurviewIngestEmulator, jobId: string): number {
  return ingest.accepted(jobId).reduce((sum, block) => sum + block.rowCount, 0);
}

export async function runPushBench(options: { rows: number; blockRows: number }): Promise<PushBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-push-bench-'));
  const tls = await createSandboxCertificate();
  const entra = await startEntraEmulator({ tls });
  const ingest = await startPurviewIngestEmulator({ verifyAccessToken: (token) => entra.verifyAccessToken(token), tls, record: 'count' });
  try {
    const app = { tenantId: randomUUID(), appId: randomUUID(), secret: randomUUID() };
    const jobs = { bridge: randomUUID(), curl: randomUUID() };
    entra.registerApp(app);
    ingest.registerJob(jobs.bridge, app);
    ingest.registerJob(jobs.curl, app);
    const caPath = join(dir, 'ca.pem');
    writeFileSync(caPath, tls.certPem, { mode: 0o600 });
    const { spoolPath, blockPaths } = writeInputs(dir, options.rows, options.blockRows);
    const token = await createPurviewTokenSource({
      tenantId: app.tenantId,
      appId: app.appId,
      credential: { kind: 'secret', secret: app.secret },
      authorityHost: entra.authorityHost,
      caPem: tls.certPem,
      clock: systemClock,
      logger: silentLogger(),
    }).getToken();
    const { bridgeMs, checkMs } = await timeBridgeChild(
      {
        spoolPath,
        caPath,
        blockRows: options.blockRows,
        ingestionBase: ingest.baseUrl,
        jobId: jobs.bridge,
        authorityHost: entra.authorityHost,
        tenantId: app.tenantId,
        appId: app.appId,
      },
      app.secret,
    );
    const curlMs = await timeCurl(blockPaths, { caPath, token, url: `${ingest.baseUrl}/api/signals?jobid=${jobs.curl}` });
    for (const jobId of Object.values(jobs)) {
      if (acceptedRows(ingest, jobId) !== options.rows) throw new Error(`job ${jobId}: ${acceptedRows(ingest, jobId)} rows accepted, expected ${options.rows}`);
    }
    return {
      bridgeMs: Math.round(bridgeMs),
      checkMs: Math.round(checkMs),
      curlMs: Math.round(curlMs),
      ratio: Math.round((curlMs / bridgeMs) * 100) / 100,
      sendRatio: Math.round((curlMs / (bridgeMs - checkMs)) * 100) / 100,
    };
  } finally {
    await Promise.allSettled([entra.close(), ingest.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bridge's own timing of its push, measured in a child process (see the file comment). */
async function timeBridgeChild(args: ChildArgs, secret: string): Promise<{ bridgeMs: number; checkMs: number }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(args)], {
    env: { ...process.env, NODE_OPTIONS: '', PURVIEW_APP_SECRET: secret },
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { bridgeMs: number; checkMs: number };
}

/** The baseline: one `curl -F file=@block` per block, sequentially, as an operator scripting the upload would. */
async function timeCurl(blockPaths: readonly string[], target: { caPath: string; token: string; url: string }): Promise<number> {
  const start = performance.now();
  for (const blockPath of blockPaths) {
    const { stdout } = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cacert',
      target.caPath,
      '-H',
      `Authorization: Bearer ${target.token}`,
      '-F',
      `file=@${blockPath}`,
      target.url,
    ]);
    if (stdout !== '200') throw new Error(`curl upload of ${blockPath} answered ${stdout}`);
  }
  return performance.now() - start;
}

interface ChildArgs {
  spoolPath: string;
  caPath: string;
  blockRows: number;
  ingestionBase: string;
  jobId: string;
  authorityHost: string;
  tenantId: string;
  appId: string;
}

/** The bridge side, in its own process: token first (untimed, like curl's), then the timed push. */
async function runBridgeChild(args: ChildArgs): Promise<void> {
  const caPem = readFileSync(args.caPath, 'utf8');
  const logger = silentLogger();
  const tokenSource = createPurviewTokenSource({
    tenantId: args.tenantId,
    appId: args.appId,
    credential: { kind: 'secret', secret: process.env.PURVIEW_APP_SECRET ?? '' },
    authorityHost: args.authorityHost,
    caPem,
    clock: systemClock,
    logger,
  });
  await tokenSource.getToken();
  const stateDir = mkdtempSync(join(tmpdir(), 'bridge-push-bench-state-'));
  const store = openStateStore(stateDir, systemClock);
  try {
    const start = performance.now();
    const file = await normalizeFlatFile(args.spoolPath, join(stateDir, 'spool.txt'), 'epic');
    const checkMs = performance.now() - start;
    await pushRowFile({
      file,
      blockRows: args.blockRows,
      ingestionBase: args.ingestionBase,
      jobId: args.jobId,
      tokenSource,
      destination: destinationKey({ ingestionBase: args.ingestionBase, jobId: args.jobId }),
      ledger: store,
      clock: systemClock,
      logger,
      caPem,
    });
    process.stdout.write(`${JSON.stringify({ bridgeMs: performance.now() - start, checkMs })}\n`);
  } finally {
    store.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv.includes('--child')) {
  await runBridgeChild(JSON.parse(process.argv[process.argv.indexOf('--child') + 1] ?? '{}') as ChildArgs);
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runPushBench({ rows: flag('--rows', 200_000), blockRows: flag('--block-rows', 100_000) });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
