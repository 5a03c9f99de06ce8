import type { Bundle, CapabilityStatement, OperationOutcome } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SCOPE, PROFILES } from '../../src/config/index.js';
import { createMemoryBackend, type MemoryBackend } from '../../src/sandbox/fhir-backend.js';
import { type SandboxFhirServer, startFhirServer } from '../../src/sandbox/fhir-server.js';
import { createGeneratedBackend } from '../../src/sandbox/generated-backend.js';
import { generateDataset } from '../../src/sandbox/generator.js';
import { allResources, buildFixtures, isoAt } from '../fhir/support.js';

const TOKEN = 'good-token';
const TOKEN_URL = 'http://127.0.0.1:9/oauth2/token';
let backend: MemoryBackend;
let server: SandboxFhirServer;

async function get(path: string, token: string | null = TOKEN): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(path.startsWith('http') ? path : server.baseUrl + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: response.status, headers: response.headers, body: await response.json() };
}
const entryIds = (body: unknown): string[] => ((body as Bundle).entry ?? []).map((entry) => entry.resource?.id ?? '?');
const nextOf = (body: unknown): string | undefined => (body as Bundle).link?.find((link) => link.relation === 'next')?.url;

beforeAll(async () => {
  backend = await createMemoryBackend();
  await backend.load(allResources(buildFixtures({ events: 12, patients: 4, practitioners: 3 })));
  server = await startFhirServer({ backend, verifyAccessToken: (token) => token === TOKEN, tokenUrl: TOKEN_URL, defaultPageSize: 5, maxPageSize: 8 });
});
afterAll(async () => {
  await server.close();
});

describe('sandbox FHIR server', () => {
  it('serves /metadata and smart-configuration without a token', async () => {
    const metadata = await get('/metadata', null);
    const statement = metadata.body as CapabilityStatement;
    expect(metadata.status).toBe(200);
    expect(statement.software).toEqual({ name: 'Epic (bridge sandbox)', version: 'November 2026' });
    const auditEvent = statement.rest?.[0]?.resource?.find((resource) => resource.type === 'AuditEvent');
    expect(auditEvent?.searchParam?.map((param) => param.name)).toEqual(['date', '_lastUpdated', 'patient', 'agent']);
    expect(JSON.stringify(statement.rest?.[0]?.security)).toContain(TOKEN_URL);

    const smart = await get('/.well-known/smart-configuration', null);
    expect(smart.body).toMatchObject({ token_endpoint: TOKEN_URL, grant_types_supported: expect.arrayContaining(['client_credentials']) });
    expect(smart.body).not.toHaveProperty('token_endpoint_auth_signing_alg_values_supported');
  });

  it('answers 401 with WWW-Authenticate for a missing or unknown token', async () => {
    for (const token of [null, 'stale']) {
      const reply = await get('/Patient/pt-0', token);
      expect(reply.status).toBe(401);
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      expect((reply.body as OperationOutcome).resourceType).toBe('OperationOutcome');
    }
  });

  it('pages a date-bounded AuditEvent search with total, absolute self/next links and fullUrls', async () => {
    const first = await get(`/AuditEvent?date=ge${isoAt(2)}&date=lt${isoAt(10)}&_sort=date`);
    expect(first.status).toBe(200);
    expect((first.body as Bundle).total).toBe(8);
    expect(entryIds(first.body)).toEqual(['ae-002', 'ae-003', 'ae-004', 'ae-005', 'ae-006']);
    expect((first.body as Bundle).entry?.[0]?.fullUrl).toBe(`${server.baseUrl}/AuditEvent/ae-002`);
    const next = nextOf(first.body);
    expect(next?.startsWith(`${server.origin}/`)).toBe(true);
    expect(new URL(next ?? '').searchParams.get('_offset')).toBe('5');
    const second = await get(next ?? '');
    expect(entryIds(second.body)).toEqual(['ae-007', 'ae-008', 'ae-009']);
    expect(nextOf(second.body)).toBeUndefined();
  });

  it('clamps _count to maxPageSize and answers _summary=count with the total only', async () => {
    expect(entryIds((await get('/AuditEvent?_sort=date&_count=50')).body)).toHaveLength(8);
    const count = await get(`/AuditEvent?date=gt${isoAt(9)}&_summary=count`);
    expect(count.body).toMatchObject({ resourceType: 'Bundle', total: 2 });
    expect((count.body as Bundle).entry).toBeUndefined();
  });

  it('searches people by _id list and by identifier=system|value', async () => {
    expect(entryIds((await get('/Patient?_id=pt-1,pt-3,nope')).body).sort()).toEqual(['pt-1', 'pt-3']);
    expect(entryIds((await get('/Patient?identifier=urn:example:mrn|MRN2')).body)).toEqual(['pt-2']);
    expect(entryIds((await get('/PractitionerRole?_id=role-1')).body)).toEqual(['role-1']);
  });

  it('refuses parameters it does not know with 400 instead of matching nothing', async () => {
    const reply = await get('/AuditEvent?subtype=foo');
    expect(reply.status).toBe(400);
    expect(JSON.stringify(reply.body)).toContain('subtype');
  });

  it('refuses a sort it does not offer, paging values that are no whole numbers and a date it cannot read, with 400', async () => {
    // Ignored, a wrong _sort passes with data stored in time order, and a 4113 resume at Epic would skip events.
    for (const path of [
      '/AuditEvent?_sort=recorded',
      '/AuditEvent?_sort=_lastupdated',
      '/AuditEvent?_count=abc',
      '/AuditEvent?_count=-3',
      '/AuditEvent?_offset=xyz',
      '/AuditEvent?date=foo',
      '/AuditEvent?date=ge2026-13-45',
    ]) {
      const reply = await get(path);
      expect(reply.status, path).toBe(400);
      expect((reply.body as OperationOutcome).resourceType, path).toBe('OperationOutcome');
    }
    for (const sort of ['date', '-date', '_lastUpdated', '-_lastUpdated']) expect((await get(`/AuditEvent?_sort=${sort}`)).status, sort).toBe(200);
    // _count=0 is the total alone: a page of nothing with a next link would loop.
    const none = await get('/AuditEvent?_sort=date&_count=0');
    expect(none.body).toMatchObject({ resourceType: 'Bundle', total: 12 });
    expect(nextOf(none.body)).toBeUndefined();
  });

  it('reads: 200, 404 when unknown, 410 after remove()', async () => {
    expect((await get('/Practitioner/pr-1')).body).toMatchObject({ resourceType: 'Practitioner', id: 'pr-1' });
    expect((await get('/Patient/none')).status).toBe(404);
    await backend.remove('Patient', 'pt-3');
    expect((await get('/Patient/pt-3')).status).toBe(410);
    expect(entryIds((await get('/Patient?_id=pt-3')).body)).toEqual([]);
  });

  it('applies queued faults first-in first-out, each to the requests its pattern matches', async () => {
    server.faults.add({ action: { kind: 'status', status: 429, retryAfter: '7' }, match: /\/Patient\// });
    server.faults.add({ action: { kind: 'status', status: 503 }, match: /\/Patient\//, times: 2 });
    server.faults.add({ action: { kind: 'search-expired' }, match: /_offset=5/ });
    server.faults.add({ action: { kind: 'foreign-next', origin: 'http://127.0.0.1:9' }, match: /AuditEvent/ });

    const limited = await get('/Patient/pt-0');
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '7']);
    expect([(await get('/Patient/pt-0')).status, (await get('/Patient/pt-0')).status, (await get('/Patient/pt-0')).status]).toEqual([503, 503, 200]);

    const first = await get('/AuditEvent?_sort=date');
    expect(nextOf(first.body)?.startsWith('http://127.0.0.1:9/')).toBe(true);
    const expired = await get(`${server.baseUrl}/AuditEvent?_sort=date&_count=5&_offset=5`);
    expect(expired.status).toBe(400);
    expect((expired.body as OperationOutcome).issue[0]?.details?.coding?.[0]?.code).toBe('4113');
    expect(server.faults.pending).toBe(0);
    expect(server.faults.fired.map((fault) => fault.kind)).toEqual(['status', 'status', 'status', 'foreign-next', 'search-expired']);
  });

  it('records every request with its status', () => {
    const last = server.requests.at(-1);
    expect(last).toMatchObject({ method: 'GET', path: '/interconnect-fhir-oauth/api/FHIR/R4/AuditEvent', status: 400 });
    expect(last?.query).toBe('_sort=date&_count=5&_offset=5');
  });
});

describe('sandbox FHIR server scope enforcement (SMART v2: r = read, s = search)', () => {
  /** Status of a search and of a read of Patient under a token granted `scope`. */
  async function underScope(scope: string, path = { search: '/Patient?_id=pt-1', read: '/Patient/pt-1' }): Promise<{ search: number; read: number }> {
    const scoped = await startFhirServer({ backend, verifyAccessToken: (token) => token === TOKEN && { scope }, tokenUrl: TOKEN_URL });
    try {
      const status = async (route: string): Promise<number> => (await fetch(scoped.baseUrl + route, { headers: { authorization: `Bearer ${TOKEN}` } })).status;
      return { search: await status(path.search), read: await status(path.read) };
    } finally {
      await scoped.close();
    }
  }

  it('a v2 .r grant reads but does not search, a .s grant searches but does not read; .rs, v1 .read and wildcards do both', async () => {
    expect(await underScope('system/Patient.r')).toEqual({ search: 403, read: 200 });
    expect(await underScope('system/Patient.s')).toEqual({ search: 200, read: 403 });
    for (const scope of ['system/Patient.rs', 'Patient.rs', 'system/Patient.read', 'Patient.read', 'system/*.read', 'system/Patient.cruds', 'system/*.*']) {
      expect(await underScope(scope), scope).toEqual({ search: 200, read: 200 });
    }
    expect(await underScope('system/Practitioner.rs')).toEqual({ search: 403, read: 403 });
  });

  it("the bridge's default scopes and the epic-sandbox profile's grant the searches and reads the bridge makes", async () => {
    const profileScope = PROFILES['epic-sandbox']?.smart.scope ?? '';
    for (const scope of [DEFAULT_SCOPE, profileScope]) {
      expect(await underScope(scope), scope).toEqual({ search: 200, read: 200 });
      expect(await underScope(scope, { search: '/Practitioner?_id=pr-1', read: '/Practitioner/pr-1' }), scope).toEqual({ search: 200, read: 200 });
    }
    expect(await underScope(DEFAULT_SCOPE, { search: `/AuditEvent?date=ge${isoAt(2)}`, read: '/AuditEvent/ae-002' })).toEqual({ search: 200, read: 200 });
  });
});

describe('sandbox FHIR server imitating Epic public', () => {
  it('leaves AuditEvent out of /metadata and refuses its search when listAuditEvent is false', async () => {
    const quiet = await startFhirServer({
      backend,
      verifyAccessToken: () => true,
      tokenUrl: TOKEN_URL,
      listAuditEvent: false,
      software: { name: 'Epic', version: 'Aug 2025' },
    });
    try {
      const statement = (await (await fetch(`${quiet.baseUrl}/metadata`)).json()) as CapabilityStatement;
      expect(statement.software).toEqual({ name: 'Epic', version: 'Aug 2025' });
      expect(statement.rest?.[0]?.resource?.map((resource) => resource.type)).toEqual(['Patient', 'Practitioner', 'PractitionerRole', 'Encounter']);
      expect((await fetch(`${quiet.baseUrl}/AuditEvent`, { headers: { authorization: 'Bearer x' } })).status).toBe(404);
    } finally {
      await quiet.close();
    }
  });

  it("cuts a search that matches more than its type's cap as Epic does (4127 on every page, no page past the cap); a narrower one is whole", async () => {
    const capped = await startFhirServer({
      backend,
      verifyAccessToken: () => true,
      tokenUrl: TOKEN_URL,
      defaultPageSize: 3,
      searchResultCaps: { AuditEvent: 5, Practitioner: 1 },
    });
    const read = async (url: string) => (await (await fetch(url, { headers: { authorization: 'Bearer x' } })).json()) as Bundle;
    const codes = (bundle: Bundle) =>
      (bundle.entry ?? [])
        .filter((entry) => entry.search?.mode === 'outcome')
        .map((entry) => (entry.resource as OperationOutcome).issue[0]?.details?.coding?.[0]?.code);
    try {
      const first = await read(`${capped.baseUrl}/AuditEvent?date=ge${isoAt(0)}&date=lt${isoAt(12)}&_sort=date`);
      expect([first.total, entryIds(first), codes(first)]).toEqual([5, ['ae-000', 'ae-001', 'ae-002', '?'], ['4127']]);
      const second = await read(nextOf(first) ?? '');
      expect([entryIds(second), codes(second), nextOf(second)]).toEqual([['ae-003', 'ae-004', '?'], ['4127'], undefined]);
      // Within the cap: every match, no outcome. Each type has its own cap, or none.
      const narrow = await read(`${capped.baseUrl}/AuditEvent?date=ge${isoAt(0)}&date=lt${isoAt(5)}&_sort=date&_count=8`);
      expect([narrow.total, entryIds(narrow), codes(narrow)]).toEqual([5, ['ae-000', 'ae-001', 'ae-002', 'ae-003', 'ae-004'], []]);
      const patients = await read(`${capped.baseUrl}/Patient?_id=pt-0,pt-1,pt-2`);
      expect([entryIds(patients).sort(), codes(patients)]).toEqual([['pt-0', 'pt-1', 'pt-2'], []]);
      const practitioners = await read(`${capped.baseUrl}/Practitioner?_id=pr-0,pr-1`);
      expect([practitioners.total, codes(practitioners)]).toEqual([1, ['4127']]);
    } finally {
      await capped.close();
    }
  });
});

describe('sandbox FHIR server paging and size faults', () => {
  it('self-next and stuck-next make looping next links; huge-body streams a padded Bundle with or without Content-Length', async () => {
    server.faults.add({ action: { kind: 'self-next' }, match: /AuditEvent/ });
    server.faults.add({ action: { kind: 'stuck-next' }, match: /AuditEvent/, times: 2 });
    server.faults.add({ action: { kind: 'huge-body', bytes: 300_000, contentLength: true }, match: /AuditEvent/ });
    server.faults.add({ action: { kind: 'huge-body', bytes: 200_000, contentLength: false }, match: /AuditEvent/ });

    const looped = await get('/AuditEvent?_sort=date&_count=3');
    expect(nextOf(looped.body)).toBe((looped.body as Bundle).link?.find((link) => link.relation === 'self')?.url);

    const stuck = await get('/AuditEvent?_sort=date&_count=3');
    const again = await get(nextOf(stuck.body) ?? '');
    expect(entryIds(again.body)).toEqual(entryIds(stuck.body));
    expect(new URL(nextOf(again.body) ?? '').searchParams.get('_sid')).toBe('2');
    expect(new URL(nextOf(again.body) ?? '').searchParams.get('_offset')).toBe('0');

    for (const [bytes, declared] of [
      [300_000, '300000'],
      [200_000, null],
    ] as const) {
      const response = await fetch(`${server.baseUrl}/AuditEvent`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(response.headers.get('content-length')).toBe(declared);
      const text = await response.text();
      expect(Buffer.byteLength(text)).toBe(bytes);
      expect(JSON.parse(text)).toMatchObject({ resourceType: 'Bundle', type: 'searchset', entry: [] });
    }
    expect(server.faults.pending).toBe(0);
  });

  it('partial-id-list answers only the first ids of an `_id` list, without a word about the rest', async () => {
    server.faults.add({ action: { kind: 'partial-id-list', max: 2 }, match: /\/Patient\?_id=/ });
    const partial = await get('/Patient?_id=pt-0,pt-1,pt-2');
    expect(entryIds(partial.body)).toEqual(['pt-0', 'pt-1']);
    expect(entryIds((await get('/Patient?_id=pt-0,pt-1,pt-2')).body)).toEqual(['pt-0', 'pt-1', 'pt-2']);
    expect(() => server.faults.add({ action: { kind: 'partial-id-list', max: 0 } })).toThrow(TypeError);
    expect(server.faults.pending).toBe(0);
  });

  it('readOnlyTypes: /metadata lists read only for them and their search answers 404', async () => {
    const readOnly = await startFhirServer({ backend, verifyAccessToken: (token) => token === TOKEN, tokenUrl: TOKEN_URL, readOnlyTypes: ['Patient'] });
    try {
      const statement = (await (await fetch(`${readOnly.baseUrl}/metadata`)).json()) as CapabilityStatement;
      const byType = Object.fromEntries((statement.rest?.[0]?.resource ?? []).map((resource) => [resource.type, resource.interaction?.map((i) => i.code)]));
      expect(byType).toMatchObject({ Patient: ['read'], Practitioner: ['read', 'search-type'] });
      const headers = { authorization: `Bearer ${TOKEN}` };
      expect((await fetch(`${readOnly.baseUrl}/Patient?_id=pt-1`, { headers })).status).toBe(404);
      expect((await fetch(`${readOnly.baseUrl}/Patient/pt-1`, { headers })).status).toBe(200);
    } finally {
      await readOnly.close();
    }
  });
});

describe('sandbox FHIR server over the generated backend', () => {
  it('pages the generated timeline with links the same way', async () => {
    const dataset = generateDataset({ seed: 7, practitioners: 3, patients: 5, events: 30, start: '2026-11-01T00:00:00.000Z', end: '2026-11-01T01:00:00.000Z' });
    const generated = await startFhirServer({ backend: createGeneratedBackend(dataset), verifyAccessToken: () => true, tokenUrl: TOKEN_URL });
    try {
      const ids: string[] = [];
      let url: string | undefined = `${generated.baseUrl}/AuditEvent?_sort=date&_count=12`;
      while (url) {
        const body = (await (await fetch(url, { headers: { authorization: 'Bearer x' } })).json()) as Bundle;
        expect(body.total).toBe(30);
        ids.push(...entryIds(body));
        url = nextOf(body);
      }
      expect(ids).toEqual(Array.from({ length: 30 }, (_, i) => dataset.eventAt(i).id));
      expect(generated.requests.map((request) => new URLSearchParams(request.query).get('_offset') ?? '0')).toEqual(['0', '12', '24']);
    } finally {
      await generated.close();
    }
  });
});
