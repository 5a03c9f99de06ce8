/**
 * Token endpoint discovery: `{base}/.well-known/smart-configuration` first, then the SMART `oauth-uris` extension
 * of the CapabilityStatement. The well-known path is appended to the base *path* ("Contrary to RFC5785 Appendix
 * B.4", SMART conformance). Epic overrides endpoints per client id, so both requests carry `Epic-Client-ID`.
 * Epic's document has no `token_endpoint_auth_signing_alg_values_supported` and no system scopes, so neither is
 * required; a server that lists its auth methods must list `private_key_jwt`.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/conformance.html and docs/epic-smart.md §5.
 */
import { BridgeError, isAbortError } from '../errors.js';
import { parseRetryAfter, RETRYABLE_STATUSES } from '../http.js';
import { proxyRefusalIn, proxyRefusedError } from '../net/index.js';

export interface DiscoveryOptions {
  /** Sent as `Epic-Client-ID`: without it Epic "can return the wrong token and authorize endpoints". */
  readonly clientId: string;
  /** Default: the global fetch. The composition root passes one bound to the connector's proxy and CA (src/net). */
  readonly fetch?: typeof fetch;
  readonly signal?: AbortSignal;
  /** For a Retry-After given as an HTTP-date. Default Date.now. */
  readonly now?: () => number;
}

const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

interface Probe {
  readonly url: string;
  readonly body?: unknown;
  /** Why the probe gave nothing, for the final error message. */
  readonly failure?: string;
  readonly transient: boolean;
  /** The server's Retry-After on a transient failure (429, 503), in ms. */
  readonly retryAfterMs?: number | undefined;
}

/** Finds the token URL of a FHIR server; BRG_ERR_SMART_DISCOVERY when neither source names one. */
export async function discoverTokenUrl(fhirBaseUrl: string, options: DiscoveryOptions): Promise<string> {
  const base = fhirBaseUrl.replace(/\/+$/, '');
  const smart = await getJson(`${base}/.well-known/smart-configuration`, 'application/json', options);
  const fromSmart = smart.body === undefined ? undefined : tokenUrlFromSmartConfiguration(smart);
  if (fromSmart !== undefined) return checkedEndpoint(fromSmart, smart.url);

  const metadata = await getJson(`${base}/metadata`, 'application/fhir+json', options);
  const fromCaps = metadata.body === undefined ? undefined : tokenUrlFromCapabilityStatement(metadata.body);
  if (fromCaps !== undefined) return checkedEndpoint(fromCaps, metadata.url);

  const reasons = [smart.failure ?? 'no token_endpoint', metadata.failure ?? 'no oauth-uris token extension'];
  throw new BridgeError(
    'BRG_ERR_SMART_DISCOVERY',
    `No token endpoint found for ${base}: ${smart.url} gave ${reasons[0]}; ${metadata.url} gave ${reasons[1]}. ` +
      'Check fhir.baseUrl, or set smart.tokenUrl explicitly.',
    { details: { transient: smart.transient || metadata.transient, ...retryAfterOf(smart, metadata) } },
  );
}

/** The longer Retry-After the probes were given (a retry before it meets the same answer), as details. */
function retryAfterOf(...probes: Probe[]): { retryAfterMs?: number } {
  const waits = probes.flatMap((probe) => (probe.retryAfterMs === undefined ? [] : [probe.retryAfterMs]));
  return waits.length === 0 ? {} : { retryAfterMs: Math.max(...waits) };
}

/**
 * The resource types the server's CapabilityStatement lists, and whether its software calls itself Epic; undefined
 * when /metadata cannot be read. For naming the scope to remove after invalid_scope: a scope for a type the server
 * does not list cannot be granted (Epic's sandbox lists no AuditEvent).
 */
export async function servedResourceTypes(fhirBaseUrl: string, options: DiscoveryOptions): Promise<{ types: Set<string>; epic: boolean } | undefined> {
  const metadata = await getJson(`${fhirBaseUrl.replace(/\/+$/, '')}/metadata`, 'application/fhir+json', options);
  const caps = metadata.body as { resourceType?: unknown; software?: { name?: unknown }; rest?: unknown } | null | undefined;
  if (caps?.resourceType !== 'CapabilityStatement' || !Array.isArray(caps.rest)) return undefined;
  const types = new Set<string>();
  for (const rest of caps.rest as Array<{ mode?: unknown; resource?: unknown }>) {
    if (rest.mode !== 'server' || !Array.isArray(rest.resource)) continue;
    for (const resource of rest.resource as Array<{ type?: unknown }>) if (typeof resource.type === 'string') types.add(resource.type);
  }
  const software = typeof caps.software?.name === 'string' ? caps.software.name : '';
  return { types, epic: /^epic\b/i.test(software) };
}

function tokenUrlFromSmartConfiguration(probe: Probe): string | undefined {
  const doc = probe.body as Record<string, unknown> | null;
  if (typeof doc !== 'object' || doc === null || typeof doc['token_endpoint'] !== 'string') return undefined;
  requireListed(doc, 'token_endpoint_auth_methods_supported', 'private_key_jwt', probe.url);
  requireListed(doc, 'grant_types_supported', 'client_credentials', probe.url);
  return doc['token_endpoint'];
}

/** An optional list, when present, must include `value`; otherwise this server cannot serve a backend client. */
function requireListed(doc: Record<string, unknown>, field: string, value: string, url: string): void {
  const list = doc[field];
  if (list === undefined) return;
  if (!Array.isArray(list) || !list.includes(value)) {
    throw new BridgeError(
      'BRG_ERR_SMART_DISCOVERY',
      `${url} lists ${field} = ${JSON.stringify(list)}, without "${value}": this server does not offer SMART backend services (client_credentials with private_key_jwt).`,
    );
  }
}

function tokenUrlFromCapabilityStatement(body: unknown): string | undefined {
  const caps = body as { resourceType?: unknown; rest?: unknown } | null;
  if (caps?.resourceType !== 'CapabilityStatement' || !Array.isArray(caps.rest)) return undefined;
  for (const rest of caps.rest as Array<{ security?: { extension?: unknown } }>) {
    const extensions = rest.security?.extension;
    if (!Array.isArray(extensions)) continue;
    const oauth = (extensions as FhirExtension[]).find((e) => e.url === OAUTH_URIS);
    const token = oauth?.extension?.find((e) => e.url === 'token')?.valueUri;
    if (typeof token === 'string') return token;
  }
  return undefined;
}

interface FhirExtension {
  readonly url?: string;
  readonly valueUri?: unknown;
  readonly extension?: FhirExtension[];
}

/** Only https endpoints, except loopback (the offline sandbox): tokens must not cross a network in clear text. */
function checkedEndpoint(endpoint: string, source: string): string {
  if (!URL.canParse(endpoint)) {
    throw new BridgeError('BRG_ERR_SMART_DISCOVERY', `${source} names token endpoint "${endpoint}", which is not an absolute URL; set smart.tokenUrl.`);
  }
  const url = new URL(endpoint);
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new BridgeError('BRG_ERR_SMART_DISCOVERY', `${source} names token endpoint ${endpoint}, which is not https; set smart.tokenUrl if this is intended.`);
  }
  return endpoint;
}

async function getJson(url: string, accept: string, options: DiscoveryOptions): Promise<Probe> {
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, {
      headers: { accept, 'epic-client-id': options.clientId },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (isAbortError(error)) throw error;
    const refusal = proxyRefusalIn(error);
    if (refusal) throw proxyRefusedError(refusal, `SMART discovery at ${url}`);
    return { url, failure: `a network error (${(error as Error).message.replace(/\s+/g, ' ')})`, transient: true };
  }
  if (!response.ok) {
    await response.body?.cancel();
    const transient = RETRYABLE_STATUSES.has(response.status);
    const retryAfterMs = transient ? parseRetryAfter(response.headers.get('retry-after'), (options.now ?? Date.now)()) : undefined;
    return { url, failure: `HTTP ${response.status}`, transient, retryAfterMs };
  }
  try {
    return { url, body: await response.json(), transient: false };
  } catch {
    return { url, failure: 'a body that is not JSON', transient: false };
  }
}
