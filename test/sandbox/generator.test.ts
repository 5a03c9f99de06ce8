import { describe, expect, it } from 'vitest';
import { generateDataset, type GeneratorOptions } from '../../src/sandbox/generator.js';
import { SANDBOX_IDS } from '../../src/sandbox/epic-ids.js';
import { BridgeError } from '../../src/errors.js';

const base: GeneratorOptions = { seed: 5, practitioners: 40, patients: 300, events: 2000, start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z' };

describe('generateDataset', () => {
  it('is deterministic: same seed, identical JSON; another seed, different data', () => {
    const a = generateDataset(base);
    const b = generateDataset(base);
    const c = generateDataset({ ...base, seed: 6 });
    expect(JSON.stringify([...a.events()])).toBe(JSON.stringify([...b.events()]));
    expect(JSON.stringify([...a.patients()])).toBe(JSON.stringify([...b.patients()]));
    expect(JSON.stringify(a.eventAt(17))).not.toBe(JSON.stringify(c.eventAt(17)));
    expect(JSON.stringify(a.patientAt(3))).not.toBe(JSON.stringify(c.patientAt(3)));
  });

  it('gives random access equal to streaming, and strictly increasing recorded times inside the window', () => {
    const ds = generateDataset(base);
    const streamed = [...ds.events()];
    expect(streamed).toHaveLength(2000);
    for (const i of [0, 1, 999, 1999]) expect(ds.eventAt(i)).toEqual(streamed[i]);
    const times = streamed.map((e) => Date.parse(e.recorded));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1] as number);
    expect(times[0]).toBeGreaterThanOrEqual(Date.parse(base.start));
    expect(times.at(-1)).toBeLessThan(Date.parse(base.end));
    expect(ds.firstEventAtOrAfter(streamed[700]?.recorded ?? '')).toBe(700);
    expect(ds.firstEventAtOrAfter(new Date(Date.parse(streamed[700]?.recorded ?? '') + 1).toISOString())).toBe(701);
  });

  it('references only generated patients and practitioners, as describeEvent says', () => {
    const ds = generateDataset(base);
    const patientIds = new Set([...ds.patients()].map((p) => p.id));
    const practitionerIds = new Set([...ds.practitioners()].map((p) => p.id));
    for (let i = 0; i < 500; i++) {
      const event = ds.eventAt(i);
      const shape = ds.describeEvent(i);
      const refs = (event.entity ?? []).map((e) => e.what?.reference).filter(Boolean);
      expect(refs).toEqual(shape.patientIds.map((id) => `Patient/${id}`));
      shape.patientIds.forEach((id) => expect(patientIds).toContain(id));
      expect(event.agent[0]?.who?.reference).toBe(`Practitioner/${shape.practitionerId}`);
      expect(practitionerIds).toContain(shape.practitionerId);
      expect(event.outcome).toBe(shape.failure ? '8' : '0');
      expect(event.agent[0]?.purposeOfUse?.[0]?.coding?.[0]?.code === 'BTG').toBe(shape.btg);
    }
  });

  it('roughly honours the configured rates (fixed seed, so exact counts are stable)', () => {
    const ds = generateDataset({ ...base, events: 10_000, btgRate: 0.05, searchRate: 0.1, failureRate: 0.02, multiPatientRate: 0.03 });
    const shapes = Array.from({ length: 10_000 }, (_, i) => ds.describeEvent(i));
    const share = (f: (s: (typeof shapes)[number]) => boolean): number => shapes.filter(f).length / shapes.length;
    expect(share((s) => s.search)).toBeGreaterThan(0.08);
    expect(share((s) => s.search)).toBeLessThan(0.12);
    expect(share((s) => s.btg)).toBeGreaterThan(0.035);
    expect(share((s) => s.btg)).toBeLessThan(0.065);
    expect(share((s) => s.failure)).toBeGreaterThan(0.01);
    expect(share((s) => s.failure)).toBeLessThan(0.03);
    expect(share((s) => s.patientIds.length === 2)).toBeGreaterThan(0.015);
  });

  it('shapes people like Epic: MRN with MR type in the sandbox system, EMP login, work email', () => {
    const ds = generateDataset(base);
    const patient = ds.patientAt(0);
    expect(patient.identifier?.[0]).toMatchObject({ system: SANDBOX_IDS.mrnSystem, type: { coding: [{ code: 'MR' }] }, value: '2000000' });
    const practitioner = ds.practitionerAt(0);
    const login = practitioner.identifier?.find((i) => i.system === SANDBOX_IDS.empSystem)?.value ?? '';
    expect(login).toMatch(/^[A-Z]+0$/);
    expect(practitioner.telecom?.at(-1)).toEqual({ system: 'email', value: `${login.toLowerCase()}@${SANDBOX_IDS.emailDomain}`, use: 'work' });
  });

  it('in canary mode marks every PHI value and no id', () => {
    const ds = generateDataset({ ...base, canary: true });
    for (let i = 0; i < 50; i++) {
      const p = ds.patientAt(i);
      expect(p.id).not.toContain('CANARY');
      expect(p.name?.[0]?.family).toContain('CANARY');
      expect(p.name?.[0]?.given?.[0]).toContain('CANARY');
      expect(p.address?.[0]?.line?.[0]).toContain('CANARY');
      expect(p.address?.[0]?.city).toContain('CANARY');
      expect(p.identifier?.[0]?.value).toContain('CANARY');
    }
    for (let i = 0; i < 40; i++) {
      const pr = ds.practitionerAt(i);
      expect(pr.name?.[0]?.family).toContain('CANARY');
      for (const t of pr.telecom ?? []) expect(t.value).toContain('canary');
    }
  });

  it('rejects impossible options with a clear error', () => {
    expect(() => generateDataset({ ...base, patients: 0 })).toThrow(BridgeError);
    expect(() => generateDataset({ ...base, start: base.end })).toThrow(/start .* must be an instant before end/);
  });
});
