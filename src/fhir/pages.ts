/**
 * A search as a lazy async generator over searchset pages: the next page is requested only when the consumer asks
 * for it, so memory stays at one page. Before following `link[relation=next]` its origin is checked against the
 * base (fhir-kit-client would send the token to whatever host the link names, research §A2); a bundle with no
 * `link` at all simply ends the walk (fhir-kit-client 1.x threw on it).
 * See: https://hl7.org/fhir/R4/http.html#paging
 */
import type { Bundle, FhirResource } from 'fhir/r4.js';
import type { Client } from 'fhir-kit-client';
import { BridgeError } from '../errors.js';
import { foreignLinkError, safeOrigin, type Transport } from './transport.js';

export type SearchParams = Record<string, string | string[]>;

/** fhir-kit-client's own Bundle type (its FhirResource has an index signature; @types/fhir's does not). */
type FkcBundle = Parameters<Client['nextPage']>[0]['bundle'];

export async function* searchPages(transport: Transport, baseUrl: string, resourceType: string, params: SearchParams, signal?: AbortSignal): AsyncGenerator<Bundle> {
  let bundle = asBundle(
    await transport.send({ resourceType, action: 'search' }, (fkc, options) => fkc.search({ resourceType, searchParams: params, options }), signal),
    resourceType,
  );
  for (;;) {
    yield bundle;
    const next = bundle.link?.find((link) => link.relation === 'next')?.url;
    if (!next) return;
    if (safeOrigin(next, `${baseUrl}/`) !== transport.origin) throw foreignLinkError(next, transport.origin);
    const current = bundle as unknown as FkcBundle;
    bundle = asBundle(
      await transport.send(
        { resourceType, action: 'next page' },
        (fkc, options) => fkc.nextPage({ bundle: current, options }) ?? Promise.reject(new Error('next link vanished')),
        signal,
      ),
      resourceType,
    );
  }
}

function asBundle(body: unknown, resourceType: string): Bundle {
  const bundle = body as Partial<Bundle> | null;
  if (bundle?.resourceType !== 'Bundle') {
    throw new BridgeError('BRG_ERR_FHIR_HTTP', `FHIR ${resourceType} search answered a ${String(bundle?.resourceType ?? 'non-FHIR body')} instead of a Bundle.`, {
      details: { resourceType, status: 200 },
    });
  }
  return bundle as Bundle;
}

/** The resources of one type in a searchset; Epic adds OperationOutcome entries (search.mode 'outcome') for warnings. */
export function resourcesOf<T extends FhirResource = FhirResource>(bundle: Bundle, resourceType: string): T[] {
  return (bundle.entry ?? []).flatMap((entry) => (entry.resource?.resourceType === resourceType ? [entry.resource as unknown as T] : []));
}
