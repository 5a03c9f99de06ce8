import type { AuditEvent, Bundle, FhirResource, Patient, Practitioner } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { SANDBOX_IDS } from '../../src/sandbox/epic-ids.js';
import { startFhirServer } from '../../src/sandbox/fhir-server.js';
import { createGeneratedBackend } from '../../src/sandbox/generated-backend.js';
import { type GeneratorOptions, generateDataset } from '../../src/sandbox/generator.js';
import { entityId, ID_KIND } from '../../src/sandbox/generator-random.js';

const options: GeneratorOptions = {
  seed: 77,
  practitioners: 20,
  patients: 60,
  events: 300,
  start: '2026-11-01T00:00:00Z',
  end: '2026-11-02T00:00:00Z',
  noLoginRate: 0.2,
};
const ds = generateDataset(options);
const backend = createGeneratedBackend(ds);
const events = [...ds.events()];
const patients = [...ds.patients()];
const practitioners = [...ds.practitioners()];
const recorded = events.map((e) => Date.parse(e.recorded));

const ids = (resources: FhirResource[]): Array<string | undefined> => resources.map((r) => r.id);
const search = (type: string, query: string) => backend.search(type, new URLSearchParams(query));

/** A probe value and the [lo, hi) its precision covers, worked out by hand with Date.parse. */
interface Probe {
  readonly value: string;
  readonly lo: number;
  readonly hi: number;
}

function probes(): Probe[] {
  const out: Probe[] = [
    { value: '2026-11-01', lo: Date.parse('2026-11-01T00:00:00Z'), hi: Date.parse('2026-11-02T00:00:00Z') },
    { value: '2026-11', lo: Date.parse('2026-11-01T00:00:00Z'), hi: Date.parse('2026-12-01T00:00:00Z') },
    { value: '2026', lo: Date.parse('2026-01-01T00:00:00Z'), hi: Date.parse('2027-01-01T00:00:00Z') },
    { value: '2026-10-31', lo: Date.parse('2026-10-31T00:00:00Z'), hi: Date.parse('2026-11-01T00:00:00Z') },
    { value: '2026-11-01T05:00Z', lo: Date.parse('2026-11-01T05:00:00Z'), hi: Date.parse('2026-11-01T05:01:00Z') },
    { value: '2026-11-01T09:30:00+02:00', lo: Date.parse('2026-11-01T07:30:00Z'), hi: Date.parse('2026-11-01T07:30:01Z') },
    { value: '2026-11-01T12:00:00', lo: Date.parse('2026-11-01T12:00:00Z'), hi: Date.parse('2026-11-01T12:00:01Z') },
  ];
  for (const i of [0, 1, 137, 299]) {
    const t = recorded[i] ?? 0;
    const iso = new Date(t).toISOString();
    out.push({ value: iso, lo: t, hi: t + 1 });
    out.push({ value: new Date(t + 1).toISOString(), lo: t + 1, hi: t + 2 });
    out.push({ value: `${iso.slice(0, 19)}Z`, lo: Math.floor(t / 1000) * 1000, hi: Math.floor(t / 1000) * 1000 + 1000 });
    out.push({ value: `${iso.slice(0, 23)}4567Z`, lo: t + 0.4567, hi: t + 0.4568 });
  }
  return out;
}

const MATCHES: Record<string, (t: number, p: Probe) => boolean> = {
  eq: (t, p) => t >= p.lo && t < p.hi,
  ge: (t, p) => t >= p.lo,
  gt: (t, p) => t >= p.hi,
  le: (t, p) => t < p.hi,
  lt: (t, p) => t < p.lo,
};

function bruteForce(filters: Array<{ prefix: string; probe: Probe }>): AuditEvent[] {
  return events.filter((_, i) => filters.every(({ prefix, probe }) => MATCHES[prefix]?.(recorded[i] ?? 0, probe)));
}

describe('AuditEvent search over the generated timeline', () => {
  it('matches a brute-force filter for every prefix, precision and parameter', async () => {
    for (const probe of probes()) {
      for (const prefix of Object.keys(MATCHES)) {
        const expected = ids(bruteForce([{ prefix, probe }]));
        for (const param of ['date', '_lastUpdated']) {
          const raw = prefix === 'eq' && probe.value.startsWith('2026-11-01T12') ? probe.value : `${prefix}${probe.value}`;
          const result = await search('AuditEvent', new URLSearchParams({ [param]: raw, _count: '1000', _sort: param }).toString());
          expect(ids(result.resources), `${param}=${raw}`).toEqual(expected);
          expect(result.total).toBe(expected.length);
        }
      }
    }
  });

  it('ANDs a ge/lt window and pages it exactly, ascending and descending', async () => {
    const probeList = probes();
    const from = probeList.find((p) => p.value === '2026-11-01T05:00Z') as Probe;
    const to = probeList.find((p) => p.value === '2026-11-01T09:30:00+02:00') as Probe;
    const window = bruteForce([
      { prefix: 'ge', probe: from },
      { prefix: 'lt', probe: to },
    ]);
    expect(window.length).toBeGreaterThan(30);
    for (const sort of ['date', '-_lastUpdated']) {
      const expected = sort.startsWith('-') ? [...window].reverse() : window;
      const walked: FhirResource[] = [];
      for (let offset = 0; offset < expected.length + 7; offset += 7) {
        const page = await search('AuditEvent', `date=ge${from.value}&date=lt${encodeURIComponent(to.value)}&_sort=${sort}&_count=7&_offset=${offset}`);
        expect(page.total).toBe(window.length);
        walked.push(...page.resources);
      }
      expect(walked).toEqual(expected);
    }
    expect(await search('AuditEvent', `date=ge${from.value}&date=lt${encodeURIComponent(to.value)}&_summary=count`)).toEqual({
      resources: [],
      total: window.length,
    });
    // An unencoded '+' in the offset arrives as a space after form decoding.
    expect((await search('AuditEvent', `date=lt${to.value}&_count=0`)).total).toBe(bruteForce([{ prefix: 'lt', probe: to }]).length);
  });

  it('orders by instant across the end of DST, whatever offset each recorded text carries', async () => {
    const window = await search('AuditEvent', 'date=ge2026-11-01T06:00:00Z&date=lt2026-11-01T10:00:00Z&_sort=date&_count=1000');
    const texts = window.resources.map((r) => (r as AuditEvent).recorded);
    expect(texts.some((t) => t.endsWith('-06:00'))).toBe(true);
    expect(texts.some((t) => t.endsWith('-07:00'))).toBe(true);
    const instants = texts.map((t) => Date.parse(t));
    expect(instants).toEqual([...instants].sort((x, y) => x - y));
    expect(ids(window.resources)).toEqual(
      ids(events.filter((_, i) => (recorded[i] ?? 0) >= Date.parse('2026-11-01T06:00:00Z') && (recorded[i] ?? 0) < Date.parse('2026-11-01T10:00:00Z'))),
    );
  });

  it('defaults to 100 per page, and past the end answers an empty page with the total', async () => {
    expect(ids((await search('AuditEvent', '')).resources)).toEqual(ids(events.slice(0, 100)));
    expect(await search('AuditEvent', '_offset=5000')).toEqual({ resources: [], total: events.length });
  });

  it('reads every event, patient and practitioner by id; other ids and types are not found', async () => {
    for (const e of events) expect(await backend.read('AuditEvent', e.id ?? '')).toEqual(e);
    for (const p of patients) expect(await backend.read('Patient', p.id ?? '')).toEqual(p);
    for (const p of practitioners) expect(await backend.read('Practitioner', p.id ?? '')).toEqual(p);
    expect(await backend.read('Practitioner', patients[0]?.id ?? '')).toBeUndefined();
    expect(await backend.read('Patient', 'eDoesNotExist000000000000')).toBeUndefined();
    expect(await backend.read('Patient', generateDataset({ ...options, seed: 78 }).patientAt(0).id ?? '')).toBeUndefined();
    expect(await backend.read('PractitionerRole', practitioners[0]?.id ?? '')).toBeUndefined();
    expect(await search('PractitionerRole', '_id=x')).toEqual({ resources: [], total: 0 });
  });
});

describe('Patient and Practitioner search', () => {
  const hasIdentifier = (r: Patient | Practitioner, system: string | undefined, value: string): boolean =>
    (r.identifier ?? []).some((id) => id.value === value && (system === undefined || id.system === system));

  it('_id lists return the known ids in index order, once each', async () => {
    const wanted = [patients[40]?.id, patients[3]?.id, 'bogus', patients[40]?.id, practitioners[1]?.id].join(',');
    expect(ids((await search('Patient', `_id=${wanted}`)).resources)).toEqual([patients[3]?.id, patients[40]?.id]);
    expect(await search('Patient', '_id=')).toEqual({ resources: [], total: 0 });
  });

  it('identifier=system|value and bare values match a brute-force scan for every identifier the data has', async () => {
    const cases: Array<{ type: 'Patient' | 'Practitioner'; all: Array<Patient | Practitioner>; system: string | undefined; value: string }> = [];
    for (const [type, all] of [
      ['Patient', patients],
      ['Practitioner', practitioners],
    ] as const) {
      for (const r of all.slice(0, 15)) {
        for (const id of r.identifier ?? []) {
          cases.push({ type, all, system: id.system, value: id.value ?? '' });
          cases.push({ type, all, system: undefined, value: id.value ?? '' });
          cases.push({ type, all, system: SANDBOX_IDS.npiSystem, value: id.value ?? '' });
          cases.push({ type, all, system: id.system, value: (id.value ?? '').toLowerCase() });
        }
      }
    }
    for (const { type, all, system, value } of cases) {
      const token = system === undefined ? value : `${system}|${value}`;
      const expected = all.filter((r) => hasIdentifier(r, system, value)).map((r) => r.id);
      const result = await search(type, new URLSearchParams({ identifier: token }).toString());
      expect(ids(result.resources), `${type} identifier=${token}`).toEqual(expected);
    }
    const [a, b] = [patients[7], patients[2]];
    const mrn = (p: Patient | undefined): string => p?.identifier?.find((id) => id.type?.text === 'EPI' && id.use !== 'old')?.value ?? '';
    expect(ids((await search('Patient', `identifier=${SANDBOX_IDS.mrnSystem}|${mrn(a)},${SANDBOX_IDS.mrnSystem}|${mrn(b)}`)).resources)).toEqual([
      b?.id,
      a?.id,
    ]);
    expect(ids((await search('Patient', `identifier=|${mrn(a)}`)).resources)).toEqual([]);
    // FHIR search escapes: `\,` belongs to the value (here "<MRN>," matches nothing), it does not start another token.
    expect(ids((await search('Patient', `identifier=${SANDBOX_IDS.mrnSystem}|${mrn(a)}\\,,${SANDBOX_IDS.mrnSystem}|${mrn(b)}`)).resources)).toEqual([b?.id]);
    expect(ids((await search('Patient', `identifier=${SANDBOX_IDS.mrnSystem}|${mrn(a)}\\|x`)).resources)).toEqual([]);
    expect(ids((await search('Patient', `identifier=${mrn(a)}&_id=${a?.id}`)).resources)).toEqual([a?.id]);
    expect(ids((await search('Patient', `identifier=${mrn(a)}&_id=${b?.id}`)).resources)).toEqual([]);
  });

  it('finds canary-marked MRNs and logins too', async () => {
    const canary = generateDataset({ ...options, canary: true });
    const canaryBackend = createGeneratedBackend(canary);
    const patient = canary.patientAt(33);
    const external = (p: Practitioner | undefined): string | undefined =>
      p?.identifier?.find((i) => i.system === SANDBOX_IDS.empSystem && i.type?.text === 'EXTERNAL' && i.use !== 'old')?.value;
    const practitioner = [...canary.practitioners()].find((p) => external(p) !== undefined) as Practitioner;
    const login = external(practitioner) ?? '';
    expect(login).toMatch(/CANARY/);
    const mrn = patient.identifier?.find((i) => i.type?.text === 'EPI' && i.use !== 'old')?.value ?? '';
    expect(mrn).toMatch(/CANARY/);
    const byMrn = await canaryBackend.search('Patient', new URLSearchParams({ identifier: `${SANDBOX_IDS.mrnSystem}|${mrn}` }));
    expect(ids(byMrn.resources)).toEqual([patient.id]);
    const byLogin = await canaryBackend.search('Practitioner', new URLSearchParams({ identifier: `${SANDBOX_IDS.empSystem}|${login}` }));
    expect(ids(byLogin.resources)).toEqual([practitioner.id]);
  });

  it('pages through everyone when unfiltered', async () => {
    expect(await search('Patient', '_count=10&_offset=55')).toEqual({ resources: patients.slice(55), total: 60 });
    expect(await search('Practitioner', '_summary=count')).toEqual({ resources: [], total: practitioners.length });
    const pages = [
      await search('Practitioner', '_count=7'),
      await search('Practitioner', '_count=7&_offset=7'),
      await search('Practitioner', '_count=7&_offset=14'),
    ];
    expect(pages.flatMap((page) => page.resources)).toEqual(practitioners);
  });

  it('has no Practitioner for a user without a provider record: no read, no _id or identifier match, skipped in listings', async () => {
    const staff = Array.from({ length: options.practitioners }, (_, i) => i).filter((i) => ds.practitionerAt(i) === undefined);
    expect(staff.length).toBeGreaterThan(0);
    expect(practitioners).toHaveLength(options.practitioners - staff.length);
    const staffEvent = events.find((event) => event.agent[0]?.who?.reference === undefined && event.agent[0]?.who?.identifier !== undefined);
    const who = staffEvent?.agent[0]?.who;
    expect(who?.identifier?.system).toBe(SANDBOX_IDS.empSystem);
    // The login an event names such a user by decodes to their index, yet nothing carries it.
    expect((await search('Practitioner', `identifier=${SANDBOX_IDS.empSystem}|${who?.identifier?.value}`)).resources).toEqual([]);
    const staffId = entityId(options.seed, ID_KIND.practitioner, staff[0] as number);
    expect(await backend.read('Practitioner', staffId)).toBeUndefined();
    expect(await search('Practitioner', `_id=${staffId},${practitioners[0]?.id}`)).toEqual({ resources: [practitioners[0]], total: 1 });
  });
});

describe('invalid searches', () => {
  it('throws BRG_ERR_INPUT_INVALID naming the parameter, never echoing an identifier value', async () => {
    const bad: Array<[string, string, RegExp]> = [
      ['AuditEvent', 'patient=Patient/x', /AuditEvent search parameter "patient" is not supported/],
      ['AuditEvent', 'foo=bar', /"foo" is not supported/],
      ['AuditEvent', '_sort=status', /_sort=status is not supported/],
      ['AuditEvent', 'date=ne2026-11-01', /prefix "ne" is not supported/],
      ['AuditEvent', 'date=ge2026-13-01', /date=ge2026-13-01 is not a FHIR date/],
      ['AuditEvent', '_count=-1', /_count must be a whole number/],
      ['AuditEvent', '_summary=true', /_summary=true is not supported/],
      ['Patient', 'name=Smith', /Patient search parameter "name" is not supported/],
      ['Patient', 'identifier:of-type=x', /"identifier:of-type" is not supported/],
      ['Practitioner', `identifier=${SANDBOX_IDS.empSystem}|`, /identifier=system\| \(any value\) is not supported/],
    ];
    for (const [type, query, message] of bad) {
      const error = await search(type, query).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `${type}?${query}`).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
      expect((error as BridgeError).message).toMatch(message);
    }
    const login = practitioners.flatMap((p) => p.identifier ?? []).find((i) => i.system === SANDBOX_IDS.empSystem && i.type?.text === 'EXTERNAL')?.value ?? '';
    expect(login).toMatch(/^[A-Z]+\d+$/);
    const error = await search('Practitioner', `identifier=${login}&name=x`).catch((e: unknown) => e);
    expect(String((error as Error).message)).not.toContain(login);
  });
});

describe('scale', () => {
  it('serves page 4000 of a 1,000,000-event dataset without materialising it', async () => {
    const big = generateDataset({
      seed: 9,
      practitioners: 2_000,
      patients: 100_000,
      events: 1_000_000,
      start: '2026-01-01T00:00:00Z',
      end: '2026-12-01T00:00:00Z',
    });
    let built = 0;
    const bigBackend = createGeneratedBackend({
      ...big,
      eventAt: (i) => {
        built += 1;
        return big.eventAt(i);
      },
    });
    const page = await bigBackend.search('AuditEvent', new URLSearchParams('date=ge2026-01-01&_sort=date&_count=200&_offset=800000'));
    const counted = await bigBackend.search('AuditEvent', new URLSearchParams('date=ge2026-06-01&date=lt2026-07-01&_summary=count'));
    expect(page.total).toBe(1_000_000);
    expect(ids(page.resources)).toEqual(Array.from({ length: 200 }, (_, k) => big.eventAt(800_000 + k).id));
    expect(counted.total).toBe(big.firstEventAtOrAfter('2026-07-01T00:00:00Z') - big.firstEventAtOrAfter('2026-06-01T00:00:00Z'));
    expect(counted.total).toBeGreaterThan(80_000);
    // Only the page itself was generated: nothing of the million is held (a deterministic count, not a heap reading).
    expect(built).toBe(200);
  });
});

describe('behind the sandbox FHIR server', () => {
  it('serves searchset Bundles whose next links walk the whole window', async () => {
    const server = await startFhirServer({ backend, verifyAccessToken: (token) => token === 't', tokenUrl: 'http://127.0.0.1:1/token' });
    try {
      let url: string | undefined = `${server.baseUrl}/AuditEvent?date=ge2026-11-01T06:00:00Z&date=lt2026-11-01T18:00:00Z&_sort=date&_count=50`;
      const seen: FhirResource[] = [];
      while (url) {
        const response: Response = await fetch(url, { headers: { authorization: 'Bearer t' } });
        expect(response.status).toBe(200);
        const bundle = (await response.json()) as Bundle<FhirResource>;
        seen.push(...(bundle.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : [])));
        url = bundle.link?.find((l) => l.relation === 'next')?.url;
      }
      const expected = events.filter(
        (_, i) => (recorded[i] ?? 0) >= Date.parse('2026-11-01T06:00:00Z') && (recorded[i] ?? 0) < Date.parse('2026-11-01T18:00:00Z'),
      );
      expect(ids(seen)).toEqual(ids(expected));
      const read = await fetch(`${server.baseUrl}/Patient/${patients[5]?.id ?? ''}`, { headers: { authorization: 'Bearer t' } });
      expect(await read.json()).toEqual(patients[5]);
    } finally {
      await server.close();
    }
  });
});
