/**
 * The checkpoint's completed files live in parts beside it: recording a file rewrites one small part, never the
 * checkpoint with its manifest (that grew with the square of the file count); files an older version listed inline
 * still count; a part left by an export that was forgotten reads as empty; a download that ends after its export was
 * given up records nothing.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ExportCheckpoint,
  type ExportManifest,
  FILES_PER_PART,
  loadCheckpoint,
  loadCovered,
  recordCovered,
  recordFile,
  sameRequest,
  saveCheckpoint,
  scopeAt,
} from '../../../src/fhir/bulk/checkpoint.js';
import { BulkExportJob } from '../../../src/fhir/bulk/export.js';
import { type BulkFixture, fixtureBulkHttp, MemoryCheckpoints, startBulkFixture } from './support.js';

const REQUEST = { base: 'https://ehr.example.org/fhir', level: 'system', types: ['AuditEvent'] } as const;

function manifest(files: number): ExportManifest {
  return {
    transactionTime: '2026-11-02T00:00:00Z',
    requiresAccessToken: true,
    output: Array.from({ length: files }, (_, i) => ({ type: 'AuditEvent', url: `https://ehr.example.org/fhir/bulk/file/job-1/${i}`, count: 1000 })),
    error: [],
    deleted: 0,
  };
}

function checkpoint(id: string, files: number): ExportCheckpoint {
  return {
    version: 1,
    id,
    request: REQUEST,
    statusUrl: `https://ehr.example.org/fhir/bulk/status/${id}`,
    kickedOffAt: '2026-11-02T00:00:00Z',
    manifest: manifest(files),
    files: {},
  };
}

/** Counts what each write costs: the checkpoint's writes, and the longest text written to any part. */
class CountingStore extends MemoryCheckpoints {
  checkpointWrites = 0;
  longestPart = 0;
  override set(value: string | undefined): void {
    this.checkpointWrites += 1;
    super.set(value);
  }
  override setPart(name: string, value: string | undefined): void {
    this.longestPart = Math.max(this.longestPart, value?.length ?? 0);
    super.setPart(name, value);
  }
}

describe('completed files', () => {
  it('5,000 files: each is recorded by rewriting one part of at most FILES_PER_PART entries, never the checkpoint', () => {
    const store = new CountingStore();
    saveCheckpoint(store, checkpoint('export-a', 5000));
    const writes = store.checkpointWrites;
    const checkpointText = store.value?.length ?? 0;
    for (let i = 0; i < 5000; i += 1) recordFile(store, 'export-a', i, { bytes: 1_000_000 + i, gzip: i % 2 === 0 });
    expect(store.checkpointWrites).toBe(writes);
    expect(store.value?.length).toBe(checkpointText);
    expect(store.longestPart).toBeLessThan(FILES_PER_PART * 50);
    expect(store.parts.size).toBe(Math.ceil(5000 / FILES_PER_PART));
    const files = loadCheckpoint(store)?.files ?? {};
    expect(Object.keys(files)).toHaveLength(5000);
    expect(files['4999']).toEqual({ bytes: 1_004_999, gzip: false });
  });

  it('files an older version listed inline still count, and move to the parts at the next save', () => {
    const store = new MemoryCheckpoints();
    const inline = { ...checkpoint('export-b', 600), files: { '0': { bytes: 10, gzip: false }, '300': { bytes: 30, gzip: true } } };
    store.set(JSON.stringify(inline));
    expect(loadCheckpoint(store)?.files).toEqual(inline.files);
    recordFile(store, 'export-b', 1, { bytes: 11, gzip: false });
    const loaded = loadCheckpoint(store) as ExportCheckpoint;
    expect(Object.keys(loaded.files).sort()).toEqual(['0', '1', '300']);
    saveCheckpoint(store, { ...loaded, errorsReported: true, errorOutcomes: 0 });
    expect(store.parsed()?.files).toEqual({});
    expect(loadCheckpoint(store)?.files).toEqual({ '0': { bytes: 10, gzip: false }, '1': { bytes: 11, gzip: false }, '300': { bytes: 30, gzip: true } });
  });

  it('a crash while the first save after an upgrade moves the inline files to parts loses none of them', () => {
    const store = new MemoryCheckpoints();
    const inline = { ...checkpoint('export-h', 3), files: { '0': { bytes: 10, gzip: false }, '2': { bytes: 30, gzip: true } } };
    store.set(JSON.stringify(inline));
    const loaded = loadCheckpoint(store) as ExportCheckpoint;
    // The process dies at the first part it writes.
    const write = store.setPart.bind(store);
    store.setPart = () => {
      throw new Error('killed');
    };
    expect(() => saveCheckpoint(store, { ...loaded, errorsReported: true, errorOutcomes: 0 })).toThrow('killed');
    store.setPart = write;
    expect(loadCheckpoint(store)?.files).toEqual(inline.files);
  });

  it('forgetting an export removes its parts; a part a crash left behind belongs to no later export', () => {
    const store = new MemoryCheckpoints();
    saveCheckpoint(store, checkpoint('export-c', 300));
    recordFile(store, 'export-c', 0, { bytes: 1, gzip: false });
    recordFile(store, 'export-c', 299, { bytes: 2, gzip: false });
    expect(store.parts.size).toBe(2);
    saveCheckpoint(store, undefined);
    expect(store.parts.size).toBe(0);

    // A process died between forgetting export d and removing its parts: they stay, naming export d.
    saveCheckpoint(store, checkpoint('export-d', 10));
    recordFile(store, 'export-d', 3, { bytes: 3, gzip: false });
    const left = new Map(store.parts);
    saveCheckpoint(store, undefined);
    for (const [name, text] of left) store.setPart(name, text);
    saveCheckpoint(store, checkpoint('export-e', 10));
    expect(loadCheckpoint(store)?.files).toEqual({});
    recordFile(store, 'export-e', 4, { bytes: 4, gzip: false });
    expect(loadCheckpoint(store)?.files).toEqual({ '4': { bytes: 4, gzip: false } });
  });
});

describe('a download that ends after its export was given up', () => {
  let f: BulkFixture;
  beforeAll(async () => {
    f = await startBulkFixture();
  });
  afterAll(async () => f?.close());

  it('records nothing: the next export of the same connector starts with no file complete', async () => {
    const store = new MemoryCheckpoints();
    const http = fixtureBulkHttp(f.fx);
    const job = new BulkExportJob({
      http,
      store,
      dir: mkdtempSync(join(tmpdir(), 'bridge-bulk-checkpoint-')),
      pollMinMs: 1000,
      pollMaxMs: 60_000,
      newId: () => 'unused',
    });
    const first = { ...checkpoint('export-f', 3), request: { ...REQUEST, base: f.fx.server.baseUrl.replace(/\/+$/, '') } };
    saveCheckpoint(store, first);
    const ready = await job.ready(first.request);
    expect(ready.id).toBe('export-f');
    job.complete(ready, 0, { bytes: 5, gzip: false });
    expect(Object.keys(loadCheckpoint(store)?.files ?? {})).toEqual(['0']);

    await job.abandon(ready);
    const next = checkpoint('export-g', 3);
    saveCheckpoint(store, next);
    job.complete(ready, 1, { bytes: 6, gzip: false });
    expect(loadCheckpoint(store)?.id).toBe('export-g');
    expect(loadCheckpoint(store)?.files).toEqual({});
    expect(store.parts.size).toBe(0);
  });
});

describe('finished exports remembered (their scopes decide the next _since)', () => {
  it("keeps the watermark's export however many exports of another scope finish after it (dry runs)", () => {
    const store = new MemoryCheckpoints();
    const group = { base: REQUEST.base, level: 'group', groupId: 'g1' } as const;
    const system = { base: REQUEST.base, level: 'system' } as const;
    const watermark = '2026-11-01T00:00:00Z';
    recordCovered(store, { until: watermark, scope: group });
    for (let i = 1; i <= 25; i += 1) recordCovered(store, { until: `2026-11-02T00:${String(i).padStart(2, '0')}:00Z`, scope: system }, watermark);
    expect(scopeAt(loadCovered(store), watermark)).toEqual(group);
    expect(loadCovered(store)).toHaveLength(20);
    // Without a watermark to keep, the oldest go.
    for (let i = 26; i <= 30; i += 1) recordCovered(store, { until: `2026-11-02T00:${String(i).padStart(2, '0')}:00Z`, scope: system });
    expect(scopeAt(loadCovered(store), watermark)).toBeUndefined();
  });

  it('two scopes finishing at the same instant are both remembered', () => {
    const store = new MemoryCheckpoints();
    const at = '2026-11-01T00:00:00Z';
    recordCovered(store, { until: at, scope: { base: REQUEST.base, level: 'group', groupId: 'g1' } });
    recordCovered(store, { until: at, scope: { base: REQUEST.base, level: 'system' } });
    expect(loadCovered(store)).toHaveLength(2);
  });
});

describe('the request an export answers', () => {
  const request = { ...REQUEST, types: ['AuditEvent', 'Patient', 'Practitioner'], since: '2026-11-01T00:00:00.000Z' };
  it('takes source.types as a set: another order or a type listed twice is the same request', () => {
    expect(sameRequest(request, { ...request, types: ['Practitioner', 'AuditEvent', 'Patient'] })).toBe(true);
    expect(sameRequest(request, { ...request, types: ['AuditEvent', 'Patient', 'Practitioner', 'Patient'] })).toBe(true);
  });

  it('another set of types (one more, one less, another spelling: resource types are case-sensitive), or another _since, is another request', () => {
    expect(sameRequest(request, { ...request, types: ['AuditEvent', 'Patient'] })).toBe(false);
    expect(sameRequest(request, { ...request, types: ['AuditEvent', 'Patient', 'Patient'] })).toBe(false);
    expect(sameRequest(request, { ...request, types: ['AuditEvent', 'Patient', 'Practitioner', 'Encounter'] })).toBe(false);
    expect(sameRequest(request, { ...request, types: ['AuditEvent', 'Patient', 'PRACTITIONER'] })).toBe(false);
    expect(sameRequest(request, { ...request, since: '2026-11-01T00:00:00.001Z' })).toBe(false);
  });
});
