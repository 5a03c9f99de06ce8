/**
 * The sandbox generator emits what Epic sends (issue #15): identifiers typed by `type.text` only with Epic OIDs,
 * several per person with `use` (an old MRN, an old login) and decoys; AuditEvent times in the organisation's local
 * offset across the end of daylight saving time, some UTC, with and without fractions, always the same instants. The
 * built-in mapping must fill the MRN, login and user id from that data with no site options.
 */
import type { Patient, Practitioner } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { builtinMappingPath, createFillCounter, fillWarnings, loadMapping, mapEvent } from '../../src/mapping/index.js';
import { referenceKey } from '../../src/reference-keys.js';
import { SANDBOX_IDS } from '../../src/sandbox/epic-ids.js';
import { type GeneratorOptions, generateDataset } from '../../src/sandbox/generator.js';
import { denverOffsetMinutes, formatLocal } from '../../src/sandbox/generator-time.js';
import { current, preciseMs } from '../support/generated-values.js';

const base: GeneratorOptions = { seed: 5, practitioners: 40, patients: 300, events: 2000, start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z' };

describe('AuditEvent times', () => {
  const ds = generateDataset(base);
  const events = [...ds.events()];
  /** The server's own UTC stamp of each event's instant, to compare the local texts against. */
  const recorded = events.map((e) => Date.parse(e.meta?.lastUpdated ?? ''));

  it('writes recorded as Epic might: local offsets across the end of DST, some UTC, with and without fractions; same instants', () => {
    const texts = events.map((e) => e.recorded);
    // 2026-11-01 08:00 UTC: 02:00 MDT falls back to 01:00 MST.
    const fallBack = Date.parse('2026-11-01T08:00:00Z');
    events.forEach((event, i) => {
      const t = recorded[i] ?? 0;
      expect(preciseMs(event.recorded)).toBe(t);
      if (event.recorded.endsWith('-06:00')) expect(t).toBeLessThan(fallBack);
      if (event.recorded.endsWith('-07:00')) expect(t).toBeGreaterThanOrEqual(fallBack);
      expect(event.recorded).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|-06:00|-07:00)$/);
      expect(/\.\d{3}/.test(event.recorded)).toBe(t % 1000 !== 0);
    });
    const share = (test: (text: string) => boolean): number => texts.filter(test).length / texts.length;
    expect(share((x) => x.endsWith('-06:00'))).toBeGreaterThan(0.2);
    expect(share((x) => x.endsWith('-07:00'))).toBeGreaterThan(0.3);
    expect(share((x) => x.endsWith('Z'))).toBeGreaterThan(0.15);
    expect(share((x) => !x.includes('.'))).toBeGreaterThan(0.25);
    expect(share((x) => x.includes('.'))).toBeGreaterThan(0.4);
    // Sorting the text is not sorting the instants: the hour after the fall back repeats 01:xx.
    const textOrder = events
      .map((e, i) => ({ text: e.recorded, t: recorded[i] ?? 0 }))
      .filter((e) => !e.text.endsWith('Z'))
      .sort((a, b) => (a.text < b.text ? -1 : 1));
    expect(textOrder.some((e, i) => i > 0 && e.t < (textOrder[i - 1]?.t ?? 0))).toBe(true);
  });

  it('computes America/Denver offsets exactly as the IANA zone data does, DST edges included', () => {
    const intl = new Intl.DateTimeFormat('en-US', { timeZone: 'America/Denver', timeZoneName: 'longOffset' });
    const offsetOf = (ms: number): number => {
      const name = intl.formatToParts(ms).find((part) => part.type === 'timeZoneName')?.value ?? '';
      const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
      return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
    };
    const instants: number[] = [];
    for (let ms = Date.parse('2020-01-01T00:00:00Z'); ms < Date.parse('2031-01-01T00:00:00Z'); ms += 7 * 3_600_000 + 1_234_567) instants.push(ms);
    for (const edge of [
      '2026-03-08T09:00:00Z',
      '2026-11-01T08:00:00Z',
      '2027-03-14T09:00:00Z',
      '2027-11-07T08:00:00Z',
      '2024-03-10T09:00:00Z',
      '2024-11-03T08:00:00Z',
    ]) {
      instants.push(Date.parse(edge) - 1, Date.parse(edge));
    }
    for (const ms of instants) expect(denverOffsetMinutes(ms), new Date(ms).toISOString()).toBe(offsetOf(ms));
    expect(formatLocal(Date.parse('2026-11-01T07:59:59.999Z'), true)).toBe('2026-11-01T01:59:59.999-06:00');
    expect(formatLocal(Date.parse('2026-11-01T08:00:00Z'), false)).toBe('2026-11-01T01:00:00-07:00');
  });
});

describe('people', () => {
  const ds = generateDataset({ ...base, noLoginRate: 0.1 });
  const patients = [...ds.patients()];
  const practitioners = [...ds.practitioners()];

  it('gives patients Epic-shaped identifiers: type.text only, Epic OIDs, an EPI MRN kept as a zero-padded string, decoys', () => {
    expect(patients[0]?.identifier?.slice(0, 3)).toEqual([
      { use: 'usual', type: { text: 'EPIC' }, system: SANDBOX_IDS.enterpriseIdSystem, value: 'E4007' },
      { use: 'usual', type: { text: 'EXTERNAL' }, system: SANDBOX_IDS.patientInternalSystem, value: 'Z6129' },
      { use: 'usual', type: { text: 'INTERNAL' }, system: SANDBOX_IDS.patientInternalSystem, value: '     Z6129' },
    ]);
    expect(current(patients[0] as Patient, SANDBOX_IDS.mrnSystem, 'EPI')).toBe('000203713');
    const all = patients.flatMap((p) => p.identifier ?? []);
    expect(all.every((id) => id.type?.coding === undefined)).toBe(true);
    expect(all.filter((id) => id.type !== undefined).every((id) => id.system?.startsWith('urn:oid:1.2.840.114350.1.13.999.2.7.'))).toBe(true);
    expect(SANDBOX_IDS.mrnSystem).toMatch(/^urn:oid:1\.2\.840\.114350\.1\.13\.\d+\.2\.7\.5\.737384\.14$/);
    expect(new Set(patients.map((p) => current(p, SANDBOX_IDS.mrnSystem))).size).toBe(patients.length);
    // A merged chart's former MRN: use 'old', listed before the current one, never equal to anyone's current MRN.
    const merged = patients.filter((p) => p.identifier?.some((id) => id.use === 'old'));
    expect(merged.length).toBeGreaterThan(3);
    const mrns = new Set(patients.map((p) => current(p, SANDBOX_IDS.mrnSystem)));
    for (const p of merged) {
      const epi = (p.identifier ?? []).filter((id) => id.type?.text === 'EPI');
      expect(epi.map((id) => id.use)).toEqual(['old', 'usual']);
      expect(mrns.has(epi[0]?.value)).toBe(false);
    }
    expect(patients.some((p) => p.identifier?.some((id) => id.type?.text === 'MYCHARTLOGIN'))).toBe(true);
    expect(patients.some((p) => p.identifier?.some((id) => id.type === undefined && id.system === SANDBOX_IDS.payerMemberSystem))).toBe(true);
  });

  it('maps with the built-in mapping and no site options: MRN, login and user id filled, never the old MRN', () => {
    const mapping = loadMapping(builtinMappingPath('epic'));
    const byKey = new Map<string, Patient | Practitioner>([
      ...patients.map((p) => [referenceKey('Patient', p.id ?? ''), p] as const),
      ...practitioners.map((p) => [referenceKey('Practitioner', p.id ?? ''), p] as const),
    ]);
    const counter = createFillCounter(mapping);
    const mrnColumn = mapping.columns.findIndex((c) => c.name === 'PATIENT.PAT_MRN_ID');
    const oldMrns = new Set(patients.flatMap((p) => (p.identifier ?? []).filter((id) => id.use === 'old').map((id) => id.value)));
    for (const event of ds.events()) {
      const result = mapEvent(event, mapping, { get: (key) => byKey.get(key) });
      counter.addResult(result);
      for (const row of result.rows) expect(oldMrns.has(row[mrnColumn])).toBe(false);
    }
    const report = counter.report();
    expect(report.rows).toBeGreaterThan(1000);
    for (const name of ['PATIENT.PAT_MRN_ID', 'EMP.SYSTEM_LOGIN', 'CLARITY_EMP.USER_ID', 'employee_last_name']) {
      expect(report.columns.find((c) => c.column === name)?.empty, name).toBe(0);
    }
    expect(fillWarnings(report)).toEqual([]);
  });
});
