/**
 * The typed FHIR client the pull stage uses: a /metadata probe, the AuditEvent capability check, how each type is
 * looked up by id, lazy paged search and read-by-id, all fhir-kit-client calls through one transport (queue, hold,
 * token, timeout, size cap, proxy, retry).
 */
import type { Bundle, FhirResource } from 'fhir/r4.js';
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { DEFAULT_RETRY, type RetryOptions } from '../http.js';
import type { Logger } from '../log.js';
import type { NetworkSettings } from '../net/index.js';
import type { TokenSource } from '../token-cache.js';
import { type CapabilitySummary, type LookupMode, lookupMode, requireSearchParam, summarizeCapability } from './capability.js';
import { searchPages } from './pages.js';
import { createServerClock } from './server-clock.js';
import { createTransport, type FhirCall } from './transport.js';

export interface FhirClientOptions {
  /** FHIR R4 base, e.g. `https://ehr.example.org/interconnect-fhir-oauth/api/FHIR/R4`. */
  readonly baseUrl: string;
  /** Bearer tokens for the FHIR server (SMART backend services); `invalidate` is called after a 401. */
  readonly tokenSource: TokenSource;
  /** Retry waits and Retry-After dates. */
  readonly clock: Clock;
  readonly logger: Logger;
  /** Requests in flight at once, over every search, page and reference batch. Default 4. */
  readonly concurrency?: number;
  /** Requests started per second at most (Epic asks apps to self-throttle, docs/epic-smart.md §6.4). Default 20. */
  readonly requestsPerSecond?: number;
  /** Per-attempt timeout; a timed-out attempt is retried. Default 30000 ms. */
  readonly timeoutMs?: number;
  /** Default DEFAULT_RETRY from http.ts (6 attempts, 10 min budget). */
  readonly retry?: RetryOptions;
  /** Largest response body read, in bytes (fhir.maxResponseBytes). Default DEFAULT_MAX_RESPONSE_BYTES. */
  readonly maxResponseBytes?: number;
  /** Proxy, NO_PROXY and CA bundle (src/net). Default: direct, system roots only. */
  readonly network?: NetworkSettings;
  /** Uniform [0,1) for backoff jitter. Default Math.random. */
  readonly random?: () => number;
  /** Aborts every request of this client (shutdown). */
  readonly signal?: AbortSignal;
  /** Called once per logical request (after its retries) for metrics; status 0 = no HTTP answer. */
  readonly onRequest?: (info: { resourceType: string; status: number; retries: number }) => void;
}

export interface FhirClient {
  /** GET /metadata: the server software, its AuditEvent search parameters and what it offers per type. */
  probe(signal?: AbortSignal): Promise<CapabilitySummary>;
  /** BRG_ERR_FHIR_CAPABILITY naming the server software when AuditEvent search by `param` is absent. */
  requireAuditEventSearch(param: 'date' | '_lastUpdated', signal?: AbortSignal): Promise<void>;
  /** `_id` search or read-by-id for `resourceType`, from /metadata (probed once per client). */
  lookupMode(resourceType: string, signal?: AbortSignal): Promise<LookupMode>;
  /** Pages of a type-level search, lazily; array values repeat the parameter (`date=ge…&date=lt…`). */
  searchPages(resourceType: string, params: Record<string, string | string[]>, signal?: AbortSignal): AsyncGenerator<Bundle>;
  /** GET `{type}/{id}`; a 404/410 rejects with BRG_ERR_FHIR_HTTP and that status (the resource is missing). */
  read(resourceType: string, id: string, signal?: AbortSignal): Promise<FhirResource>;
  /** `requests` counts every HTTP request sent (retries and 401 replays included); `retries` the retried ones. */
  readonly stats: { requests: number; retries: number };
  /** The server's time now, by the Date header of its last answer (server-clock.ts); undefined before any. */
  serverNow(): number | undefined;
}

/**
 * 32 MiB: a page of 1000 Epic AuditEvents is a few MiB, and the production heap is 256 MiB (README "CLI"), of which a
 * parsed page takes several times its text size.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

export function createFhirClient(options: FhirClientOptions): FhirClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const settings = {
    concurrency: checked('concurrency', options.concurrency ?? 4, (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1'),
    requestsPerSecond: checked('requestsPerSecond', options.requestsPerSecond ?? 20, (n) => Number.isFinite(n) && n > 0, 'a finite number > 0'),
    timeoutMs: checked('timeoutMs', options.timeoutMs ?? 30_000, (n) => Number.isInteger(n) && n >= 1, 'a whole number of ms >= 1'),
    maxResponseBytes: checked(
      'maxResponseBytes',
      options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      (n) => Number.isInteger(n) && n >= 1024,
      'a whole number of bytes >= 1024',
    ),
  };
  if (!/^https?:\/\/[^/]/.test(baseUrl)) throw new TypeError(`Expected \`baseUrl\` to be an http(s) URL, got \`${options.baseUrl}\``);
  const serverClock = createServerClock(options.clock);
  const transport = createTransport({ ...options, ...settings, baseUrl, retry: options.retry ?? DEFAULT_RETRY, serverClock });
  let capability: CapabilitySummary | undefined;

  const probe = async (signal?: AbortSignal): Promise<CapabilitySummary> => {
    const reply = await transport.send({ resourceType: 'metadata', action: 'metadata' }, (fkc, options) => fkc.capabilityStatement(options), signal);
    capability = summarizeCapability(reply.data);
    return capability;
  };
  // One probe per client, shared by concurrent callers: the statement does not change within a run. A failed probe
  // is not kept, so the next caller asks again.
  let probing: Promise<CapabilitySummary> | undefined;
  const known = async (signal?: AbortSignal): Promise<CapabilitySummary> => {
    if (capability) return capability;
    probing ??= probe(signal).finally(() => {
      probing = undefined;
    });
    return await probing;
  };
  return {
    probe,
    serverNow: () => serverClock.now(),
    async requireAuditEventSearch(param, signal) {
      requireSearchParam(await known(signal), param, baseUrl);
    },
    lookupMode: async (resourceType, signal) => lookupMode(await known(signal), resourceType, baseUrl),
    searchPages: (resourceType, params, signal) => searchPages(transport, baseUrl, resourceType, params, signal),
    async read(resourceType, id, signal) {
      // Ids come from references in events: encoded, so an odd one cannot change the path.
      const call: FhirCall = (fkc, options) => fkc.read({ resourceType, id: encodeURIComponent(id), options });
      // The id is blanked if an error answer echoes it (`Invalid FHIR ID: e4Xk…`), as a search's values are.
      return asResource((await transport.send({ resourceType, action: 'read', sent: [id] }, call, signal)).data, resourceType);
    },
    stats: transport.stats,
  };
}

function asResource(body: unknown, resourceType: string): FhirResource {
  const resource = body as Partial<FhirResource> | null;
  if (resource?.resourceType !== resourceType) {
    throw new BridgeError(
      'BRG_ERR_FHIR_HTTP',
      `FHIR ${resourceType} read answered a ${String(resource?.resourceType ?? 'non-FHIR body')} instead of a ${resourceType}.`,
      {
        details: { resourceType, status: 200 },
      },
    );
  }
  return resource as FhirResource;
}

function checked(name: string, value: number, valid: (n: number) => boolean, expected: string): number {
  if (!valid(value)) throw new TypeError(`Expected \`${name}\` to be ${expected}, got \`${value}\` (${typeof value})`);
  return value;
}
