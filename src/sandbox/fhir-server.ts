/**
 * An Epic-shaped FHIR R4 server on 127.0.0.1 for tests and the demo: unauthenticated `/metadata` and
 * `.well-known/smart-configuration`, Bearer-protected search and read over a FhirBackend, searchset Bundles with
 * absolute `self`/`next` links, 400 for parameters it does not know (Epic rejects them; medplum would match nothing),
 * and a programmable FaultPlan (429, 503, slow answers, Epic 4113, foreign or looping `next` links, huge bodies, `_id`
 * lists honoured in part).
 * See: https://hl7.org/fhir/R4/http.html#search, https://hl7.org/fhir/smart-app-launch/conformance.html
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { Bundle, CapabilityStatementRestResource, FhirResource } from 'fhir/r4.js';
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { type BulkExportSettings, createBulkExport, type SandboxBulkExport } from './bulk-export.js';
import type { FhirBackend } from './fhir-backend.js';
import {
  breakTheGlassOutcome,
  createFaultPlan,
  type FaultAction,
  type FaultPlan,
  type FaultSource,
  searchExpiredOutcome,
  searchsetOutcomeEntry,
  writePaddedBundle,
} from './fhir-faults.js';
import { scopeAllows } from './scopes.js';

export type { FaultAction, FaultPlan, FaultRule, FiredFault } from './fhir-faults.js';

export interface FhirServerOptions {
  readonly backend: FhirBackend;
  /**
   * Whether the Bearer token is currently valid (the sandbox token server decides): false, true, or the grant with its
   * scope, which the server then enforces per resource type (403 insufficient_scope, as Epic answers an API that is not
   * on the app record).
   */
  readonly verifyAccessToken: (token: string) => boolean | { readonly scope: string };
  /** Advertised in smart-configuration and in the CapabilityStatement oauth-uris extension. */
  readonly tokenUrl: string;
  /** Default '/interconnect-fhir-oauth/api/FHIR/R4', the path of an Epic organisation's FHIR base. */
  readonly pathPrefix?: string;
  /** Default true; false leaves AuditEvent out of /metadata and refuses its search, like Epic's public server. */
  readonly listAuditEvent?: boolean;
  /** Default { name: 'Epic (bridge sandbox)', version: 'November 2026' }. */
  readonly software?: { name: string; version: string };
  /** `_count` when the client sends none. Default 100. */
  readonly defaultPageSize?: number;
  /** Largest `_count` honoured; larger requests are clamped. Default 1000. */
  readonly maxPageSize?: number;
  /**
   * Types served by read only: /metadata lists just `read` for them and their search answers 404, like the server of
   * issue #15.3. Default none.
   */
  readonly readOnlyTypes?: readonly string[];
  /**
   * Serve Location and Organization too (read and `_id`/`identifier` search), as a server offering the department
   * column's every type does. Default false: one that does not is the case the bridge must carry on through.
   */
  readonly departmentTypes?: boolean;
  /**
   * Most results one search of a type serves, as Epic caps a search (OperationOutcome 4127 "additional data may exist",
   * docs/epic-smart.md §6.3): a search that matches more serves its first `cap` alone, states that many as its total,
   * has no page past them, and carries the 4127 entry on every page. Paging does not help; only a narrower search does.
   * Default none.
   */
  readonly searchResultCaps?: Readonly<Record<string, number>>;
  /** The Bulk Data `$export` (src/sandbox/bulk-export.ts): initial settings, and the clock of its times. */
  readonly bulkExport?: Partial<BulkExportSettings> & { readonly clock?: Clock };
  /**
   * Compress JSON answers with gzip when the request accepts it, as Epic's servers (behind IIS) and most gateways do:
   * the client then reads what such a server sends, and holds pages to its size limit by their decoded size. Default false.
   */
  readonly gzip?: boolean;
}

export interface SandboxRequest {
  readonly method: string;
  readonly path: string;
  /** Query string without '?'. */
  readonly query: string;
  readonly status: number;
  /** The answer went gzip-compressed (FhirServerOptions.gzip, and the request accepted it). */
  readonly gzipped: boolean;
}

export interface SandboxFhirServer {
  readonly origin: string;
  readonly baseUrl: string;
  readonly faults: FaultPlan;
  readonly requests: ReadonlyArray<SandboxRequest>;
  /** The `$export` endpoints: live settings and what they served. */
  readonly bulk: SandboxBulkExport;
  close(): Promise<void>;
}

const DEFAULT_PREFIX = '/interconnect-fhir-oauth/api/FHIR/R4';
/** `_sid` is an opaque paging session id, only ever put there by the `stuck-next` fault. */
const PAGING = ['_count', '_offset', '_sid'];
const SEARCH_PARAMS: Readonly<Record<string, readonly string[]>> = {
  AuditEvent: ['date', '_lastUpdated', 'patient', 'agent', '_sort', '_summary', ...PAGING],
  Patient: ['_id', 'identifier', ...PAGING],
  Practitioner: ['_id', 'identifier', ...PAGING],
  PractitionerRole: ['_id', 'identifier', ...PAGING],
  // The department column's lookup. Location and Organization are served only with FhirServerOptions.departmentTypes:
  // a server that does not offer a department type is one of the cases the bridge must carry on through.
  Encounter: ['_id', 'identifier', ...PAGING],
};
const DEPARTMENT_TYPES = ['Location', 'Organization'] as const;

/** The search parameters of a type this server serves, or undefined when it serves no such type. */
function searchParamsOf(context: ServerContext, resourceType: string | undefined): readonly string[] | undefined {
  if (resourceType === undefined) return undefined;
  if (context.options.departmentTypes === true && (DEPARTMENT_TYPES as readonly string[]).includes(resourceType)) return ['_id', 'identifier', ...PAGING];
  return SEARCH_PARAMS[resourceType];
}

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Stream a padded 200 Bundle of this size instead of `body` (the huge-body fault). */
  huge?: { bytes: number; contentLength: boolean };
  /** Writes the answer itself (an export's NDJSON file). */
  stream?: (res: ServerResponse) => Promise<void>;
}

interface ServerContext {
  readonly options: FhirServerOptions;
  readonly prefix: string;
  readonly origin: string;
  readonly faults: FaultSource;
  readonly bulk: SandboxBulkExport;
}

export async function startFhirServer(options: FhirServerOptions): Promise<SandboxFhirServer> {
  const requests: SandboxRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const faults = createFaultPlan();
  let context: ServerContext | undefined;
  const server = createServer((req, res) => {
    if (!context) return void res.destroy();
    void handle(context, req, timers).then((reply) => {
      const url = new URL(req.url ?? '/', context?.origin);
      const gzipped = reply.stream === undefined && reply.huge === undefined && options.gzip === true && acceptsGzip(req);
      requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.search.slice(1), status: reply.status, gzipped });
      if (reply.stream) void reply.stream(res).catch(() => res.destroy());
      else if (reply.huge) void writePaddedBundle(res, reply.huge.bytes, reply.huge.contentLength).catch(() => res.destroy());
      else send(res, reply, gzipped);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const prefix = options.pathPrefix ?? DEFAULT_PREFIX;
  const { clock, ...bulkSettings } = options.bulkExport ?? {};
  const bulk = createBulkExport({ backend: options.backend, origin, prefix, settings: bulkSettings, ...(clock ? { clock } : {}) });
  context = { options, prefix, origin, faults, bulk };
  return {
    origin,
    baseUrl: origin + prefix,
    faults,
    requests,
    bulk,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      await bulk.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handle(context: ServerContext, req: IncomingMessage, timers: Set<NodeJS.Timeout>): Promise<Reply> {
  const url = new URL(req.url ?? '/', context.origin);
  const fault = context.faults.take(url.pathname + url.search);
  if (fault?.kind === 'status') {
    const headers: Record<string, string> = fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter };
    return { status: fault.status, body: outcome('transient', `Injected fault: HTTP ${fault.status}`), headers };
  }
  if (fault?.kind === 'gateway') {
    const status = fault.status;
    const headers: Record<string, string> = { 'content-type': 'text/html', ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }) };
    const page = `<html><head><title>${status} Gateway</title></head><body><h1>${status}</h1><p>The upstream server did not answer.</p></body></html>`;
    return { status, body: null, stream: async (res) => void res.writeHead(status, headers).end(page) };
  }
  if (fault?.kind === 'search-expired') return { status: 400, body: searchExpiredOutcome() };
  if (fault?.kind === 'break-the-glass') return { status: 403, body: breakTheGlassOutcome() };
  if (fault?.kind === 'ignore-param') url.searchParams.delete(fault.name);
  if (fault?.kind === 'partial-id-list') capIdList(url, fault.max);
  if (fault?.kind === 'huge-body') return { status: 200, body: null, huge: { bytes: fault.bytes, contentLength: fault.contentLength } };
  if (fault?.kind === 'delay') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, fault.ms);
      timers.add(timer);
    });
  }
  try {
    return await route(context, req, url, fault);
  } catch (error) {
    if (error instanceof BridgeError && error.code === 'BRG_ERR_INPUT_INVALID') return { status: 400, body: outcome('invalid', error.message) };
    return { status: 500, body: outcome('exception', 'Sandbox FHIR server error') };
  }
}

/** The partial-id-list fault: the request goes on with only the first `max` ids of its `_id` list. */
function capIdList(url: URL, max: number): void {
  const ids = url.searchParams.get('_id');
  if (ids !== null) url.searchParams.set('_id', ids.split(',').slice(0, max).join(','));
}

async function route(context: ServerContext, req: IncomingMessage, url: URL, fault: FaultAction | undefined): Promise<Reply> {
  if (!url.pathname.startsWith(context.prefix)) return { status: 404, body: outcome('not-found', `No FHIR base at ${url.pathname}`) };
  const bulk = await context.bulk.route(req, url.pathname.slice(context.prefix.length), url, (r) => {
    const grant = grantOf(context, r);
    const token = grant === false ? undefined : bearerOf(r);
    return token === undefined ? undefined : { token, ...(typeof grant === 'object' ? { scope: grant.scope } : {}) };
  });
  if (bulk) return bulk;
  if (req.method !== 'GET') return { status: 405, body: outcome('not-supported', `${req.method ?? ''} is not supported by the sandbox`) };
  const path = url.pathname.slice(context.prefix.length).replace(/\/+$/, '');
  if (path === '/metadata') return { status: 200, body: capabilityStatement(context) };
  if (path === '/.well-known/smart-configuration') return { status: 200, body: smartConfiguration(context) };
  const grant = grantOf(context, req);
  if (grant === false) {
    return { status: 401, body: outcome('login', 'Access token missing, expired or revoked'), headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
  }
  const [, resourceType, id, ...rest] = path.split('/');
  const allowed = searchParamsOf(context, resourceType);
  if (!resourceType || !allowed || rest.length > 0 || (resourceType === 'AuditEvent' && context.options.listAuditEvent === false)) {
    return { status: 404, body: outcome('not-supported', `The sandbox does not serve ${path}`) };
  }
  const interaction = id === undefined ? 'search' : 'read';
  if (typeof grant === 'object' && !scopeAllows(grant.scope, resourceType, interaction)) {
    return {
      status: 403,
      body: outcome('forbidden', `The access token's scope does not include ${interaction === 'read' ? 'reading' : 'searching'} ${resourceType}`),
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' },
    };
  }
  if (id !== undefined) return read(context, resourceType, id);
  if (context.options.readOnlyTypes?.includes(resourceType)) return { status: 404, body: outcome('not-supported', `${resourceType} search is not supported`) };
  return search(context, resourceType, url, allowed, fault);
}

function grantOf(context: ServerContext, req: IncomingMessage): boolean | { readonly scope: string } {
  const token = bearerOf(req);
  return token !== undefined && context.options.verifyAccessToken(token);
}

function bearerOf(req: IncomingMessage): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
}

async function read(context: ServerContext, resourceType: string, id: string): Promise<Reply> {
  const resource = await context.options.backend.read(resourceType, id);
  if (resource) return { status: 200, body: resource };
  if (await context.options.backend.wasRemoved?.(resourceType, id)) {
    return { status: 410, body: outcome('deleted', `${resourceType}/${id} was deleted`) };
  }
  return { status: 404, body: outcome('not-found', `${resourceType}/${id} is not known`) };
}

async function search(context: ServerContext, resourceType: string, url: URL, allowed: readonly string[], fault: FaultAction | undefined): Promise<Reply> {
  const query = new URLSearchParams(url.search);
  for (const key of new Set(query.keys())) {
    if (!allowed.includes(key)) return { status: 400, body: outcome('not-supported', `${resourceType} search parameter "${key}" is not supported`) };
  }
  const summary = query.get('_summary');
  if (summary !== null && summary !== 'count') return { status: 400, body: outcome('not-supported', `_summary=${summary} is not supported`) };
  for (const paging of ['_count', '_offset']) {
    const value = query.get(paging);
    if (value !== null && wholeNumber(value) === undefined) {
      return { status: 400, body: outcome('invalid', `${paging}=${value.slice(0, 40)} is not a whole number ≥ 0`) };
    }
  }
  const { defaultPageSize = 100, maxPageSize = 1000 } = context.options;
  const count = Math.min(maxPageSize, wholeNumber(query.get('_count')) ?? defaultPageSize);
  const offset = wholeNumber(query.get('_offset')) ?? 0;
  // _count=0 asks for the total alone (R4 search §3.1.1.5.7): a page of nothing with a next link would loop.
  if (count === 0 && summary === null) query.set('_summary', 'count');
  query.set('_count', String(count));
  query.set('_offset', String(offset));
  const self = `${context.origin}${url.pathname}?${query.toString()}`;
  // `_sid` only names a paging session; the data behind it is the same.
  const criteria = new URLSearchParams(query);
  criteria.delete('_sid');
  const cap = context.options.searchResultCaps?.[resourceType];
  if (query.get('_summary') === 'count') {
    const { total } = await context.options.backend.search(resourceType, criteria);
    // A capped search counts what it would serve, as its pages do.
    const stated = cap !== undefined && total !== undefined && total > cap ? cap : total;
    return { status: 200, body: { resourceType: 'Bundle', type: 'searchset', total: stated, link: [{ relation: 'self', url: self }] } };
  }
  const found = await context.options.backend.search(resourceType, criteria);
  // Cut short: the matches past the cap are not served, and the total counts only those served.
  const cut = cap !== undefined && found.total !== undefined && found.total > cap;
  const resources = cut ? found.resources.slice(0, Math.max(0, cap - offset)) : found.resources;
  const total = cut ? cap : found.total;
  const link: NonNullable<Bundle['link']> = [{ relation: 'self', url: self }];
  const more = total === undefined ? resources.length >= count && count > 0 : offset + count < total;
  const next = nextLink(context, url, query, more ? offset + count : undefined, fault);
  if (next && fault?.kind !== 'drop-next') link.push({ relation: 'next', url: next });
  const stated = fault?.kind === 'fixed-total' ? fault.total : total;
  const outcomes = [
    ...(cut ? [searchsetOutcomeEntry('4127', 'warning')] : []),
    ...(fault?.kind === 'outcome-entry' ? [searchsetOutcomeEntry(fault.code, fault.severity)] : []),
  ] as NonNullable<Bundle['entry']>;
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    link,
    ...(stated === undefined ? {} : { total: stated }),
    entry: [
      ...resources.map((resource: FhirResource) => ({
        fullUrl: `${context.origin}${context.prefix}/${resource.resourceType}/${resource.id ?? ''}`,
        resource,
        search: { mode: 'match' as const },
      })),
      ...outcomes,
    ],
  };
  return { status: 200, body: bundle };
}

/** The `next` link: the following offset, or what a paging fault makes of it (another origin, the same page). */
function nextLink(
  context: ServerContext,
  url: URL,
  query: URLSearchParams,
  nextOffset: number | undefined,
  fault: FaultAction | undefined,
): string | undefined {
  const next = new URLSearchParams(query);
  if (fault?.kind === 'self-next') return `${context.origin}${url.pathname}?${query.toString()}`;
  if (fault?.kind === 'stuck-next') {
    next.set('_sid', String((wholeNumber(query.get('_sid')) ?? 0) + 1));
    return `${context.origin}${url.pathname}?${next.toString()}`;
  }
  if (nextOffset === undefined) return undefined;
  next.set('_offset', String(nextOffset));
  return `${fault?.kind === 'foreign-next' ? fault.origin : context.origin}${url.pathname}?${next.toString()}`;
}

function wholeNumber(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

function capabilityStatement(context: ServerContext): Record<string, unknown> {
  const software = context.options.software ?? { name: 'Epic (bridge sandbox)', version: 'November 2026' };
  const types: Array<CapabilityStatementRestResource['type']> = [
    'Patient',
    'Practitioner',
    'PractitionerRole',
    'Encounter',
    ...(context.options.departmentTypes === true ? DEPARTMENT_TYPES : []),
  ];
  const lookups = types.map(
    (type): CapabilityStatementRestResource =>
      context.options.readOnlyTypes?.includes(type)
        ? { type, interaction: [{ code: 'read' }] }
        : {
            type,
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: [
              { name: '_id', type: 'token' },
              { name: 'identifier', type: 'token' },
            ],
          },
  );
  const auditEvent: CapabilityStatementRestResource = {
    type: 'AuditEvent',
    interaction: [{ code: 'search-type' }],
    searchParam: [
      { name: 'date', type: 'date' },
      { name: '_lastUpdated', type: 'date' },
      { name: 'patient', type: 'reference' },
      { name: 'agent', type: 'reference' },
    ],
  };
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    date: '2026-11-01',
    software,
    implementation: { description: 'Bridge sandbox FHIR R4 server', url: context.origin + context.prefix },
    rest: [
      {
        mode: 'server',
        security: {
          // SMART App Launch 1.0 §Conformance: the token endpoint in the oauth-uris extension.
          extension: [
            { url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: [{ url: 'token', valueUri: context.options.tokenUrl }] },
          ],
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
        },
        resource: context.options.listAuditEvent === false ? lookups : [auditEvent, ...lookups],
      },
    ],
  };
}

/** Epic's smart-configuration lists no token-endpoint signing algorithms (docs/epic-smart.md §5.2). */
function smartConfiguration(context: ServerContext): Record<string, unknown> {
  return {
    token_endpoint: context.options.tokenUrl,
    grant_types_supported: ['client_credentials', 'authorization_code'],
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic'],
    scopes_supported: ['system/AuditEvent.read', 'system/Patient.read', 'system/Practitioner.read', 'system/PractitionerRole.read', 'system/Encounter.read'],
    capabilities: ['client-confidential-asymmetric', 'permission-v1'],
  };
}

function outcome(code: string, text: string): Record<string, unknown> {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text, details: { text } }] };
}

function send(res: ServerResponse, reply: Reply, gzip: boolean): void {
  if (res.destroyed) return;
  const text = JSON.stringify(reply.body);
  const body = gzip ? gzipSync(text, { level: 1 }) : Buffer.from(text);
  const encoding = gzip ? { 'content-encoding': 'gzip', vary: 'Accept-Encoding' } : {};
  res.writeHead(reply.status, { 'content-type': 'application/fhir+json; charset=utf-8', 'content-length': body.length, ...encoding, ...reply.headers });
  res.end(body);
}

/** `Accept-Encoding` names gzip with a q above 0 (RFC 9110 §12.5.3). */
function acceptsGzip(req: IncomingMessage): boolean {
  const header = String(req.headers['accept-encoding'] ?? '');
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((param) => param.trim()).find((param) => param.startsWith('q='));
    return (coding === 'gzip' || coding === 'x-gzip') && (q === undefined || Number(q.slice(2)) > 0);
  });
}
