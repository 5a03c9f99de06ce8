/**
 * The department column's lookups against a server that enforces the token's scope, as Epic does: the default scope
 * has no Encounter, so the Encounter an event names is refused (403 insufficient_scope). The run must carry on and
 * deliver every row (the department is optional), say once which scope to add, and fill the column once it is granted.
 */
import type { AuditEvent, Encounter } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 23, events: 60, patients: 12, practitioners: 4 } });
});
afterAll(async () => h?.close());

/** A copy of a generated event that yields one row, with its own workstation (to find its row) naming `encounter`. */
function eventNaming(encounter: string, n: number): AuditEvent {
  const template = [...h.sandbox.dataset.events()].find(
    (e) => e.outcome === '0' && !e.purposeOfEvent && (e.entity ?? []).filter((en) => en.what?.reference?.startsWith('Patient/')).length === 1,
  ) as AuditEvent;
  const event = structuredClone(template);
  event.id = `dept-${n}`;
  const requestor = event.agent.find((agent) => agent.requestor);
  if (requestor) requestor.network = { address: `WS-DEPT-${n}`, type: '1' };
  event.entity = [...(event.entity ?? []), { what: { reference: `Encounter/${encounter}` } }];
  return event;
}

function departmentOf(workstation: string): string | undefined {
  const blocks = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
  const header = (blocks[0]?.header ?? '').split('\t');
  const row = blocks.flatMap((b) => b.rows).find((line) => line.split('\t').includes(workstation));
  return row?.split('\t')[header.indexOf('CLARITY_DEP.DEPARTMENT_NAME')];
}

it('an Encounter the scope does not grant leaves the department empty with one warning; granted, it fills the column', async () => {
  const first = eventNaming('enc-1', 1);
  const patient = first.entity?.find((en) => en.what?.reference?.startsWith('Patient/'))?.what?.reference;
  const encounter: Encounter = {
    resourceType: 'Encounter',
    id: 'enc-1',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    ...(patient ? { subject: { reference: patient } } : {}),
    serviceProvider: { display: 'Cardiology Clinic' },
  };
  await h.sandbox.store?.load([encounter, first]);

  const refused = await h.sync();
  expect(h.withStore((store) => store.listRuns({ connector: 'sandbox' }).map((run) => run.state))).toEqual(['completed']);
  expect(refused.counts.rowsAcked).toBe(refused.counts.rows);
  expect(departmentOf('WS-DEPT-1')).toBe('');
  const encounterAnswers = h.sandbox.fhir.requests.filter((request) => /\/Encounter$/.test(request.path)).map((request) => request.status);
  expect(encounterAnswers).toEqual([403]);
  const warnings = h.logLines.filter((line) => line.includes('"resourceType":"Encounter"') && line.includes('"reason":"forbidden"'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('add system/Encounter.read to smart.scope');

  // The operator adds the scope; the next run's new event gets its encounter's department, nothing is sent twice.
  const second = eventNaming('enc-1', 2);
  second.recorded = first.recorded;
  await h.sandbox.store?.load([second]);
  const granted = await h.sync({
    flags: { 'connectors.0.smart.scope': 'system/AuditEvent.read system/Patient.read system/Practitioner.read system/Encounter.read' },
  });
  expect(h.withStore((store) => store.listRuns({ connector: 'sandbox' }).map((run) => run.state))).toEqual(['completed', 'completed']);
  expect(granted.counts.rows).toBe(1);
  expect(departmentOf('WS-DEPT-2')).toBe('Cardiology Clinic');
  const rows = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
  expect(new Set(rows).size).toBe(rows.length);
});
