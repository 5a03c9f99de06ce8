/**
 * The walking skeleton end to end: SMART token (jose assertion, strict server) → AuditEvent search with paging →
 * references resolved in batches → Epic-connector rows → sequential blocks → upload with an msal-node token.
 */
import type { Patient, Practitioner } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findConnector, loadConnectorMapping } from '../../src/composition/index.js';
import { createSerializer, mapEvent } from '../../src/mapping/index.js';
import { type ResourceLookup, referenceKey } from '../../src/reference-keys.js';
import { SANDBOX_IDS } from '../../src/sandbox/epic-ids.js';
import { phiValues } from '../support/generated-values.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

/** A third of the users without a Practitioner (staff without a provider record), so both kinds of requestor come through. */
const DATA = { seed: 7, events: 400, patients: 60, practitioners: 9, nonProviderRate: 0.34 };
const BLOCK_ROWS = 64;
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: DATA, flags: { 'connectors.0.purview.blockRows': BLOCK_ROWS } });
});
afterAll(async () => h?.close());

/** What the rows must be, computed offline from the generator's own resources (no FHIR, no spool, no push). */
function expectedLines(): { header: string; rows: string[]; rejects: number; skipped: number } {
  const mapping = loadConnectorMapping(findConnector(h.config, 'sandbox'));
  const serializer = createSerializer(mapping);
  const byKey = new Map<string, Patient | Practitioner>();
  const ds = h.sandbox.dataset;
  for (const p of ds.patients()) byKey.set(referenceKey('Patient', p.id ?? ''), p);
  for (const p of ds.practitioners()) byKey.set(referenceKey('Practitioner', p.id ?? ''), p);
  const lookup: ResourceLookup = { get: (key) => byKey.get(key) };
  const rows: string[] = [];
  let rejects = 0;
  let skipped = 0;
  for (const event of ds.events()) {
    const result = mapEvent(event, mapping, lookup);
    rows.push(...result.rows.map((row) => serializer.line(row)));
    rejects += result.rejects.length;
    if (result.skipped) skipped += 1;
  }
  return { header: serializer.headerLine(), rows, rejects, skipped };
}

describe('bridge sync against the offline sandbox', () => {
  it('delivers exactly the expected rows, in order, in sequential blocks with the header on each', async () => {
    const summary = await h.sync();
    const expected = expectedLines();
    const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);

    expect(summary.counts.events).toBe(DATA.events);
    expect(summary.counts.rows).toBe(expected.rows.length);
    expect(summary.counts.rejects).toBe(expected.rejects);
    expect(summary.counts.skipped).toBe(expected.skipped);
    expect(expected.rows.length).toBeGreaterThan(BLOCK_ROWS * 3);

    expect(accepted.map((b) => b.header)).toEqual(accepted.map(() => expected.header));
    expect(accepted.map((b) => b.rows.length)).toEqual(
      Array.from({ length: Math.ceil(expected.rows.length / BLOCK_ROWS) }, (_, i) => Math.min(BLOCK_ROWS, expected.rows.length - i * BLOCK_ROWS)),
    );
    expect(accepted.flatMap((b) => b.rows)).toEqual(expected.rows);
    expect(summary.counts.rowsAcked).toBe(expected.rows.length);
    expect(summary.counts.blocksAcked).toBe(accepted.length);
    expect(summary.possiblyDuplicatedBlocks).toEqual([]);
    // Every search page and read came gzipped, as Epic's servers send them: read through the client's decoder.
    const answered = h.sandbox.fhir.requests.filter((r) => /\/(AuditEvent|Patient|Practitioner)(\/|$)/.test(r.path) && r.status === 200);
    expect(answered.length).toBeGreaterThan(2);
    expect(answered.every((r) => r.gzipped)).toBe(true);
  });

  it('puts the source values in the right columns (checked against the generator, not the mapper)', () => {
    const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
    const header = (accepted[0]?.header ?? '').split('\t');
    const col = (name: string): number => header.indexOf(name);
    expect(header[0]).toBe('ACCESS_LOG.ACCESS_TIME');
    const rows = accepted.flatMap((b) => b.rows).map((line) => line.split('\t'));
    const mrns = new Set([...h.sandbox.dataset.patients()].map((p) => p.identifier?.find((i) => i.type?.text === 'EPI' && i.use !== 'old')?.value));
    const emails = new Set([...h.sandbox.dataset.practitioners()].flatMap((p) => (p.telecom ?? []).map((t) => t.value)));
    // The site pinned its EMP system as the login (the sandbox config's loginSystems): a provider's login is their current
    // EMP id, found here by their SER user id; only a provider without one falls back to a work e-mail.
    const empLoginBySer = new Map<string, string | undefined>();
    for (const p of h.sandbox.dataset.practitioners()) {
      const ser = p.identifier?.find((i) => i.system === SANDBOX_IDS.serSystem)?.value?.trim();
      const emp = p.identifier?.find((i) => i.system === SANDBOX_IDS.empSystem && i.use !== 'old')?.value?.trim();
      if (ser) empLoginBySer.set(ser, emp);
    }
    let pinnedRows = 0;
    // A user without a Practitioner: their login is the EMP identifier the event names them by, and their names come
    // from its "Family, Given" display.
    const staff = new Map<string, string>();
    for (const event of h.sandbox.dataset.events()) {
      const who = event.agent[0]?.who;
      if (who?.reference === undefined && who?.identifier?.value && who.display) staff.set(who.identifier.value, who.display);
    }
    let staffRows = 0;
    for (const cells of rows) {
      expect(cells).toHaveLength(header.length);
      expect(cells[col('ACCESS_LOG.ACCESS_TIME')]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      expect(mrns).toContain(cells[col('PATIENT.PAT_MRN_ID')]);
      expect(cells[col('PATIENT.PAT_LAST_NAME')]).not.toBe('');
      const login = cells[col('EMP.SYSTEM_LOGIN')] ?? '';
      const display = staff.get(login);
      if (display === undefined) {
        const emp = empLoginBySer.get(cells[col('CLARITY_EMP.USER_ID')] ?? '');
        if (emp === undefined) expect(emails).toContain(login);
        else expect(login).toBe(emp);
        if (emp !== undefined) pinnedRows += 1;
        continue;
      }
      staffRows += 1;
      expect(cells[col('CLARITY_EMP.USER_ID')]).toBe(login);
      expect(`${cells[col('employee_last_name')]}, ${cells[col('employee_first_name')]}`).toBe(display);
    }
    expect(staffRows).toBeGreaterThan(0);
    expect(staffRows).toBeLessThan(rows.length);
    expect(pinnedRows).toBeGreaterThan(0);
  });

  it('advances the watermark to the window end and pushes nothing twice on the next run', async () => {
    const { end } = h.sandbox.dataset.options;
    expect(h.withStore((s) => s.getWatermark('sandbox'))).toBe(new Date(end).toISOString());
    const before = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length;
    const second = await h.sync({ since: undefined, until: new Date(Date.parse(end) + 60_000).toISOString() });
    expect(second.since).toBe(new Date(Date.parse(end) - 15 * 60_000).toISOString());
    expect(second.counts.duplicates).toBe(second.counts.events);
    expect(second.counts.rows).toBe(0);
    expect(h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length).toBe(before);
  });

  it('writes pino JSON logs with no patient names, addresses, MRNs, logins or secrets', () => {
    const phi = phiValues(h.sandbox.dataset);
    expect(h.logLines.length).toBeGreaterThan(0);
    for (const line of h.logLines) {
      expect(() => JSON.parse(line)).not.toThrow();
      for (const value of phi) expect(line.includes(value), `log line leaks a PHI value`).toBe(false);
    }
  });
});
