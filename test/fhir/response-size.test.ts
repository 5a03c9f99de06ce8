/**
 * Issue #14.8: a 300 MB FHIR page crashed V8. Responses are capped (fhir.maxResponseBytes): a declared
 * Content-Length over the cap is refused unread, an undeclared (chunked) body stops being read at the cap, and the
 * error names the resource type, the limit and the key to change. Nothing is retried: it would be as large again.
 */
import type { Bundle } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/index.js';
import { BridgeError } from '../../src/errors.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../../src/fhir/index.js';
import { allResources, buildFixtures, type FixtureServer, startFixtureServer } from './support.js';

const AUDIT_SEARCH = /\/AuditEvent\?/;
const CAP = 256 * 1024;
let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

async function firstPage(pages: AsyncGenerator<Bundle>): Promise<Bundle | BridgeError> {
  try {
    return (await pages.next()).value as Bundle;
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    return error as BridgeError;
  }
}

describe('response size cap', () => {
  it.each([true, false])('Content-Length %s: a body over fhir.maxResponseBytes fails with BRG_ERR_FHIR_TOO_LARGE, unretried', async (contentLength) => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 3, patients: 1, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'huge-body', bytes: 8 * 1024 * 1024, contentLength }, match: AUDIT_SEARCH, times: 10 });
    const fhir = fixture.client({ maxResponseBytes: CAP });

    const error = await firstPage(fhir.searchPages('AuditEvent', { _count: '10' }));

    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect([failure.code, failure.exitCode]).toEqual(['BRG_ERR_FHIR_TOO_LARGE', 4]);
    const seen = contentLength ? 'a body of 8 MiB (Content-Length), over' : 'a body larger than';
    expect(failure.message).toBe(
      `FHIR AuditEvent search at ${fixture.server.origin} answered ${seen} the 256 KiB limit; it was not read further. ` +
        `Lower fhir.pageSize (or, for a server that ignores _count, fhir.maxResultsPerSlice) so each answer is smaller, or raise fhir.maxResponseBytes (now ${CAP}) if this host has the memory.`,
    );
    expect(failure.details).toMatchObject({ resourceType: 'AuditEvent', limit: CAP });
    expect(fhir.stats).toEqual({ requests: 1, retries: 0 });
  });

  it('a body under the cap is read as usual', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 3, patients: 1, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'huge-body', bytes: 200 * 1024, contentLength: false }, match: AUDIT_SEARCH });
    const page = await firstPage(fixture.client({ maxResponseBytes: CAP }).searchPages('AuditEvent', {}));
    expect((page as Bundle).resourceType).toBe('Bundle');
  });

  it('fhir.maxResponseBytes defaults to 32 MiB, the client default', () => {
    const config = validateConfig(
      {
        connectors: [
          {
            name: 'c',
            fhir: { baseUrl: 'https://ehr.example.org/api/FHIR/R4' },
            smart: { clientId: 'x' },
            purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } },
          },
        ],
      },
      'test',
    );
    expect(config.connectors[0]?.fhir?.maxResponseBytes).toBe(32 * 1024 * 1024);
    expect(DEFAULT_MAX_RESPONSE_BYTES).toBe(32 * 1024 * 1024);
  });
});
