/**
 * The sandbox export's files: which resources of a completed export go in which NDJSON file, and streaming one file
 * over a FhirBackend page by page (never the whole file in memory), optionally gzip-compressed, with the bad-line
 * fault. AuditEvents are selected by `_lastUpdated` in (since, transactionTime] through the backend's own search;
 * the other types are few and filtered here by their meta.lastUpdated (a resource without one predates any `_since`).
 */
import type { ServerResponse } from 'node:http';
import { createGzip } from 'node:zlib';
import type { FhirResource } from 'fhir/r4.js';
import type { FhirBackend } from './fhir-backend.js';

/** Resources read from the backend per search. */
const PAGE = 1000;

export interface ExportSelection {
  readonly since: number | undefined;
  /** transactionTime in ms. */
  readonly until: number;
}

/** One output file: the `count` matching resources of `type` from position `from`. */
export interface ExportFileSpec {
  readonly type: string;
  readonly from: number;
  readonly count: number;
}

/**
 * Splits each type's matching resources into files of at most `perFile`; a type with none gets no file, or with
 * `emptyFiles` one file of none (count 0), as a server that lists every requested type does.
 */
export async function planFiles(
  backend: FhirBackend,
  types: readonly string[],
  selection: ExportSelection,
  perFile: number,
  emptyFiles = false,
): Promise<ExportFileSpec[]> {
  const files: ExportFileSpec[] = [];
  for (const type of types) {
    const total = await countOf(backend, type, selection);
    if (total === 0 && emptyFiles) files.push({ type, from: 0, count: 0 });
    for (let from = 0; from < total; from += perFile) files.push({ type, from, count: Math.min(perFile, total - from) });
  }
  return files;
}

async function countOf(backend: FhirBackend, type: string, selection: ExportSelection): Promise<number> {
  if (type === 'AuditEvent') return (await backend.search(type, eventQuery(selection, 0, 1))).total ?? 0;
  let total = 0;
  for await (const page of otherPages(backend, type, selection)) total += page.length;
  return total;
}

/** The resources of one file, a backend page at a time. */
export async function* fileResources(backend: FhirBackend, spec: ExportFileSpec, selection: ExportSelection): AsyncGenerator<FhirResource[]> {
  if (spec.type === 'AuditEvent') {
    for (let offset = spec.from, left = spec.count; left > 0; ) {
      const { resources } = await backend.search('AuditEvent', eventQuery(selection, offset, Math.min(PAGE, left)));
      if (resources.length === 0) return;
      yield resources.slice(0, left);
      offset += resources.length;
      left -= resources.length;
    }
    return;
  }
  let skip = spec.from;
  let left = spec.count;
  for await (const page of otherPages(backend, spec.type, selection)) {
    const taken = page.slice(Math.min(skip, page.length), Math.min(skip, page.length) + left);
    skip = Math.max(0, skip - page.length);
    left -= taken.length;
    if (taken.length > 0) yield taken;
    if (left <= 0) return;
  }
}

function eventQuery(selection: ExportSelection, offset: number, count: number): URLSearchParams {
  const query = new URLSearchParams();
  if (selection.since !== undefined) query.append('_lastUpdated', `gt${new Date(selection.since).toISOString()}`);
  query.append('_lastUpdated', `le${new Date(selection.until).toISOString()}`);
  query.set('_sort', '_lastUpdated');
  query.set('_count', String(count));
  query.set('_offset', String(offset));
  return query;
}

/** Every resource of a non-event type updated in the selection, in the backend's order. */
async function* otherPages(backend: FhirBackend, type: string, selection: ExportSelection): AsyncGenerator<FhirResource[]> {
  for (let offset = 0; ; offset += PAGE) {
    const { resources } = await backend.search(type, new URLSearchParams({ _count: String(PAGE), _offset: String(offset) }));
    const matching = resources.filter((resource) => {
      const updated = Date.parse(resource.meta?.lastUpdated ?? '');
      if (Number.isNaN(updated)) return selection.since === undefined;
      return (selection.since === undefined || updated > selection.since) && updated <= selection.until;
    });
    if (matching.length > 0) yield matching;
    if (resources.length < PAGE) return;
  }
}

export interface StreamOptions {
  readonly gzip: boolean;
  /** Replace line `line` (1-based) with a resource of another type (the bad-line fault). */
  readonly badLine?: number | undefined;
  /** Default 200. */
  readonly status?: number;
  /**
   * End the body after this many lines, framed by the connection's close (no length, no chunks): a server or proxy that
   * stops early at a line end, which no HTTP framing or gzip check catches. Only the manifest's `count` tells.
   */
  readonly endAfterLines?: number | undefined;
  /** With gzip: no Content-Encoding, as a blob store serves a `.ndjson.gz` (application/gzip). */
  readonly unlabelled?: boolean | undefined;
}

/** Writes NDJSON lines to the response with backpressure; stops when the client goes away. */
export async function streamNdjson(
  res: ServerResponse,
  pages: AsyncIterable<readonly unknown[]> | Iterable<readonly unknown[]>,
  options: StreamOptions,
): Promise<void> {
  const cut = options.endAfterLines;
  if (cut !== undefined) {
    res.useChunkedEncodingByDefault = false;
    res.shouldKeepAlive = false;
  }
  // unlabelled: a blob store's `.ndjson.gz`, compressed with no Content-Encoding (application/gzip).
  const labelled = options.gzip && options.unlabelled !== true;
  res.writeHead(options.status ?? 200, {
    'content-type': options.gzip && !labelled ? 'application/gzip' : 'application/fhir+ndjson',
    ...(labelled ? { 'content-encoding': 'gzip' } : {}),
  });
  const gzip = options.gzip ? createGzip({ level: 1 }) : undefined;
  if (gzip) gzip.pipe(res);
  const out = gzip ?? res;
  let line = 0;
  for await (const whole of pages) {
    if (res.destroyed) return;
    const page = cut === undefined ? whole : whole.slice(0, Math.max(0, cut - line));
    if (page.length === 0) break;
    const encoded = page.map((resource) => {
      line += 1;
      return line === options.badLine ? JSON.stringify({ resourceType: 'Basic', id: 'sandbox-bad-line' }) : JSON.stringify(resource);
    });
    const text = `${encoded.join('\n')}\n`;
    if (!out.write(text)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          out.off('drain', done);
          res.off('close', done);
          resolve();
        };
        out.once('drain', done);
        res.once('close', done);
      });
    }
  }
  if (!res.destroyed) out.end();
}
