/** Real emulators on 127.0.0.1 and small spool builders shared by the push-stage tests. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type Clock, systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { createPurviewTokenSource, MANDATORY_COLUMNS, type NormalizedFile, normalizeFlatFile } from '../../src/purview/index.js';
import { type EntraEmulator, startEntraEmulator } from '../../src/sandbox/entra.js';
import { type IngestSchema, type PurviewIngestEmulator, type PurviewIngestOptions, startPurviewIngestEmulator } from '../../src/sandbox/purview-ingest.js';
import { createSandboxCertificate, type SandboxCertificate } from '../../src/sandbox/tls.js';
import { openStateStore, type StateStore } from '../../src/sync/state/index.js';
import type { TokenSource } from '../../src/token-cache.js';

/** The Epic connector's mandatory columns: what a pushed file must name (src/purview/sniff.ts). */
export const HEADER = MANDATORY_COLUMNS.epic.join('\t');

export interface Emulators {
  readonly tls: SandboxCertificate;
  readonly entra: EntraEmulator;
  readonly ingest: PurviewIngestEmulator;
  /**
   * A fresh tenant/app/secret/job registered on both emulators; the job is of `schema` (default Epic, what HEADER names),
   * so a block whose header is not that connector's is refused as Purview would.
   */
  newApp(schema?: IngestSchema): { tenantId: string; appId: string; secret: string; jobId: string };
  tokenSource(app: { tenantId: string; appId: string; secret: string }, clock: Clock): TokenSource;
  close(): Promise<void>;
}

/** @param limits - The ingestion emulator's limits (e.g. a small maxBodyBytes, to meet a 413). */
export async function startEmulators(limits: Pick<PurviewIngestOptions, 'maxBodyBytes'> = {}): Promise<Emulators> {
  const tls = await createSandboxCertificate();
  const entra = await startEntraEmulator({ tls });
  const ingest = await startPurviewIngestEmulator({ verifyAccessToken: (token) => entra.verifyAccessToken(token), tls, ...limits });
  return {
    tls,
    entra,
    ingest,
    newApp(schema = 'epic') {
      const app = { tenantId: randomUUID(), appId: randomUUID(), secret: `secret-${randomUUID()}`, jobId: randomUUID() };
      entra.registerApp(app);
      ingest.registerJob(app.jobId, app, schema);
      return app;
    },
    tokenSource(app, clock) {
      return createPurviewTokenSource({
        tenantId: app.tenantId,
        appId: app.appId,
        credential: { kind: 'secret', secret: app.secret },
        authorityHost: entra.authorityHost,
        caPem: tls.certPem,
        clock,
        logger: silentLogger(),
      });
    },
    async close() {
      await Promise.all([entra.close(), ingest.close()]);
    },
  };
}

/** The `bridge push` flags naming an app of the emulators, the file and the state directory. */
export function pushArgs(emu: Emulators, app: { tenantId: string; appId: string; jobId: string }, file: string, stateDir: string, caFile: string): string[] {
  return [
    '--tenant-id',
    app.tenantId,
    '--app-id',
    app.appId,
    '--job-id',
    app.jobId,
    '--file',
    file,
    '--state-dir',
    stateDir,
    '--authority-host',
    emu.entra.authorityHost,
    '--ingestion-base',
    emu.ingest.baseUrl,
    '--ca-file',
    caFile,
  ];
}

/** Data rows `r<i>` (one field per HEADER column) with a few UTF-8 characters, so byte offsets differ from character offsets. */
export function makeRows(count: number, prefix = 'r'): string[] {
  return Array.from(
    { length: count },
    (_, i) => `2026-11-01T00:00:${String(i % 60).padStart(2, '0')}Z\tPatient Lookup ${prefix}${i}\tJo\tDoe\t1 Main St\tÅlesund\t6002\t\tÅse.Øvrebø${i}`,
  );
}

/** A connector file as an operator would hand it to `bridge push` (CRLF lines). */
export function writeSpool(dir: string, rows: readonly string[], header = HEADER): string {
  const path = join(dir, `input-${randomUUID()}.txt`);
  writeFileSync(path, [header, ...rows].map((line) => `${line}\r\n`).join(''), { mode: 0o600 });
  return path;
}

/** The file normalised into a spool, as `bridge push` does before its first block. */
export async function prepareFile(dir: string, rows: readonly string[], header = HEADER): Promise<NormalizedFile> {
  return normalizeFlatFile(writeSpool(dir, rows, header), join(dir, `spool-${randomUUID()}.txt`), 'epic');
}

/** A real SQLite state store (ledger and leases) in its own directory. */
export function openStore(dir: string, clock: Clock = systemClock): StateStore {
  return openStateStore(mkdtempSync(join(dir, 'state-')), clock);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Splits rows into the block sizes the push must produce. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The emulators and a state store for one test file: started and opened before its tests, handed to `use`, closed after
 * them, and `dir` removed.
 */
export function emulatorsAndStore(dir: string, use: (emu: Emulators, store: StateStore) => void): void {
  let emu: Emulators | undefined;
  let store: StateStore | undefined;
  beforeAll(async () => {
    emu = await startEmulators();
    store = openStore(dir);
    use(emu, store);
  });
  afterAll(async () => {
    store?.close();
    await emu?.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * The emulators for one test file, started before its tests and closed after them, with their CA in a file for the
 * CLI's `--ca-file`; the directory is removed at the end.
 */
export function emulatorsWithCaFile(prefix: string): { readonly dir: string; readonly caFile: string; readonly emu: Emulators } {
  const dir = tempDir(prefix);
  const caFile = join(dir, 'ca.pem');
  let started: Emulators | undefined;
  beforeAll(async () => {
    started = await startEmulators();
    writeFileSync(caFile, started.tls.certPem);
  });
  afterAll(async () => {
    await started?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    caFile,
    get emu(): Emulators {
      if (!started) throw new Error('the emulators start in beforeAll: use them inside a test');
      return started;
    },
  };
}
