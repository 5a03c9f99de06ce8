/**
 * The typed FHIR client the pull stage uses: a /metadata probe, the AuditEvent capability check and lazy paged
 * search, all through one transport (queue, token, timeout, retry) over fhir-kit-client 2.x.
 */
import type { Bundle } from 'fhir/r4.js';
import type { Clock } from '../clock.js';
import { DEFAULT_RETRY, type RetryOptions } from '../http.js';
import type { Logger } from '../log.js';
import type { TokenSource } from '../token-cache.js';
import { requireSearchParam, summarizeCapability, type CapabilitySummary } from './capability.js';
import { searchPages } from './pages.js';
import { createTransport } from './transport.js';

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
  /** Requests started per second at most (Epic asks apps to self-throttle, research §3.6). Default 20. */
  readonly requestsPerSecond?: number;
  /** Per-attempt timeout; a timed-out attempt is retried. Default 30000 ms. */
  readonly timeoutMs?: number;
  /** Default DEFAULT_RETRY from http.ts (6 attempts, 10 min budget). */
  readonly retry?: RetryOptions;
  /** Uniform [0,1) for backoff jitter. Default Math.random. */
  readonly random?: () => number;
  /** Aborts every request of this client (shutdown). */
  readonly signal?: AbortSignal;
  /** Called once per logical request (after its retries) for metrics; status 0 = no HTTP answer. */
  readonly onRequest?: (info: { resourceType: string; status: number; retries: number }) => void;
}

export interface FhirClient {
  /** GET /metadata: the server software and its AuditEvent search parameters. */
  probe(signal?: AbortSignal): Promise<{ software: string; auditEventSearch: readonly string[] }>;
  /** BRG_ERR_FHIR_CAPABILITY naming the server software when AuditEvent search by `param` is absent. */
  requireAuditEventSearch(param: 'date' | '_lastUpdated', signal?: AbortSignal): Promise<void>;
  /** Pages of a type-level search, lazily; array values repeat the parameter (`date=ge…&date=lt…`). */
  searchPages(resourceType: string, params: Record<string, string | string[]>, signal?: AbortSignal): AsyncGenerator<Bundle>;
  /** `requests` counts every HTTP request sent (retries and 401 replays included); `retries` the retried ones. */
  readonly stats: { requests: number; retries: number };
}

export function createFhirClient(options: FhirClientOptions): FhirClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const settings = {
    concurrency: checked('concurrency', options.concurrency ?? 4, (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1'),
    requestsPerSecond: checked('requestsPerSecond', options.requestsPerSecond ?? 20, (n) => Number.isFinite(n) && n > 0, 'a finite number > 0'),
    timeoutMs: checked('timeoutMs', options.timeoutMs ?? 30_000, (n) => Number.isInteger(n) && n >= 1, 'a whole number of ms >= 1'),
  };
  if (!/^https?:\/\/[^/]/.test(baseUrl)) throw new TypeError(`Expected \`baseUrl\` to be an http(s) URL, got \`${options.baseUrl}\``);
  const transport = createTransport({ ...options, ...settings, baseUrl, retry: options.retry ?? DEFAULT_RETRY });
  let capability: CapabilitySummary | undefined;

  const probe = async (signal?: AbortSignal): Promise<CapabilitySummary> => {
    const body = await transport.send({ resourceType: 'metadata', action: 'metadata' }, (fkc, opts) => fkc.capabilityStatement(opts), signal);
    capability = summarizeCapability(body);
    return capability;
  };
  return {
    probe,
    async requireAuditEventSearch(param, signal) {
      // One probe per client: the pipeline checks before every run, the statement does not change within one.
      requireSearchParam(capability ?? (await probe(signal)), param, baseUrl);
    },
    searchPages: (resourceType, params, signal) => searchPages(transport, baseUrl, resourceType, params, signal),
    stats: transport.stats,
  };
}

function checked(name: string, value: number, valid: (n: number) => boolean, expected: string): number {
  if (!valid(value)) throw new TypeError(`Expected \`${name}\` to be ${expected}, got \`${value}\` (${typeof value})`);
  return value;
}
