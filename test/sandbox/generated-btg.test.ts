/**
 * Break-the-glass as the generator sends it (both signals, the purpose of use only, or the DICOM subtype only), mapped
 * with the built-in Epic mapping against the generator's own Patients and Practitioners: every such event's rows say
 * restricted access, with the reason and the explanation the event carries, and no ordinary access says it.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { sanitizer } from '../../src/connector-file/index.js';
import { builtinMappingPath, loadMapping, mapEvent } from '../../src/mapping/index.js';
import { referenceKey } from '../../src/reference-keys.js';
import { generateDataset } from '../../src/sandbox/generator.js';

const mapping = loadMapping(builtinMappingPath('epic'));
const column = (name: string): number => mapping.columns.findIndex((c) => c.name === name);
const REASON = column('ZC_BTG_REASON.NAME');
const COMMENT = column('PAT_BTG_AUDIT.BTG_EXPLANATION');
/** What sanitising does to free text for this mapping's delimiter (docs/mapping.md §8.2). */
const clean = sanitizer(mapping.delimiter);

describe('generated break-the-glass events, mapped', () => {
  it('fill the restricted-access columns from whichever signal they carry', () => {
    const ds = generateDataset({
      seed: 42,
      practitioners: 30,
      patients: 200,
      events: 3000,
      btgRate: 0.3,
      start: '2026-11-01T00:00:00Z',
      end: '2026-11-02T00:00:00Z',
    });
    const resources = new Map<string, unknown>();
    for (const p of ds.patients()) resources.set(referenceKey('Patient', p.id ?? ''), p);
    for (const p of ds.practitioners()) resources.set(referenceKey('Practitioner', p.id ?? ''), p);
    const lookup = { get: (key: string) => resources.get(key) as never };
    const seen = { both: 0, purpose: 0, subtype: 0 };
    for (let i = 0; i < 3000; i += 1) {
      const event: AuditEvent = ds.eventAt(i);
      const shape = ds.describeEvent(i);
      const rows = mapEvent(event, mapping, lookup).rows;
      for (const row of rows) {
        if (!shape.btg) {
          expect([row[REASON], row[COMMENT]], event.id).toEqual(['', '']);
          continue;
        }
        const [btg, reason] = event.agent[0]?.purposeOfUse ?? [];
        seen[shape.btgSignal ?? 'both'] += 1;
        // The chosen reason's text, else the BTG coding's display; the one stand-in when the event names neither
        // (the subtype alone; docs/mapping.md §6.2).
        expect(row[REASON], event.id).toBe(reason?.text ? clean(reason.text) : (btg?.coding?.[0]?.display ?? 'Emergency Override'));
        expect(row[COMMENT], event.id).toBe(btg?.text ? clean(btg.text) : '');
      }
    }
    expect(Math.min(seen.both, seen.purpose, seen.subtype)).toBeGreaterThan(10);
  });
});
