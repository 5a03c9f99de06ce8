/**
 * A Purview ingestion endpoint for the offline sandbox, checking the wire format as strictly as
 * docs/purview-protocol.md §8.1 lists it: `POST /api/signals?jobid=` (any case), a bearer token from the Entra emulator
 * with the ingestion audience (401 otherwise), a job owned by the token's app in the token's tenant (403 `jobId and
 * corresponding appId do not match.` otherwise: a multi-tenant app has one app id in every tenant), `multipart/form-data` with a quoted or unquoted boundary and exactly one part named `file`
 * (part header parsed leniently, §2.2), and a body in UTF-8 without BOM, CRLF-terminated lines, a header line on every
 * block naming every mandatory column of a connector schema and identical across the job. Malformed → 400 with the
 * reason. Accepted blocks are recorded per job, in arrival order, and faults can be programmed per request (§8.2) to
 * test that no block is ever lost.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { BridgeError } from '../errors.js';
import type { EntraEmulator } from './entra.js';
import { BodyTooLargeError, readBody } from './http-body.js';
import { createRowDigest, type RowDigest, type RowDigestValue } from './row-digest.js';
import { createSandboxCertificate, type SandboxCertificate } from './tls.js';

export interface AcceptedBlock {
  /** The part's filename (the service ignores it; recorded for tests). */
  readonly filename: string;
  readonly header: string;
  /** Data rows without their CRLF; empty when the emulator records counts only. */
  readonly rows: string[];
  readonly rowCount: number;
  /** Size of the file part in bytes. */
  readonly bytes: number;
  readonly delimiter: 'tab' | 'pipe' | 'comma';
}

export type IngestFault =
  | { kind: 'status'; status: number; body?: string; retryAfter?: string; statusMessage?: string }
  /** Records the block, then destroys the connection before answering (the client cannot know it was accepted). */
  | { kind: 'accept-then-reset' }
  /** Records the block, then answers `status` as a gateway does whose origin timed out after storing it (Front Door's 503). */
  | { kind: 'accept-then-status'; status: number }
  /** Waits before handling the request; if the client has gone meanwhile, nothing is recorded. */
  | { kind: 'delay'; ms: number }
  /**
   * Waits until `until` settles before handling the request, as `delay` does: a test holds a block in flight until
   * something else has happened (another process was refused), however loaded the machine.
   */
  | { kind: 'hold'; until: Promise<unknown> }
  /** Destroys the connection once the body is read, without recording it. */
  | { kind: 'reset-before-accept' }
  /**
   * Answers `status` as soon as the request's headers arrive, reads none of the body and closes the connection (a
   * gateway refusing early): nothing is recorded, and a body larger than the socket's buffers never goes out whole.
   */
  | { kind: 'status-before-body'; status: number };

export interface PurviewIngestOptions {
  readonly verifyAccessToken: EntraEmulator['verifyAccessToken'];
  readonly tls?: SandboxCertificate;
  /** Token audience required. Default INGESTION_RESOURCE. */
  readonly audience?: string;
  /**
   * 'rows' keeps every row (tests read them); 'count' keeps row counts only (benchmarks); 'digest' keeps counts and a
   * per-job digest of the rows (a million-row demo verifies exactly-once in constant memory). Default 'rows'.
   */
  readonly record?: 'rows' | 'count' | 'digest';
  /** Larger bodies get 413. Default 512 MiB. */
  readonly maxBodyBytes?: number;
}

export interface PurviewIngestEmulator {
  /** `https://127.0.0.1:<port>`, the ingestionBase to push to. */
  readonly baseUrl: string;
  readonly caPem: string;
  /**
   * A connector job of `schema` (its header must name that schema's mandatory columns, in a delimiter it takes); without
   * one, a header of either schema, for a test that does not care which. Never any first line: a block whose header
   * line is missing would otherwise set its first row as the job's header, pass, and have every correct block after
   * it refused.
   */
  registerJob(jobId: string, owner: JobOwner, schema?: IngestSchema): void;
  /** Blocks accepted for the job, in arrival order. */
  accepted(jobId: string): ReadonlyArray<AcceptedBlock>;
  /** Rows accepted for the job (counted in 'count' mode too). */
  acceptedRowCount(jobId: string): number;
  /**
   * Rows of the job's blocks stored while a fault kept the answer from the client (accept-then-reset,
   * accept-then-status): the most a correct client can have sent twice because of those faults.
   */
  lostAnswerRows(jobId: string): number;
  /** The job's digest of every row accepted (src/sandbox/row-digest.ts), in 'rows' and 'digest' modes. */
  rowDigest(jobId: string): RowDigestValue;
  /** Queues faults, each used by one request, first in first out; called with none, clears the queue. */
  injectFaults(...faults: IngestFault[]): void;
  /**
   * From now on, a block with a data row matching `pattern` is refused with 400 naming the row's line, every time (a
   * value the service will not take): a deterministic refusal, unlike a queued fault. Undefined clears it.
   */
  refuseRowsMatching(pattern: RegExp | undefined): void;
  /** Every request received, faulted or not. */
  readonly requests: number;
  close(): Promise<void>;
}

export const JOB_APP_MISMATCH = 'jobId and corresponding appId do not match.';

/**
 * The ingestion service's App ID URI, the audience its tokens must carry, stated here rather than taken from the
 * bridge (a wrong constant there must fail against the emulator, not pass): the resource Microsoft's push scripts use
 * for every cloud since their PR #15 (March 2025), docs/purview-protocol.md §1.3;
 * https://github.com/microsoft/m365-compliance-connector-sample-scripts. test/ops/emulator-constants.test.ts checks the
 * bridge's DEFAULT_RESOURCE against it.
 */
export const INGESTION_RESOURCE = 'https://microsoft.onmicrosoft.com/86dfdabb-5089-4a0c-880a-cfa5a790c5b1';

export type IngestSchema = 'epic' | 'healthcare';

/**
 * The connector schemas as Microsoft's connector pages state them (docs/purview-protocol.md §1): the mandatory
 * columns ("if any of the mandatory fields are missing in the text file, the file won't be validated") and the
 * delimiters each connector reads. Stated here, not taken from the bridge (test/ops/emulator-constants.test.ts).
 */
export const INGEST_SCHEMAS: Readonly<Record<IngestSchema, { mandatory: readonly string[]; delimiters: readonly AcceptedBlock['delimiter'][] }>> = {
  epic: {
    mandatory: [
      'ACCESS_LOG.ACCESS_TIME',
      'ACCESS_LOG_METRIC.METRIC_NAME',
      'PATIENT.PAT_FIRST_NAME',
      'PATIENT.PAT_LAST_NAME',
      'PATIENT.ADD_LINE_1',
      'PATIENT.CITY',
      'PATIENT.ZIP',
      'ZC_BTG_REASON.NAME',
      'EMP.SYSTEM_LOGIN',
    ],
    delimiters: ['tab', 'pipe'],
  },
  healthcare: {
    mandatory: [
      'Creation Time',
      'Event Name',
      'Patient First Name',
      'Patient Last Name',
      'Patient Address Line 1',
      'Patient City',
      'Patient Zip Code',
      'Restricted Access Reason',
      'Email Address (UPN) or SamAccountName',
    ],
    delimiters: ['tab', 'pipe', 'comma'],
  },
};

/** The block size the connector documentation describes (and the bridge sends at most): 100K rows. */
export const MAX_BLOCK_ROWS = 100_000;

/** The Entra app a connector job was created with, and the tenant it was created in. */
export interface JobOwner {
  readonly tenantId: string;
  readonly appId: string;
}

interface Job {
  readonly appId: string;
  readonly tenantId: string;
  readonly schema?: IngestSchema;
  header?: string;
  readonly blocks: AcceptedBlock[];
  readonly digest: RowDigest;
  /** Rows of blocks stored whose answer a fault kept from the client (lostAnswerRows). */
  lostAnswerRows: number;
}

interface IngestState {
  readonly options: PurviewIngestOptions;
  readonly jobs: Map<string, Job>;
  faults: IngestFault[];
  requests: number;
  readonly closing: AbortController;
  /** refuseRowsMatching's pattern. */
  refuseRows?: RegExp | undefined;
}

/** The 1-based line (the header is line 1) of the first data row matching `pattern`, or undefined. */
function matchingLine(content: Buffer, pattern: RegExp): number | undefined {
  const lines = content.toString('utf8').split('\r\n');
  for (let index = 1; index < lines.length; index += 1) {
    const line = lines[index] as string;
    pattern.lastIndex = 0;
    if (line !== '' && pattern.test(line)) return index + 1;
  }
  return undefined;
}

class Rejection extends Error {
  constructor(
    readonly status: number,
    reason: string,
    readonly statusMessage?: string,
  ) {
    super(reason);
  }
}

export async function startPurviewIngestEmulator(options: PurviewIngestOptions): Promise<PurviewIngestEmulator> {
  const tls = options.tls ?? (await createSandboxCertificate());
  const state: IngestState = { options, jobs: new Map(), faults: [], requests: 0, closing: new AbortController() };
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (request, response) => {
    handle(state, request, response).catch((error: unknown) => {
      const rejection = error instanceof Rejection ? error : new Rejection(500, 'unexpected emulator failure');
      if (!response.headersSent && !response.destroyed) respond(response, rejection.status, rejection.message, rejection.statusMessage);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caPem: tls.certPem,
    registerJob(jobId, { tenantId, appId }, schema) {
      if (!jobId || !appId || !tenantId) throw new BridgeError('BRG_ERR_INPUT_INVALID', 'registerJob: jobId, tenantId and appId are required.');
      state.jobs.set(jobId.toLowerCase(), { appId, tenantId, blocks: [], digest: createRowDigest(), lostAnswerRows: 0, ...(schema ? { schema } : {}) });
    },
    accepted: (jobId) => state.jobs.get(jobId.toLowerCase())?.blocks ?? [],
    acceptedRowCount: (jobId) => (state.jobs.get(jobId.toLowerCase())?.blocks ?? []).reduce((n, block) => n + block.rowCount, 0),
    lostAnswerRows: (jobId) => state.jobs.get(jobId.toLowerCase())?.lostAnswerRows ?? 0,
    rowDigest: (jobId) => state.jobs.get(jobId.toLowerCase())?.digest.value() ?? createRowDigest().value(),
    injectFaults(...faults) {
      if (faults.length === 0) state.faults = [];
      else state.faults.push(...faults);
    },
    refuseRowsMatching(pattern) {
      state.refuseRows = pattern;
    },
    get requests() {
      return state.requests;
    },
    close() {
      state.closing.abort();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function handle(state: IngestState, request: IncomingMessage, response: ServerResponse): Promise<void> {
  state.requests += 1;
  const fault = state.faults.shift();
  if (fault?.kind === 'status-before-body') {
    response.shouldKeepAlive = false;
    respond(response, fault.status, 'Service Unavailable');
    // Nothing more is read: the client's body stops at what the socket's buffers took.
    response.on('finish', () => request.socket.destroy());
    return;
  }
  const url = new URL(request.url ?? '/', 'https://127.0.0.1');
  // The body is always read first: answering early would make the client see a reset instead of the status.
  const limit = state.options.maxBodyBytes ?? 512 * 1024 * 1024;
  const body = await readBody(request, limit).catch((error: unknown) => {
    throw error instanceof BodyTooLargeError ? new Rejection(413, error.message) : error;
  });
  if (fault?.kind === 'reset-before-accept') return void request.socket.destroy();
  if (fault?.kind === 'delay' || fault?.kind === 'hold') {
    await (fault.kind === 'delay' ? sleep(fault.ms, state.closing.signal) : untilSettledOrClosing(fault.until, state.closing.signal));
    if (request.socket.destroyed) return;
  }
  if (url.pathname !== '/api/signals') throw new Rejection(404, `no route ${url.pathname}`);
  if (request.method !== 'POST') throw new Rejection(405, `${request.method ?? '?'} is not allowed; POST the file`);
  // docs/purview-protocol.md §2.2: the body's length is sent up front, never chunked.
  if (request.headers['transfer-encoding'] !== undefined || request.headers['content-length'] === undefined) {
    throw new Rejection(411, 'the body must be sent with a Content-Length, not chunked');
  }
  const job = authorize(state, url, request);
  const file = parseMultipart(body, request.headers['content-type'] ?? '');
  const { block, body: rows } = checkBlock(file.content, file.filename, job, state.options.record ?? 'rows');
  // A status fault stands for Purview failing this request, but the request is checked first all the same: a test that
  // injects faults still proves every request the bridge sent (retries included) was valid, and a broken one is
  // answered as Purview would, not hidden behind the injected status.
  if (fault?.kind === 'status') return respond(response, fault.status, fault.body ?? '', fault.statusMessage, fault.retryAfter);
  const refusedLine = state.refuseRows ? matchingLine(file.content, state.refuseRows) : undefined;
  if (refusedLine !== undefined) return respond(response, 400, `The file could not be validated: line ${refusedLine} has a value the job does not accept.`);
  job.header ??= block.header;
  job.blocks.push(block);
  // Only a stored block's rows are in the digest: a refused one's never reached the job.
  for (const row of rows) job.digest.add(row);
  if (fault?.kind === 'accept-then-reset' || fault?.kind === 'accept-then-status') job.lostAnswerRows += block.rowCount;
  if (fault?.kind === 'accept-then-reset') return void request.socket.destroy();
  if (fault?.kind === 'accept-then-status') return respond(response, fault.status, 'The origin did not answer in time');
  respond(response, 200, '');
}

function authorize(state: IngestState, url: URL, request: IncomingMessage): Job {
  const jobId = [...url.searchParams].find(([name]) => name.toLowerCase() === 'jobid')?.[1];
  if (!jobId) throw new Rejection(400, 'the jobid query parameter is missing');
  // The script's `"Bearer $token "` quirk (docs/purview-protocol.md §2.2): trailing spaces are trimmed.
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
  const claims = bearer === undefined ? undefined : state.options.verifyAccessToken(bearer);
  if (!claims) throw new Rejection(401, 'a valid bearer token from Entra ID is required');
  const audience = state.options.audience ?? INGESTION_RESOURCE;
  if (claims.audience !== audience) throw new Rejection(401, `the token audience ${claims.audience} is not ${audience}`);
  const job = state.jobs.get(jobId.toLowerCase());
  const owned = job && job.appId.toLowerCase() === claims.appId.toLowerCase() && job.tenantId.toLowerCase() === claims.tenantId.toLowerCase();
  if (!job || !owned) throw new Rejection(403, JOB_APP_MISMATCH, JOB_APP_MISMATCH);
  return job;
}

/**
 * RFC 7578 body with one part named `file`; parameters quoted or not, spaces around `=` tolerated
 * (docs/purview-protocol.md §2.2).
 */
function parseMultipart(body: Buffer, contentType: string): { filename: string; content: Buffer } {
  if (!/^multipart\/form-data\s*;/i.test(contentType)) throw new Rejection(400, `content-type must be multipart/form-data, got "${contentType}"`);
  const boundary = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const delimiter = `--${boundary?.[1] ?? boundary?.[2] ?? ''}`;
  if (delimiter === '--') throw new Rejection(400, 'the multipart content-type has no boundary');
  let pos = body.indexOf(delimiter);
  if (pos === -1) throw new Rejection(400, 'the body does not contain the boundary');
  const parts: Array<{ headers: string; content: Buffer }> = [];
  for (;;) {
    pos += delimiter.length;
    if (body.toString('latin1', pos, pos + 2) === '--') break;
    if (body.toString('latin1', pos, pos + 2) !== '\r\n') throw new Rejection(400, 'a multipart boundary is not followed by CRLF');
    const headersEnd = body.indexOf('\r\n\r\n', pos + 2);
    const next = body.indexOf(`\r\n${delimiter}`, headersEnd + 4);
    if (headersEnd === -1 || next === -1) throw new Rejection(400, 'a multipart part is not closed by the boundary');
    parts.push({ headers: body.toString('utf8', pos + 2, headersEnd), content: body.subarray(headersEnd + 4, next) });
    pos = next + 2;
  }
  const named = parts.map((part) => ({ ...part, ...dispositionOf(part.headers) }));
  if (named.length !== 1 || named[0]?.name !== 'file') {
    throw new Rejection(400, `expected exactly one part named "file", got ${named.map((p) => `"${p.name ?? '?'}"`).join(', ') || 'none'}`);
  }
  return { filename: named[0].filename ?? '', content: named[0].content };
}

function dispositionOf(headers: string): { name?: string; filename?: string } {
  const line = headers.split('\r\n').find((h) => /^content-disposition\s*:/i.test(h));
  if (!line) return {};
  const pieces = line.slice(line.indexOf(':') + 1).split(';');
  // RFC 7578 §4.2: a form part's disposition is form-data, with one name.
  const type = (pieces[0] ?? '').trim().toLowerCase();
  if (type !== 'form-data') throw new Rejection(400, `a part's Content-Disposition is "${type.slice(0, 40)}", not form-data`);
  const params = new Map<string, string>();
  for (const piece of pieces.slice(1)) {
    const eq = piece.indexOf('=');
    if (eq === -1) continue;
    const key = piece.slice(0, eq).trim().toLowerCase();
    if (params.has(key)) throw new Rejection(400, `a part's Content-Disposition names "${key}" twice`);
    params.set(
      key,
      piece
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1'),
    );
  }
  const star = params.get('filename*');
  const filename = params.get('filename') ?? (star ? decodeURIComponent(star.replace(/^[^']*'[^']*'/, '')) : undefined);
  return { ...(params.has('name') ? { name: params.get('name') as string } : {}), ...(filename === undefined ? {} : { filename }) };
}

/** The block as the job would store it, and its rows for the digest (none in 'count' mode). */
function checkBlock(content: Buffer, filename: string, job: Job, record: 'rows' | 'count' | 'digest'): { block: AcceptedBlock; body: string[] } {
  if (content[0] === 0xef && content[1] === 0xbb && content[2] === 0xbf) throw new Rejection(400, 'the file starts with a UTF-8 byte order mark');
  if (!isUtf8(content)) throw new Rejection(400, 'the file is not valid UTF-8');
  const lines = countCrlfLines(content);
  const header = content.toString('utf8', 0, lines.headerEnd);
  if (header.length === 0) throw new Rejection(400, 'line 1 (the header) is empty');
  if (job.header !== undefined && header !== job.header) throw new Rejection(400, "the header line differs from the job's earlier blocks");
  const delimiter = header.includes('\t') ? 'tab' : header.includes('|') ? 'pipe' : header.includes(',') ? 'comma' : undefined;
  if (!delimiter) throw new Rejection(400, 'the header line has no tab, pipe or comma');
  if (lines.count < 2) throw new Rejection(400, 'the file has a header but no rows');
  if (lines.count - 1 > MAX_BLOCK_ROWS) throw new Rejection(400, `the block has ${lines.count - 1} rows; a block holds at most ${MAX_BLOCK_ROWS}`);
  checkConnectorHeader(header, delimiter, job.schema);
  checkFieldCounts(content, lines.headerEnd, delimiter);
  const body = record === 'count' ? [] : content.toString('utf8', lines.headerEnd + 2, content.length - 2).split('\r\n');
  const rows = record === 'rows' ? body : [];
  return { block: { filename, header, rows, rowCount: lines.count - 1, bytes: content.length, delimiter }, body };
}

const SCHEMA_NAMES = Object.keys(INGEST_SCHEMAS) as IngestSchema[];

/**
 * Line 1 is a connector header: it names every mandatory column of the job's schema, or of one of the schemas for a job
 * registered without one (a block's first line is always its header, whatever the test's job: docs/purview-protocol.md
 * §2.3, §5.2), in a delimiter that schema's connector reads.
 */
function checkConnectorHeader(header: string, delimiter: AcceptedBlock['delimiter'], schema: IngestSchema | undefined): void {
  // Names as written, case aside: a space or a quote around one (in a tab or pipe file, where nothing unquotes it), or a
  // BOM before one, makes another name, and the column is missing.
  const columns = new Set(splitLine(header, delimiter).map((column) => column.toLowerCase()));
  const candidates = schema ? [schema] : SCHEMA_NAMES;
  const lacking = candidates.map((name) => ({ name, missing: INGEST_SCHEMAS[name].mandatory.filter((column) => !columns.has(column.toLowerCase())) }));
  const named = lacking.find(({ missing }) => missing.length === 0)?.name;
  if (named === undefined) {
    const what = lacking.map(({ name, missing }) => `the mandatory ${name} column(s) ${missing.join(', ')}`).join('; or ');
    throw new Rejection(400, `the header line is missing or lacks mandatory columns: line 1 lacks ${what}`);
  }
  if (!INGEST_SCHEMAS[named].delimiters.includes(delimiter)) throw new Rejection(400, `the ${named} connector does not read ${delimiter}-separated files`);
}

/** Every row has the header's number of fields (a row with one more or one fewer puts values under other columns). */
function checkFieldCounts(content: Buffer, headerEnd: number, delimiter: AcceptedBlock['delimiter']): void {
  const expected = fieldCount(content, 0, headerEnd, delimiter);
  let line = 2;
  for (let start = headerEnd + 2; start < content.length; line++) {
    const end = content.indexOf(0x0d, start);
    const fields = fieldCount(content, start, end, delimiter);
    if (fields !== expected) throw new Rejection(400, `line ${line} has ${fields} field(s); the header has ${expected}`);
    start = end + 2;
  }
}

const DELIMITER_BYTES: Readonly<Record<AcceptedBlock['delimiter'], number>> = { tab: 0x09, pipe: 0x7c, comma: 0x2c };

/** Fields of content[start, end): delimiters + 1; for CSV, commas outside double quotes only (RFC 4180). */
function fieldCount(content: Buffer, start: number, end: number, delimiter: AcceptedBlock['delimiter']): number {
  const byte = DELIMITER_BYTES[delimiter];
  let fields = 1;
  if (delimiter !== 'comma') {
    for (let at = content.indexOf(byte, start); at !== -1 && at < end; at = content.indexOf(byte, at + 1)) fields += 1;
    return fields;
  }
  let quoted = false;
  for (let at = start; at < end; at++) {
    const c = content[at];
    if (c === 0x22) quoted = !quoted;
    else if (c === byte && !quoted) fields += 1;
  }
  return fields;
}

function splitLine(line: string, delimiter: AcceptedBlock['delimiter']): string[] {
  if (delimiter !== 'comma') return line.split(delimiter === 'tab' ? '\t' : '|');
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      out.push(field);
      field = '';
    } else field += c;
  }
  out.push(field);
  return out;
}

/** Counts lines, requiring CRLF after every one (the last included) and no CR elsewhere. */
function countCrlfLines(content: Buffer): { count: number; headerEnd: number } {
  let count = 0;
  let headerEnd = -1;
  let pos = 0;
  while (pos < content.length) {
    const lf = content.indexOf(0x0a, pos);
    if (lf === -1) throw new Rejection(400, `line ${count + 1} does not end with CRLF`);
    const cr = content.indexOf(0x0d, pos);
    if (cr !== lf - 1)
      throw new Rejection(400, `line ${count + 1} ${cr === -1 || cr > lf ? 'ends with LF alone' : 'holds a bare CR'}; lines must end with CRLF`);
    if (headerEnd === -1) headerEnd = lf - 1;
    count += 1;
    pos = lf + 1;
  }
  if (count === 0) throw new Rejection(400, 'the file is empty');
  return { count, headerEnd };
}

function respond(response: ServerResponse, status: number, body: string, statusMessage?: string, retryAfter?: string): void {
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) };
  if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
  if (statusMessage === undefined) response.writeHead(status, headers);
  else response.writeHead(status, statusMessage, headers);
  response.end(body);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** Resolves once `until` settles (either way) or the emulator closes. */
function untilSettledOrClosing(until: Promise<unknown>, closing: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (closing.aborted) return resolve();
    closing.addEventListener('abort', () => resolve(), { once: true });
    until.then(
      () => resolve(),
      () => resolve(),
    );
  });
}
