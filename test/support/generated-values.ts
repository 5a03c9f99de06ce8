/** Reading values back out of generated resources, as the generator tests look for them. */
import type { Patient, Practitioner } from 'fhir/r4.js';
import type { GeneratedDataset } from '../../src/sandbox/generator.js';

/** The current (not 'old') identifier of a system with a type text. */
export function current(resource: Patient | Practitioner, system: string, text?: string): string | undefined {
  return resource.identifier?.find((id) => id.system === system && id.use !== 'old' && (text === undefined || id.type?.text === text))?.value;
}

/** FHIR instants with any number of fractional digits and any offset, as epoch ms with the fraction kept. */
export function preciseMs(text: string): number {
  const m = /^(.{19})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (!m) throw new Error(`not an instant: ${text}`);
  return Date.parse(`${m[1]}${m[3]}`) + Number(`0${m[2] ?? ''}`) * 1000;
}

/**
 * Every value of the dataset that identifies a person: patient names, address lines and identifiers, practitioner
 * names, identifiers, e-mail addresses and logins, and the logins and names of users without a Practitioner. None may reach a log line or a diagnostic's output. Short values (a given
 * name of three letters, a four-digit number) are left out: they occur in ordinary text by chance.
 */
export function phiValues(dataset: GeneratedDataset): string[] {
  const values = new Set<string>();
  for (const p of dataset.patients()) {
    for (const n of p.name ?? []) for (const v of [n.family, ...(n.given ?? [])]) if (v && v.length > 3) values.add(v);
    for (const a of p.address ?? []) for (const l of a.line ?? []) values.add(l);
    for (const i of p.identifier ?? []) if (i.value && i.value.trim().length > 4) values.add(i.value.trim());
  }
  for (const p of dataset.practitioners()) {
    for (const n of p.name ?? []) for (const v of [n.family, ...(n.given ?? [])]) if (v && v.length > 3) values.add(v);
    for (const i of p.identifier ?? []) if (i.value && i.value.trim().length > 4) values.add(i.value.trim());
    for (const t of p.telecom ?? []) if (t.value) values.add(t.value);
  }
  // Users without a Practitioner exist only in the events: their login, EMP identifier and name, whole and split.
  for (const event of dataset.events()) {
    const user = event.agent[0];
    if (user?.who?.reference !== undefined) continue;
    const display = user?.who?.display;
    const parts = display?.split(', ') ?? [];
    for (const v of [user?.altId, user?.who?.identifier?.value, display, ...parts]) if (v && v.length > 3) values.add(v);
  }
  return [...values];
}
