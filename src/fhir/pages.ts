/**
 * A search as a lazy async generator over searchset pages (fhir-kit-client's `search`, then `nextPage`): the next
 * page is requested only when the consumer asks for it, so memory stays at one page. Before following `link[relation=next]` its origin is checked against the
 * base (a token must never go to another host) and its URL against the pages already requested (a `next` that names
 * its own page loops forever, issue #14.6); a bundle with no `link` at all simply ends the walk.
 * See: https://hl7.org/fhir/R4/http.html#paging
 */
import type { Bundle, FhirResource } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { PageUrls } from './loop-guard.js';
import { issueCodes, outcomeCodes } from './outcome.js';
import { searchValueParts } from './search-escape.js';
import { type FhirCall, foreignLinkError, safeOrigin, type Transport } from './transport.js';

export type SearchParams = Record<string, string | string[]>;

/** Search parameters whose values never identify a person: the window, paging and result shaping. */
const IMPERSONAL_PARAMS: ReadonlySet<string> = new Set(['_sort', '_count', '_offset', '_elements', '_summary', '_total', 'date', '_lastUpdated']);

export async function* searchPages(
  transport: Transport,
  baseUrl: string,
  resourceType: string,
  params: SearchParams,
  signal?: AbortSignal,
): AsyncGenerator<Bundle> {
  const visited = new PageUrls(resourceType);
  // Array values repeat their parameter (`date=ge…&date=lt…`): fhir-kit-client appends each to URLSearchParams.
  let call: FhirCall = (fkc, options) => fkc.search({ resourceType, searchParams: params, options });
  // The parameters' values (identifier lists carry MRNs and logins), blanked if an error answer echoes them. Those that
  // name no one (a sort key, a page size, the window's bounds) stay readable: blanking "date" or "200" wherever it
  // appears made the server's own words ("the date parameter", "_count must not exceed 200") unreadable.
  const sent = [
    ...new Set(
      Object.entries(params)
        .filter(([name]) => !IMPERSONAL_PARAMS.has(name))
        .flatMap(([, value]) => (Array.isArray(value) ? value : [value]).flatMap((text) => [text, ...text.split(/[,|]/), ...searchValueParts(text)])),
    ),
  ];
  for (let page = 1; ; page++) {
    const reply = await transport.send({ resourceType, action: page === 1 ? 'search' : 'next page', sent }, call, signal);
    const bundle = asBundle(reply.data, resourceType, page);
    const pageUrl = documentUrl(reply.url, baseUrl);
    visited.visit(page, reply.url, absolute(linkOf(bundle, 'self'), pageUrl));
    yield bundle;
    const next = linkOf(bundle, 'next');
    if (!next) return;
    const nextUrl = absolute(next, pageUrl);
    // Named by the resolved link: a protocol-relative `//host/…` is no URL on its own, and would read as unparseable.
    if (nextUrl === undefined || safeOrigin(nextUrl) !== transport.origin) throw foreignLinkError(nextUrl ?? next, transport.origin);
    visited.checkNext(page, nextUrl);
    // fhir-kit-client follows the link it is given: the resolved, checked one (it would join a relative link to the
    // base path rather than resolve it, and follow any host).
    const link = { resourceType: 'Bundle', link: [{ relation: 'next', url: nextUrl }] };
    call = (fkc, options) => fkc.nextPage({ bundle: link, options });
  }
}

function linkOf(bundle: Bundle, relation: string): string | undefined {
  return bundle.link?.find((link) => link.relation === relation)?.url;
}

/**
 * The URL a relative link of the page is resolved against: the page's own, as requested (RFC 3986 §5.1.3; no redirect
 * is followed, so it is where the Bundle came from). Against the base, `?page=2` from `…/R4/AuditEvent?…` became
 * `…/R4/?page=2`, and a link relative to a page served at another path left that path. The base stands in only when the
 * request's URL is unknown.
 */
function documentUrl(requested: string, baseUrl: string): string {
  return URL.canParse(requested) ? requested : `${baseUrl}/`;
}

/** Links should be absolute (FHIR R4 §3.1.0.1.2); a relative one is resolved as a browser would, against its page's URL. */
function absolute(link: string | undefined, pageUrl: string): string | undefined {
  if (link === undefined) return undefined;
  try {
    return new URL(link, pageUrl).href;
  } catch {
    return undefined;
  }
}

/**
 * A 200 that is no Bundle stops the walk. An OperationOutcome there is the server's refusal in a 200 (Epic may answer an
 * expired search session, 4113, so): its codes go into the error, so the walk can tell 4113 and search again.
 */
function asBundle(body: unknown, resourceType: string, page: number): Bundle {
  const bundle = body as Partial<Bundle> | null;
  const where = `FHIR ${resourceType} search (page ${page})`;
  if (bundle?.resourceType === 'Bundle') return wellFormed(bundle as Bundle, where, resourceType, page);
  const type = bundle?.resourceType;
  if (type === 'OperationOutcome') {
    // Codes only: they are tokens of value sets, while the outcome's text may echo the search (an identifier is an MRN).
    const named = issueCodes(body);
    const codes = outcomeCodes(body).filter((code) => named.includes(code));
    const outcomeCode = codes.includes('4113') ? '4113' : codes[0];
    throw new BridgeError(
      'BRG_ERR_FHIR_HTTP',
      `${where} answered an OperationOutcome instead of a Bundle, with HTTP 200${named.length > 0 ? ` (issue codes ${named.join(', ')})` : ''}.`,
      {
        details: { resourceType, status: 200, page, ...(outcomeCode === undefined ? {} : { outcomeCode }) },
      },
    );
  }
  throw new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `${where} answered ${typeof type === 'string' ? `a ${type}` : 'a body that is no FHIR resource'} instead of a Bundle.`,
    {
      details: { resourceType, status: 200, page },
    },
  );
}

/**
 * A Bundle whose `entry` or `link` is no list of objects (a gateway's rewrite, a server's bug) would fail deep in the
 * walk with a bare TypeError, reported as the bridge's own failure (BRG_ERR_INTERNAL): it is the server's answer,
 * refused as such. Its content is not quoted (entries are PHI).
 */
function wellFormed(bundle: Bundle, where: string, resourceType: string, page: number): Bundle {
  const listOfObjects = (value: unknown): boolean =>
    value === undefined || (Array.isArray(value) && value.every((item) => typeof item === 'object' && item !== null && !Array.isArray(item)));
  const broken = ['entry', 'link'].filter((field) => !listOfObjects((bundle as unknown as Record<string, unknown>)[field]));
  // Read only once `entry` is a list: an outcome's issues are what page-checks.ts reads of it.
  const outcomes = broken.includes('entry') ? [] : (bundle.entry ?? []).filter((entry) => entry.resource?.resourceType === 'OperationOutcome');
  if (outcomes.some((entry) => !listOfObjects((entry.resource as { issue?: unknown }).issue))) broken.push('an entry’s OperationOutcome.issue');
  if (broken.length === 0) return bundle;
  throw new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `${where} answered a broken Bundle (${broken.join(' and ')} not a list of objects), so nothing of it was used. Run again; if it repeats, report the broken answer to the EHR team (or any gateway in front of the server).`,
    { details: { resourceType, status: 200, page } },
  );
}

/** The resources of one type in a searchset; Epic adds OperationOutcome entries (search.mode 'outcome') for warnings. */
export function resourcesOf<T extends FhirResource = FhirResource>(bundle: Bundle, resourceType: string): T[] {
  return (bundle.entry ?? []).flatMap((entry) => (entry.resource?.resourceType === resourceType ? [entry.resource as unknown as T] : []));
}
