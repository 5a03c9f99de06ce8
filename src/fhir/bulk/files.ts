/**
 * What every export file shares: how it is named in messages (type, position, path: never its query, which may carry
 * a signature), whether a download carries the bearer (only when the manifest says requiresAccessToken and the file
 * is on the FHIR server's origin: a pre-signed blob URL elsewhere must not see it), the check of every line (JSON, and
 * the manifest's resourceType), and expiry (404/410: ExportExpiredError, the export is restarted; a 403 to the bearer,
 * a fresh one too: ExportRefusedError, restarted a bounded number of times in a row). Output files are
 * downloaded and read as they arrive by downloads.ts; the small error files whole, here (downloadFile, localLines).
 * gzip is accepted and stored as it came, inflated while read.
 * See: https://hl7.org/fhir/uv/bulkdata/export.html#file-request
 */
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { isSecureOrLocal } from '../../config/endpoints.js';
import { type BridgeError, localWriteError, writingToAsync } from '../../errors.js';
import { fileChunks, type NdjsonLines, NotUtf8Error, ndjsonLines } from '../../mapping/load.js';
import { FhirError } from '../fhir-error.js';
import { describeAnswer, IN_SERVER_LOG, textNotQuoted } from '../outcome.js';
import { safeOrigin } from '../transport-errors.js';
import type { LocalFile, ManifestFile } from './checkpoint.js';
import { type BulkHttp, BulkHttpError, type BulkReply, headerOf } from './http.js';

/** The server no longer has an export's files (HTTP 404/410): a new export is needed. */
export class ExportExpiredError extends Error {
  override readonly name = 'ExportExpiredError';
  constructor(
    readonly status: number,
    readonly file: string,
  ) {
    super(`${file} answered HTTP ${status}`);
  }
}

/**
 * A file on the FHIR server answered 403 to the bearer, a fresh one too: the server no longer lets this client read the
 * export's files (it answers so for an export it dropped, or the client's grant changed). Resuming the export would
 * only ask for the same file again: it is restarted like an expired one, a bounded number of times in a row
 * (bulk-source.ts). `text`: what the answer was (outcome.ts describeAnswer: codes, never the server's words), for the
 * error that ends the streak.
 */
export class ExportRefusedError extends Error {
  override readonly name = 'ExportRefusedError';
  readonly status = 403;
  constructor(
    readonly file: string,
    readonly type: string,
    readonly text: string,
    /** textNotQuoted's sentence: why the answer's words are left out and where they are; empty when it had none. */
    readonly unquoted: string,
  ) {
    super(`${file} answered HTTP 403 to the access token`);
  }
}

/**
 * Longest NDJSON line read: one resource. Epic's are a few KB (the sandbox's and the bench's at most about 2 KB), so this
 * is far above any real one; a longer line (a file without line ends, a runaway array) is refused before it is decoded or
 * parsed, so the export is given up instead of the process dying. JSON.parse of a line made of small objects (`{},`
 * repeated) takes about 22 times its size in heap: at this cap about 90 MB, within the shipped 256 MB old space, where
 * 30 MiB killed the process, and every later run on the same downloaded file.
 */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

/** "AuditEvent file 3 of 12 (/bulk/files/x.ndjson)": names a file in messages without its query (signatures). */
export function fileLabel(file: ManifestFile, index: number, total: number): string {
  let path = '';
  try {
    path = new URL(file.url).pathname;
  } catch {
    path = '?';
  }
  return `${file.type} file ${index + 1} of ${total} (${path.length > 160 ? `…${path.slice(-159)}` : path})`;
}

/** Whether a download carries the bearer: the manifest asks for it and the file is on the FHIR server's origin. */
export function sendsBearer(http: BulkHttp, requiresAccessToken: boolean, url: string): boolean {
  return requiresAccessToken && safeOrigin(url) === http.origin;
}

/** Redirects followed for one export file (a server handing files out from a blob store redirects once). */
const MAX_FILE_REDIRECTS = 5;
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * Asks for one export file and checks the answer before its body is read: 200 with gzip or no encoding. A redirect is
 * followed, the bearer sent (with the manifest's requiresAccessToken) only while it stays on the FHIR server's origin.
 * 404/410, and 401/403 to a request for a signed URL (a query: a blob store's signature) sent without the bearer, mean
 * the export expired (ExportExpiredError: it is restarted). A 403 to the bearer is asked once more with a fresh token,
 * then is ExportRefusedError (restarted too, a bounded number of times in a row). A 401/403 to an unsigned URL sent
 * without the bearer (the manifest put the file on another origin, said no token is needed, or a redirect led away) is
 * no expiry: a clear BRG_ERR_FHIR_EXPORT_FILE, the token never being sent there. (A server that signs in the path, not
 * the query, is taken for unsigned.)
 * Any other status is a BulkHttpError for the shared retry policy.
 */
export async function requestExportFile(
  http: BulkHttp,
  file: ManifestFile,
  label: string,
  requiresAccessToken: boolean,
  signal: AbortSignal | undefined,
): Promise<{ reply: BulkReply; gzip: boolean }> {
  let url = file.url;
  let withBearer = sendsBearer(http, requiresAccessToken, url);
  // The manifest itself names another host for a file that needs the token, and the URL carries no signature of its
  // own (a blob store's signed URL has its authorisation in its query): a 401/403 there is the token the bridge will
  // not send to another host, not an expiry.
  const tokenWithheld = requiresAccessToken && !withBearer && URL.canParse(url) && new URL(url).search === '';
  let reply: BulkReply;
  for (let redirects = 0; ; redirects++) {
    // Export files are PHI: never over plain http to another machine, whether the manifest or a redirect names it.
    if (!isSecureOrLocal(url)) throw exportFileError(`${label} is served over plain http from ${safeOrigin(url)}; export files must come over https`, 0);
    reply = await http.send({
      method: 'GET',
      url,
      what: label,
      bearer: withBearer,
      renewOnForbidden: true,
      signal,
      headers: { accept: 'application/fhir+ndjson', 'accept-encoding': 'gzip' },
    });
    const location = REDIRECTS.has(reply.status) ? headerOf(reply.headers, 'location') : undefined;
    if (location === undefined) break;
    await reply.body.dump();
    if (redirects >= MAX_FILE_REDIRECTS || !URL.canParse(location, url)) {
      throw exportFileError(`${label} redirected more than ${MAX_FILE_REDIRECTS} times, or to an unreadable location`, reply.status);
    }
    url = new URL(location, url).toString();
    // Never a token to another origin, nor back once the file left the FHIR server.
    withBearer = sendsBearer(http, withBearer, url);
  }
  if (tokenWithheld && (reply.status === 401 || reply.status === 403)) {
    await reply.body.dump();
    throw new FhirError(
      'BRG_ERR_FHIR_EXPORT_FILE',
      `${label} is on ${safeOrigin(file.url)}, not on the FHIR server (${http.origin}), and answered HTTP ${reply.status} without the token; the bridge sends its token only to the FHIR server. Ask the EHR team to serve export files from the FHIR server, or from signed URLs that need no token.`,
      { status: reply.status, resourceType: 'export' },
    );
  }
  const refusedWithoutToken = !withBearer && (reply.status === 401 || reply.status === 403);
  // Only a URL that carries its own authorisation (a signature in its query) can expire; one without is refused for
  // good (the manifest said no token is needed, or a redirect led to another host): an export started again would only
  // be refused the same way.
  if (refusedWithoutToken && URL.canParse(url) && new URL(url).search === '') {
    await reply.body.dump();
    const redirected = url === file.url ? '' : `, redirected to ${safeOrigin(url)},`;
    const why = requiresAccessToken
      ? `the bridge sends its token only to the FHIR server (${http.origin})`
      : 'the manifest says its files need no token (requiresAccessToken: false)';
    throw new FhirError(
      'BRG_ERR_FHIR_EXPORT_FILE',
      `${label}${redirected} answered HTTP ${reply.status} without the token, and its URL carries no signature: ${why}. Ask the EHR team to serve export files from the FHIR server with requiresAccessToken: true, or from signed URLs that need no token.`,
      { status: reply.status, resourceType: 'export' },
    );
  }
  if (withBearer && reply.status === 403) {
    // A body too large to be an OperationOutcome (or one that does not inflate) is not read: the status says enough.
    const body = await http.readBody(reply).then(
      (data) => ({ said: describeAnswer(data), unquoted: textNotQuoted(data, IN_SERVER_LOG) }),
      () => ({ said: 'a body that was not read', unquoted: '' }),
    );
    throw new ExportRefusedError(label, file.type, body.said, body.unquoted);
  }
  const expiredSignature = refusedWithoutToken;
  if (reply.status === 404 || reply.status === 410 || expiredSignature) {
    await reply.body.dump();
    throw new ExportExpiredError(reply.status, label);
  }
  if (reply.status > 200 && reply.status < 300) {
    // A 2xx other than 200 (a rewriting proxy's 203, a 206 range) carries export lines: never read into an error.
    await reply.body.dump();
    throw exportFileError(`${label} answered HTTP ${reply.status} instead of 200; its body was not read`, reply.status);
  }
  if (reply.status !== 200) throw new BulkHttpError(reply.status, reply.headers, await http.readBody(reply));
  const encoding = (headerOf(reply.headers, 'content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'gzip' && encoding !== 'identity') {
    reply.body.destroy();
    throw exportFileError(`${label} came with Content-Encoding ${encoding.slice(0, 20)}; only gzip was accepted`, 200);
  }
  return { reply, gzip: encoding === 'gzip' };
}

/** Downloads one file to `path` (via `path.part`, renamed when complete); retried whole under the shared policy. */
export async function downloadFile(
  http: BulkHttp,
  file: ManifestFile,
  label: string,
  path: string,
  requiresAccessToken: boolean,
  signal?: AbortSignal,
): Promise<LocalFile> {
  const part = `${path}.part`;
  try {
    return await http.withRetries(
      `FHIR export download of ${label}`,
      async () => {
        const { reply, gzip: labelled } = await requestExportFile(http, file, label, requiresAccessToken, signal);
        let bytes = 0;
        // Labelled by Content-Encoding, or known by its first bytes (a blob store's `.ndjson.gz` served as
        // application/gzip), as downloads.ts decides for the output files.
        let gzip = labelled;
        // flush: the bytes are on disk before the checkpoint says the file is complete.
        const out = createWriteStream(part, { mode: 0o600, flush: true });
        let refused: unknown;
        out.on('error', (error) => (refused = error));
        try {
          await pipeline(
            reply.body,
            async function* count(source: AsyncIterable<Buffer>) {
              for await (const chunk of source) {
                if (bytes === 0 && !gzip && isGzipStart(chunk)) gzip = true;
                bytes += chunk.length;
                yield chunk;
              }
            },
            out,
          );
        } catch (error) {
          // The file's own failure (a full disk) is this machine's, not the server's: not retried as a network error.
          throw error === refused ? localDownloadError(part, error) : error;
        }
        await onDisk(path, () => renameSync(part, path));
        return { bytes, gzip };
      },
      signal,
    );
  } finally {
    rmSync(part, { force: true });
  }
}

/** What a download the machine could not write leaves: the export, and the files already here, for the next run. */
const DOWNLOAD_KEPT = 'nothing of this run was pushed; the export is kept, and the next run downloads only the files not yet here.';

/**
 * A download's file written to local disk; the machine's refusal (a full disk, a read-only directory) comes out as
 * BRG_ERR_STATE naming it. Left as it came, its errno code (ENOSPC, EACCES) passed for a network error: the file was
 * fetched again from the FHIR server under the retry policy, then reported as the server's failure.
 */
export function onDisk<T>(path: string, write: () => T | Promise<T>): Promise<T> {
  return writingToAsync(path, DOWNLOAD_KEPT, write);
}

function localDownloadError(path: string, cause: unknown): BridgeError {
  return localWriteError(path, cause, DOWNLOAD_KEPT);
}

/** True when the local copy is there with the size the checkpoint recorded. */
export function isComplete(path: string, local: LocalFile | undefined): boolean {
  if (!local) return false;
  try {
    return statSync(path).size === local.bytes;
  } catch {
    return false;
  }
}

/**
 * An export file's lines (local or still arriving); a line too long (refused as its bytes arrive, before it is decoded)
 * or a broken gzip stream stops the run naming the file and the line, never its text.
 */
export async function* exportFileLines(bytes: AsyncIterable<Buffer>, label: string): AsyncGenerator<NdjsonLines> {
  try {
    yield* ndjsonLines(bytes, MAX_LINE_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof RangeError) {
      throw exportFileError(
        `${label}: ${error.message}, far more than any one resource (a few KB); it was not read`,
        200,
        "Nothing of this run was pushed. A file without line ends is a broken export: report it to the EHR team. A resource this large on purpose (an attachment, a photo) cannot be read within the bridge's memory: leave its type out of source.types (its lookups then go over FHIR).",
      );
    }
    if (error instanceof NotUtf8Error) throw exportFileError(`${label}: ${error.message}`, 200);
    if (typeof code === 'string' && code.startsWith('Z_')) throw exportFileError(`${label} is not a valid gzip stream (${code})`, 200);
    throw error;
  }
}

/**
 * A gzip stream's first bytes (1f 8b). No NDJSON line starts with 0x1f (a control character), so a compressed file
 * served without Content-Encoding (a blob store's `.ndjson.gz`, application/gzip) is known by them.
 */
export function isGzipStart(chunk: Buffer): boolean {
  return chunk.length > 0 && chunk[0] === 0x1f && (chunk.length < 2 || chunk[1] === 0x8b);
}

/** The lines of a local file, a chunk at a time, inflated when it came gzip-compressed. */
export async function* localLines(path: string, local: LocalFile, label: string): AsyncGenerator<NdjsonLines> {
  // A plain file is read into one reused buffer (fileChunks: no new external memory per chunk, which V8 pays for with
  // full GCs); a compressed one through zlib.
  // An empty file has no lines, even one that came under Content-Encoding gzip (downloads.ts says why).
  const raw = local.gzip && local.bytes > 0 ? createReadStream(path, { highWaterMark: 1 << 20 }) : undefined;
  const source: AsyncIterable<Buffer> | Readable = raw ? raw.pipe(createGunzip({ chunkSize: 1 << 20 })) : fileChunks(path);
  if (raw) raw.on('error', (error) => (source as Readable).destroy(error));
  try {
    yield* exportFileLines(source as AsyncIterable<Buffer>, label);
  } finally {
    if (raw) {
      (source as Readable).destroy();
      raw.destroy();
    }
  }
}

/**
 * One line as a resource of `type`: JSON, an object, and that resourceType. Anything else stops the run naming the
 * file and line (never the line's text: it may be PHI).
 */
export function parseLine<T>(text: string, type: string, label: string, line: number): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw exportFileError(`${label}, line ${line}: not valid JSON`, 200);
  }
  const resourceType = (value as { resourceType?: unknown } | null)?.resourceType;
  if (resourceType !== type) {
    const found = typeof resourceType === 'string' ? `a ${resourceType.slice(0, 64)}` : 'no resourceType';
    throw exportFileError(`${label}, line ${line}: ${found} in a file of ${type}`, 200);
  }
  return value as T;
}

/** `advice`: what to do, when it is not the default (the file is not what its manifest says: the EHR team's to fix). */
export function exportFileError(
  message: string,
  status: number,
  advice = 'The file is not what the manifest says; nothing of this run was pushed. Report it to the EHR team.',
): FhirError {
  return new FhirError('BRG_ERR_FHIR_EXPORT_FILE', `${message}. ${advice}`, {
    status,
    resourceType: 'export',
  });
}
