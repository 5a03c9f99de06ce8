/**
 * A strict SMART Bulk Data v2 `$export` for the sandbox FHIR server, over its backend's data: kick-off only with
 * exactly `Accept: application/fhir+json` and `Prefer: respond-async` and a bearer (GET with `_type`/`_since`, or POST
 * with a Parameters body), types it cannot export refused with an OperationOutcome naming them; 202 + Retry-After +
 * X-Progress while "processing" (a number of polls); then the manifest, paged when asked, with an error file when asked;
 * files as NDJSON (gzip when accepted), bearer-protected when requiresAccessToken, expiring (410) after a while or on
 * request, refused (403, whatever the token) on request, optionally on a second origin (a blob store with signed URLs,
 * no bearer); DELETE of the status URL ends a job. Settings are live: a test changes them between or during runs. Transient 5xx and 429 on the status URL come
 * from the server's FaultPlan (`status` faults answer a `transient` OperationOutcome).
 * See: https://hl7.org/fhir/uv/bulkdata/export.html
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../clock.js';
import { type ExportFileSpec, fileResources, planFiles, streamNdjson } from './bulk-export-files.js';
import type { FhirBackend } from './fhir-backend.js';
import { EPIC_OUTCOME_SYSTEM } from './fhir-faults.js';
import { readTextBody } from './http-body.js';
import { scopeAllows } from './scopes.js';

export interface BulkExportSettings {
  /** Polls answered 202 before the manifest. Default 1. */
  processingPolls: number;
  /** Retry-After on a 202, e.g. '1' or an HTTP-date; undefined sends none. Default '1'. */
  retryAfter: string | undefined;
  requiresAccessToken: boolean;
  /** Compress files when the client accepts gzip. Default true. */
  gzip: boolean;
  /** Compressed files go without Content-Encoding (application/gzip), as a blob store serves `.ndjson.gz`. Default false. */
  gzipUnlabelled: boolean;
  /** Files answer 410 this long after the manifest was first served. Default 1 h. */
  fileTtlMs: number;
  /** The next this-many jobs kicked off serve 410 for every file. Default 0. */
  expiredJobs: number;
  /**
   * The next this-many jobs kicked off answer 403 for every file on the FHIR server, with a valid bearer too: a server
   * that refuses the files of an export it no longer serves (or a client it no longer lets read them) rather than
   * answering 410. Default 0.
   */
  forbiddenJobs: number;
  resourcesPerFile: number;
  /** Outputs per manifest page; 0 = one page. Default 0. */
  outputsPerManifestPage: number;
  /** OperationOutcome lines in an error file; 0 = no error file. Default 0. */
  errorLines: number;
  /** Types the server exports. */
  types: string[];
  groupIds: string[];
  /** Serve file URLs on a second origin (signed, no bearer), like a cloud blob store; expired, they answer 403 as one does. */
  foreignFiles: boolean;
  /**
   * With foreignFiles: the URLs carry no signature, and the second origin wants the bearer (401 without it), as a
   * second FHIR host would. The bridge sends its token only to the FHIR server.
   */
  foreignFilesUnsigned: boolean;
  /**
   * The files on the FHIR server want the bearer even when the manifest says requiresAccessToken: false (a server
   * whose manifest and file route disagree): a fault, off by default.
   */
  filesWantToken: boolean;
  /** List files on the FHIR server's origin that answer 302 to their signed URL on the second origin. */
  redirectFiles: boolean;
  /** Name a status URL on the second origin in the kick-off's Content-Location (a proxy rewriting it). */
  foreignStatus: boolean;
  /** Write a line of another resourceType at this line of the first file of this type. */
  badLine: { type: string; line: number } | undefined;
  /**
   * The first file of this type ends after `lines` lines at a line end, framed by the connection's close, while the
   * manifest's `count` says how many it holds (a server or proxy that stops early; no framing or gzip check catches it).
   */
  shortFile: { type: string; lines: number } | undefined;
  /** Wait before answering each file (real time). */
  fileDelayMs: number;
  /** The status URL answers 500 with a non-transient OperationOutcome: the export failed. */
  failJobs: boolean;
  /** The status files answer with (their NDJSON body unchanged): 203 is what a rewriting proxy sends. Default 200. */
  fileStatus: number;
  /**
   * List a file of no resources (count 0) for each requested type that has none, and an error file even when there
   * is no error, as a server listing everything does; and send such a file as no bytes at all, under Content-Encoding
   * gzip too (some servers send an empty body, not a gzip stream of nothing). Default false.
   */
  emptyFiles: boolean;
  /**
   * Words added to the text of the export's refusals and failures (a refused type, a failed job) and of its error-file
   * lines, in diagnostics, details.text and an Epic coding's display: a test's stand-in for the patient's name or MRN
   * a real server may write there. Default none.
   */
  outcomeWords: string | undefined;
}

export const DEFAULT_BULK_SETTINGS: Readonly<BulkExportSettings> = {
  processingPolls: 1,
  retryAfter: '1',
  requiresAccessToken: true,
  filesWantToken: false,
  gzip: true,
  gzipUnlabelled: false,
  fileTtlMs: 3_600_000,
  expiredJobs: 0,
  forbiddenJobs: 0,
  resourcesPerFile: 50_000,
  outputsPerManifestPage: 0,
  errorLines: 0,
  foreignFiles: false,
  foreignFilesUnsigned: false,
  redirectFiles: false,
  foreignStatus: false,
  badLine: undefined,
  shortFile: undefined,
  fileDelayMs: 0,
  failJobs: false,
  fileStatus: 200,
  emptyFiles: false,
  outcomeWords: undefined,
  types: ['AuditEvent', 'Patient', 'Practitioner', 'PractitionerRole', 'Encounter', 'Location', 'Organization'],
  groupIds: ['sandbox-all'],
};

export interface BulkExportLog {
  readonly kickoffs: Array<{
    readonly jobId: string;
    readonly method: string;
    readonly level: string;
    readonly types: string[];
    readonly since: string | undefined;
  }>;
  readonly polls: Array<{ readonly jobId: string; readonly status: number; readonly token: string | undefined }>;
  readonly downloads: Array<{
    readonly jobId: string;
    readonly file: string;
    readonly status: number;
    readonly authorization: boolean;
    readonly gzip: boolean;
    readonly origin: 'fhir' | 'foreign';
  }>;
  readonly deletes: string[];
  /** Manifests (and manifest pages) served. */
  readonly manifests: Array<{ readonly jobId: string; readonly page: number; readonly transactionTime: string }>;
}

/** A reply the FHIR server sends as JSON, or streams itself. */
export interface BulkReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  stream?: (res: ServerResponse) => Promise<void>;
}

/** A valid bearer, and the scope its token grants when it says (undefined: every type). */
export interface BulkGrant {
  readonly token: string;
  readonly scope?: string;
}

export interface SandboxBulkExport {
  readonly settings: BulkExportSettings;
  readonly log: BulkExportLog;
  /** Answers a bulk route (path below the FHIR base), or undefined when the path is not one. */
  /**
   * @param grant - the request's valid bearer and, when the token carries one, its granted scope (enforced per type, as
   *   the FHIR server enforces it on searches); undefined for no valid bearer.
   */
  route(req: IncomingMessage, path: string, url: URL, grant: (req: IncomingMessage) => BulkGrant | undefined): Promise<BulkReply | undefined>;
  close(): Promise<void>;
}

interface Job {
  readonly id: string;
  readonly request: string;
  readonly types: string[];
  readonly since: number | undefined;
  readonly transactionTime: string;
  readonly expired: boolean;
  /** Its files on the FHIR server answer 403 whatever the token (forbiddenJobs). */
  readonly forbidden: boolean;
  polls: number;
  files?: ExportFileSpec[];
  completedAtMs?: number;
  deleted: boolean;
  /** The signatures its signed file URLs were given (manifests, redirects): a blob store serves only those. */
  readonly signatures: Set<string>;
}

const OUTPUT_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export function createBulkExport(options: {
  backend: FhirBackend;
  origin: string;
  prefix: string;
  clock?: Clock;
  settings?: Partial<BulkExportSettings>;
}): SandboxBulkExport {
  const clock = options.clock ?? systemClock;
  const settings: BulkExportSettings = {
    ...DEFAULT_BULK_SETTINGS,
    types: [...DEFAULT_BULK_SETTINGS.types],
    groupIds: [...DEFAULT_BULK_SETTINGS.groupIds],
    ...options.settings,
  };
  const log: BulkExportLog = { kickoffs: [], polls: [], downloads: [], deletes: [], manifests: [] };
  const jobs = new Map<string, Job>();
  const base = options.origin + options.prefix;
  let foreign: { server: Server; origin: string } | undefined;

  const kickOff = async (req: IncomingMessage, path: string, url: URL, token: string | undefined, scope: string | undefined): Promise<BulkReply> => {
    if (req.headers.accept !== 'application/fhir+json')
      return invalid(`Accept must be exactly application/fhir+json, got "${String(req.headers.accept ?? '')}"`);
    if (req.headers.prefer !== 'respond-async') return invalid(`Prefer must be exactly respond-async, got "${String(req.headers.prefer ?? '')}"`);
    if (!token) return unauthorised();
    const group = /^\/Group\/([^/]+)\/\$export$/.exec(path)?.[1];
    if (group !== undefined && !settings.groupIds.includes(decodeURIComponent(group)))
      return { status: 404, body: outcome('not-found', `Group/${group} is not known`) };
    const params = req.method === 'POST' ? await parametersOf(req) : url.searchParams;
    if (params instanceof Error) return invalid(params.message);
    for (const key of new Set(params.keys()))
      if (!['_type', '_since', '_outputFormat'].includes(key)) return { status: 400, body: outcome('not-supported', `Parameter ${key} is not supported`) };
    const format = params.get('_outputFormat');
    if (format !== null && !OUTPUT_FORMATS.has(format)) return { status: 400, body: outcome('not-supported', `_outputFormat ${format} is not supported`) };
    const types = (params.get('_type') ?? settings.types.join(','))
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const refused = types.filter((type) => !settings.types.includes(type));
    if (refused.length > 0)
      return { status: 400, body: worded('not-supported', `Resource type ${refused.join(', ')} is not available for export`, settings.outcomeWords) };
    // As the FHIR server's searches: a type the token's scope does not grant is refused (Epic: the API is not on the
    // app record), and a Group's export needs the Group itself.
    const ungranted = scope === undefined ? [] : [...types, ...(group === undefined ? [] : ['Group'])].filter((type) => !scopeAllows(scope, type, 'search'));
    if (ungranted.length > 0) return insufficientScope(`The access token's scope does not include exporting ${ungranted.join(', ')}`);
    const since = params.get('_since') ?? undefined;
    if (since !== undefined && (!INSTANT.test(since) || Number.isNaN(Date.parse(since)))) return invalid(`_since must be a FHIR instant, got "${since}"`);
    const id = randomUUID();
    const expired = settings.expiredJobs > 0;
    if (expired) settings.expiredJobs -= 1;
    const forbidden = settings.forbiddenJobs > 0;
    if (forbidden) settings.forbiddenJobs -= 1;
    jobs.set(id, {
      id,
      request: url.toString(),
      types,
      since: since === undefined ? undefined : Date.parse(since),
      transactionTime: new Date(clock.now()).toISOString(),
      expired,
      forbidden,
      polls: 0,
      deleted: false,
      signatures: new Set(),
    });
    log.kickoffs.push({
      jobId: id,
      method: req.method ?? 'GET',
      level: group !== undefined ? 'group' : path.startsWith('/Patient') ? 'patient' : 'system',
      types,
      since,
    });
    const statusBase = settings.foreignStatus ? await foreignOrigin() : base;
    return {
      status: 202,
      body: outcome('informational', 'Export accepted', 'information'),
      headers: { 'content-location': `${statusBase}/bulk/status/${id}` },
    };
  };

  const status = async (req: IncomingMessage, job: Job, token: string | undefined): Promise<BulkReply> => {
    if (req.method === 'DELETE') {
      job.deleted = true;
      log.deletes.push(job.id);
      return { status: 202, body: outcome('informational', 'Export deleted', 'information') };
    }
    log.polls.push({ jobId: job.id, status: 0, token });
    const answer = async (): Promise<BulkReply> => {
      if (settings.failJobs) return { status: 500, body: worded('processing', 'The export failed: the sandbox was asked to fail it', settings.outcomeWords) };
      if (job.polls < settings.processingPolls) {
        job.polls += 1;
        const progress = `${Math.round((100 * job.polls) / (settings.processingPolls + 1))}% of the export processed`;
        return {
          status: 202,
          body: outcome('informational', 'In progress', 'information'),
          headers: { 'x-progress': progress, ...(settings.retryAfter !== undefined ? { 'retry-after': settings.retryAfter } : {}) },
        };
      }
      return manifest(job, 1);
    };
    const reply = await answer();
    const last = log.polls[log.polls.length - 1];
    if (last) log.polls[log.polls.length - 1] = { ...last, status: reply.status };
    return reply;
  };

  const manifest = async (job: Job, page: number): Promise<BulkReply> => {
    if (!job.files) {
      job.files = await planFiles(
        options.backend,
        job.types,
        { since: job.since, until: Date.parse(job.transactionTime) },
        Math.max(1, settings.resourcesPerFile),
        settings.emptyFiles,
      );
      job.completedAtMs = clock.now();
    }
    const fileBase = settings.foreignFiles ? `${await foreignOrigin()}/blob/${job.id}` : `${base}/bulk/file/${job.id}`;
    const sign = settings.foreignFiles && !settings.foreignFilesUnsigned ? `?sig=${signature(job)}` : '';
    const all = job.files.map((spec, n) => ({ type: spec.type, url: `${fileBase}/${n}${sign}`, count: spec.count }));
    const per = settings.outputsPerManifestPage > 0 ? settings.outputsPerManifestPage : Math.max(1, all.length);
    const pages = Math.max(1, Math.ceil(all.length / per));
    const error = page === 1 && (settings.errorLines > 0 || settings.emptyFiles) ? [{ type: 'OperationOutcome', url: `${fileBase}/error${sign}` }] : [];
    log.manifests.push({ jobId: job.id, page, transactionTime: job.transactionTime });
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: {
        transactionTime: job.transactionTime,
        request: job.request,
        requiresAccessToken: settings.requiresAccessToken,
        output: all.slice((page - 1) * per, page * per),
        error,
        deleted: [],
        ...(page < pages ? { link: [{ relation: 'next', url: `${base}/bulk/manifest/${job.id}/${page + 1}` }] } : {}),
      },
    };
  };

  /** A new signature for one of `job`'s file URLs, remembered as issued. */
  const signature = (job: Job): string => {
    const sig = randomUUID();
    job.signatures.add(sig);
    return sig;
  };

  /** A blob store's refusal: text, as a blob store answers, not the JSON the FHIR side sends. */
  const blobError = (status: number, text: string): BulkReply => ({
    status,
    body: null,
    stream: async (res) => void res.writeHead(status, { 'content-type': 'text/plain' }).end(text),
  });

  /** A file of nothing as some servers send it: no bytes at all, under Content-Encoding gzip too. */
  const emptyFile = (gzip: boolean): BulkReply => {
    const headers = { 'content-type': 'application/fhir+ndjson', ...(gzip ? { 'content-encoding': 'gzip' } : {}) };
    return { status: 200, body: null, stream: async (res) => void res.writeHead(settings.fileStatus, headers).end() };
  };

  const file = async (
    req: IncomingMessage,
    job: Job | undefined,
    name: string,
    token: string | undefined,
    where: 'fhir' | 'foreign',
    scope?: string,
  ): Promise<BulkReply> => {
    const gzip = settings.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const record = (status: number): void =>
      void log.downloads.push({ jobId: job?.id ?? '?', file: name, status, authorization: req.headers.authorization !== undefined, gzip, origin: where });
    if (!job || job.deleted || !job.files) {
      record(404);
      return { status: 404, body: outcome('not-found', 'No such export file') };
    }
    if (where === 'fhir' && (settings.requiresAccessToken || settings.filesWantToken) && !token) {
      record(401);
      return unauthorised();
    }
    if (where === 'fhir' && job.forbidden) {
      record(403);
      return { status: 403, body: outcome('forbidden', 'The export files are not available to this client') };
    }
    if (where === 'foreign' && settings.foreignFilesUnsigned && !token) {
      record(401);
      return unauthorised();
    }
    if (where === 'foreign' && !settings.foreignFilesUnsigned) {
      // A signed URL is its own authorisation: a blob store refuses one whose signature it did not issue (dropped,
      // rewritten), and one that comes with a bearer too (S3: only one auth mechanism allowed).
      const sig = new URL(req.url ?? '/', 'http://blob').searchParams.get('sig');
      if (req.headers.authorization !== undefined) {
        record(400);
        return blobError(400, 'InvalidArgument: Only one auth mechanism allowed');
      }
      if (sig === null || !job.signatures.has(sig)) {
        record(403);
        return blobError(403, 'AuthenticationFailed: Signature did not match');
      }
    }
    if (job.expired || clock.now() > (job.completedAtMs ?? 0) + settings.fileTtlMs) {
      // A blob store answers a signed URL past its expiry 403, not 410 (S3 "Request has expired", Azure AuthenticationFailed).
      if (where === 'foreign') {
        record(403);
        // As text, the way a blob store answers, not the JSON the FHIR side sends.
        return {
          status: 403,
          body: null,
          stream: async (res) => void res.writeHead(403, { 'content-type': 'text/plain' }).end('AuthenticationFailed: Signed expiry time has passed'),
        };
      }
      record(410);
      return { status: 410, body: outcome('expired', 'The export files have expired; start a new export') };
    }
    if (where === 'fhir' && settings.redirectFiles) {
      record(302);
      return { status: 302, body: null, headers: { location: `${await foreignOrigin()}/blob/${job.id}/${name}?sig=${signature(job)}` } };
    }
    record(settings.fileStatus);
    if (settings.fileDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, settings.fileDelayMs));
    if (name === 'error' && settings.errorLines === 0) return emptyFile(gzip);
    if (name === 'error') {
      const lines = Array.from({ length: settings.errorLines }, (_, i) =>
        worded('processing', `Sandbox: resource ${i + 1} could not be exported`, settings.outcomeWords),
      );
      return { status: 200, body: null, stream: (res) => streamNdjson(res, [lines], { gzip, unlabelled: settings.gzipUnlabelled }) };
    }
    const spec = job.files[Number(name)];
    if (!spec || !/^\d+$/.test(name)) return { status: 404, body: outcome('not-found', 'No such export file') };
    if (where === 'fhir' && token !== undefined && scope !== undefined && !scopeAllows(scope, spec.type, 'search')) {
      return insufficientScope(`The access token's scope does not include reading ${spec.type}`);
    }
    if (spec.count === 0) return emptyFile(gzip);
    const first = job.files.findIndex((f) => f.type === spec.type) === Number(name);
    const badLine = settings.badLine?.type === spec.type && first ? settings.badLine.line : undefined;
    const endAfterLines = settings.shortFile?.type === spec.type && first ? settings.shortFile.lines : undefined;
    const selection = { since: job.since, until: Date.parse(job.transactionTime) };
    return {
      status: 200,
      body: null,
      stream: (res) =>
        streamNdjson(res, fileResources(options.backend, spec, selection), {
          gzip,
          badLine,
          endAfterLines,
          status: settings.fileStatus,
          unlabelled: settings.gzipUnlabelled,
        }),
    };
  };

  /** The FHIR server's bearer check, as handed to route(): the second origin's unsigned files use it too. */
  let checkBearer: ((req: IncomingMessage) => BulkGrant | undefined) | undefined;

  const foreignOrigin = async (): Promise<string> => {
    if (foreign) return foreign.origin;
    const server = createServer((req, res) => {
      const match = /^\/blob\/([^/]+)\/([^/?]+)/.exec(req.url ?? '');
      // An unsigned file wants the FHIR server's own bearer, checked as the FHIR side checks it; a signed one none.
      const token = settings.foreignFilesUnsigned ? checkBearer?.(req)?.token : undefined;
      void file(req, match ? jobs.get(match[1] ?? '') : undefined, match?.[2] ?? '', token, 'foreign').then((reply) => send(res, reply));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    foreign = { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    return foreign.origin;
  };

  return {
    settings,
    log,
    async route(req, path, url, grantOf) {
      checkBearer = grantOf;
      const grant = grantOf(req);
      const token = grant?.token;
      if (/^(\/Patient|\/Group\/[^/]+)?\/\$export$/.test(path)) {
        if (req.method !== 'GET' && req.method !== 'POST')
          return { status: 405, body: outcome('not-supported', `${req.method ?? ''} $export is not supported`) };
        return kickOff(req, path, url, token, grant?.scope);
      }
      const match = /^\/bulk\/(status|manifest|file)\/([^/]+)(?:\/([^/]+))?$/.exec(path);
      if (!match) return undefined;
      const [, kind, id = '', extra] = match;
      const job = jobs.get(id);
      if (kind === 'file') return file(req, job, extra ?? '', token, 'fhir', grant?.scope);
      if (!token) return unauthorised();
      if (!job || job.deleted) return { status: 404, body: outcome('not-found', 'No such export') };
      if (kind === 'status' && extra === undefined && (req.method === 'GET' || req.method === 'DELETE')) return status(req, job, token);
      if (kind === 'manifest' && req.method === 'GET' && /^\d+$/.test(extra ?? '') && job.files) return manifest(job, Number(extra));
      return { status: 404, body: outcome('not-found', 'No such export resource') };
    },
    async close() {
      if (!foreign) return;
      foreign.server.closeAllConnections();
      await new Promise<void>((resolve) => foreign?.server.close(() => resolve()));
    },
  };
}

/** `_type`, `_since`, `_outputFormat` of a POSTed Parameters resource, as query parameters. */
async function parametersOf(req: IncomingMessage): Promise<URLSearchParams | Error> {
  if (!String(req.headers['content-type'] ?? '').startsWith('application/fhir+json'))
    return new Error('A POST kick-off needs Content-Type application/fhir+json');
  let body: unknown;
  try {
    body = JSON.parse(await readTextBody(req, 64 * 1024, () => new Error('too large')));
  } catch {
    return new Error('The kick-off body is not a JSON Parameters resource');
  }
  const parameters =
    (body as { resourceType?: unknown; parameter?: unknown }).resourceType === 'Parameters' ? (body as { parameter?: unknown }).parameter : undefined;
  if (!Array.isArray(parameters)) return new Error('The kick-off body is not a Parameters resource');
  const params = new URLSearchParams();
  for (const p of parameters as Array<Record<string, unknown>>) {
    const value = p['valueString'] ?? p['valueInstant'] ?? p['valueCode'];
    if (typeof p['name'] === 'string' && typeof value === 'string') params.append(p['name'], value);
  }
  return params;
}

function outcome(code: string, text: string, severity = 'error'): Record<string, unknown> {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics: text, details: { text } }] };
}

/** `outcome`, with `words` (settings.outcomeWords) in its text and in the display of an Epic coding, when given. */
function worded(code: string, text: string, words: string | undefined): Record<string, unknown> {
  if (words === undefined) return outcome(code, text);
  const said = `${text}: ${words}`;
  const coding = [{ system: EPIC_OUTCOME_SYSTEM, code: '59100', display: words }];
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: said, details: { text: said, coding } }] };
}

function invalid(text: string): BulkReply {
  return { status: 400, body: outcome('invalid', text) };
}

function insufficientScope(text: string): BulkReply {
  return { status: 403, body: outcome('forbidden', text), headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' } };
}

function unauthorised(): BulkReply {
  return { status: 401, body: outcome('login', 'Access token missing, expired or revoked'), headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
}

function send(res: ServerResponse, reply: BulkReply): void {
  if (reply.stream) return void reply.stream(res).catch(() => res.destroy());
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, { 'content-type': 'application/fhir+json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...reply.headers });
  res.end(body);
}
