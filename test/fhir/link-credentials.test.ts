/**
 * A `next` link on the FHIR server's own host but with user:password in it: `URL.origin` leaves the credentials out,
 * so it passed the origin check, and Node's fetch then refused it with a TypeError quoting the whole URL (credentials
 * and the search's identifier) into the run's error. It is refused as a foreign link, named without either.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createFhirClient } from '../../src/fhir/index.js';
import { safeOrigin } from '../../src/fhir/transport-errors.js';
import { silentLogger } from '../../src/log.js';
import { InstantClock } from '../support/manual-clock.js';
import { RevocableTokens } from './support.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

describe('a paging link with credentials in it', () => {
  it('is refused as BRG_ERR_FHIR_FOREIGN_LINK, never requested, and named without the credentials or the identifier', async () => {
    const hits: string[] = [];
    let origin = '';
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      const host = origin.replace('http://', '');
      res.writeHead(200, { 'content-type': 'application/fhir+json' });
      res.end(
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'searchset',
          link: [{ relation: 'next', url: `http://u:p@${host}/api/FHIR/R4/Patient?identifier=urn:oid:1.2.3|E4502&page=2` }],
          entry: [{ resource: { resourceType: 'Patient', id: 'e1' } }],
        }),
      );
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const fhir = createFhirClient({
      baseUrl: `${origin}/api/FHIR/R4`,
      tokenSource: new RevocableTokens(),
      clock: new InstantClock(),
      logger: silentLogger(),
    });

    let pages = 0;
    const error: unknown = await (async () => {
      for await (const _page of fhir.searchPages('Patient', { identifier: 'urn:oid:1.2.3|E4502' })) pages++;
    })().catch((e: unknown) => e);

    expect(pages).toBe(1);
    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.code).toBe('BRG_ERR_FHIR_FOREIGN_LINK');
    expect(failure.message).toContain('with a user name or password in it');
    for (const text of [failure.message, JSON.stringify(failure.details), failure.stack ?? '']) {
      for (const secret of ['u:p', 'E4502', 'identifier=']) expect(text).not.toContain(secret);
    }
    expect(hits).toHaveLength(1);
  });

  it('safeOrigin equals no origin for a URL with a user name or a password, and names neither', () => {
    for (const url of ['https://u:p@ehr.example/R4', 'https://u@ehr.example/R4', 'https://:p@ehr.example/R4']) {
      const origin = safeOrigin(url);
      expect(origin, url).not.toBe('https://ehr.example');
      expect(origin, url).not.toMatch(/u:|p@|ehr\.example/);
    }
    expect(safeOrigin('/R4/Patient?page=2', 'https://u:p@ehr.example/')).not.toBe('https://ehr.example');
    expect(safeOrigin('https://ehr.example/R4/Patient?page=2')).toBe('https://ehr.example');
  });
});
