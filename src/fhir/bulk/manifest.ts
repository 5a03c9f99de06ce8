/**
 * The complete-status manifest: `transactionTime`, `requiresAccessToken`, `output[{type,url,count}]`, `error[]`
 * (NDJSON files of OperationOutcomes), `deleted[]`, and, when the server pages it, `link[{relation:'next',url}]`
 * (followed with the bearer, so only on the FHIR server's origin). File URLs are kept exactly as given: the client
 * never builds one; a file URL listed again on a later page is read once. Outputs of types the request did not ask for
 * are dropped with a warning.
 * See: https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status
 */
import type { Logger } from '../../log.js';
import type { ExportManifest, ManifestFile } from './checkpoint.js';
import type { BulkHttp } from './http.js';
import { exportError, gatewayPage, notJsonAnswer, requireFhirOrigin } from './job.js';

/** A paging loop or a runaway server must not keep the client reading manifests forever. */
const MAX_MANIFEST_PAGES = 10_000;

interface ManifestPage {
  readonly transactionTime: string;
  readonly requiresAccessToken: boolean;
  readonly output: ManifestFile[];
  readonly error: ManifestFile[];
  /** Entries of `deleted[]`: files (Bundles of deleted resources), counted, never read. */
  readonly deleted: number;
  readonly next: string | undefined;
}

/** Reads the first page (the status answer) and every `next` page after it into one manifest. */
export async function readManifest(
  http: BulkHttp,
  first: unknown,
  statusUrl: string,
  types: readonly string[],
  logger: Logger,
  signal?: AbortSignal,
): Promise<ExportManifest> {
  const head = parsePage(first, statusUrl);
  const files = new Listings();
  files.add(head);
  const seen = new Set<string>([statusUrl]);
  for (let next = head.next, pages = 1; next !== undefined; pages++) {
    if (seen.has(next) || pages >= MAX_MANIFEST_PAGES) {
      throw exportError(
        `The FHIR server's export manifest pages loop (a next link repeats, or more than ${MAX_MANIFEST_PAGES} pages); the next run starts a new export`,
        200,
      );
    }
    seen.add(next);
    const url = next;
    requireFhirOrigin(http, url, 'a manifest page');
    const what = 'FHIR $export manifest page';
    const body = await http
      .withRetries(what, () => readPage(http, url, what, signal), signal)
      .catch((error: unknown) => {
        // A page the server no longer has will not come back: the export is given up (the next run asks for a new one),
        // not kept to be polled, and failed on this page, for ever.
        const status = (error as { status?: unknown }).status;
        if (status === 404 || status === 410) {
          throw exportError(
            `A page of the FHIR server's export manifest answered HTTP ${status} (it no longer has it); the next run starts a new export`,
            status,
          );
        }
        throw error;
      });
    const page = parsePage(body, url);
    files.add(page);
    next = page.next;
  }
  const { output, error, deleted, repeated } = files;
  if (repeated > 0) {
    logger.warn({ files: repeated }, 'the export manifest lists some file URLs more than once (a page served again); each file is read once');
  }
  const wanted = new Set(types);
  const foreign = output.filter((file) => !wanted.has(file.type));
  if (foreign.length > 0) {
    logger.warn(
      { types: [...new Set(foreign.map((file) => file.type))].join(','), files: foreign.length },
      'the export holds files of types not asked for; they are not read',
    );
  }
  return {
    transactionTime: head.transactionTime,
    requiresAccessToken: head.requiresAccessToken,
    output: output.filter((file) => wanted.has(file.type)),
    error,
    deleted,
  };
}

/**
 * The manifest's files over its pages, each URL at its first listing only. A server that serves a manifest page again
 * under a new URL lists its files again: read twice, their events were mapped and counted twice, a lookup file indexed
 * twice and an error file's outcomes reported twice. A URL names one file, so later listings are dropped (counted).
 */
class Listings {
  readonly output: ManifestFile[] = [];
  readonly error: ManifestFile[] = [];
  deleted = 0;
  /** Listings dropped as a URL already listed. */
  repeated = 0;
  // By list: an output file is never an error file.
  private readonly urls = { output: new Set<string>(), error: new Set<string>() };

  add(page: ManifestPage): void {
    for (const list of ['output', 'error'] as const) {
      for (const file of page[list]) {
        if (this.urls[list].has(file.url)) this.repeated += 1;
        else {
          this.urls[list].add(file.url);
          this[list].push(file);
        }
      }
    }
    this.deleted += page.deleted;
  }
}

/**
 * One manifest page's JSON. Its body is read within the retries: one that stalls or never ends is retried as a lost
 * answer. A 200 with no JSON at all (an HTML page, an empty body) is a gateway's, not the server's manifest: it stops
 * the run as an HTTP answer (BRG_ERR_FHIR_HTTP), so the export is kept and the next run reads its manifest again,
 * rather than given up as invalid.
 */
async function readPage(http: BulkHttp, url: string, what: string, signal: AbortSignal | undefined): Promise<unknown> {
  const reply = await http.expect({ method: 'GET', url, what, bearer: true, signal, headers: { accept: 'application/json' } }, [200]);
  const body = await http.readBody(reply);
  if (gatewayPage(reply, body)) throw notJsonAnswer(http, what, body);
  return body;
}

function parsePage(data: unknown, pageUrl: string): ManifestPage {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid('is not a JSON object');
  const page = data as Record<string, unknown>;
  const transactionTime = page['transactionTime'];
  if (
    typeof transactionTime !== 'string' ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(transactionTime) ||
    Number.isNaN(Date.parse(transactionTime))
  ) {
    throw invalid('has no transactionTime instant');
  }
  const requiresAccessToken = page['requiresAccessToken'];
  if (typeof requiresAccessToken !== 'boolean') throw invalid('has no requiresAccessToken boolean');
  const next = (Array.isArray(page['link']) ? (page['link'] as unknown[]) : [])
    .map((link) => link as { relation?: unknown; url?: unknown })
    .find((link) => link.relation === 'next' && typeof link.url === 'string')?.url as string | undefined;
  return {
    transactionTime,
    requiresAccessToken,
    output: files(page['output'], 'output', pageUrl),
    error: files(page['error'], 'error', pageUrl),
    deleted: Array.isArray(page['deleted']) ? page['deleted'].length : 0,
    next: next === undefined ? undefined : absolute(next, pageUrl, 'link'),
  };
}

function files(value: unknown, field: string, pageUrl: string): ManifestFile[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`has a ${field} that is not an array`);
  return value.map((item, i) => {
    const entry = item as { type?: unknown; url?: unknown; count?: unknown } | null;
    if (typeof entry?.type !== 'string' || typeof entry.url !== 'string') throw invalid(`has ${field}[${i}] without type and url`);
    const count = typeof entry.count === 'number' && Number.isInteger(entry.count) && entry.count >= 0 ? entry.count : undefined;
    return { type: entry.type, url: absolute(entry.url, pageUrl, `${field}[${i}].url`), ...(count === undefined ? {} : { count }) };
  });
}

function absolute(url: string, base: string, field: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    throw invalid(`has a ${field} that is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalid(`has a ${field} that is not http(s)`);
  return parsed.toString();
}

function invalid(what: string) {
  return exportError(`The FHIR server's export manifest ${what}; the next run starts a new export`, 200);
}
