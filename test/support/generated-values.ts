/** Reading values back out of generated resources, as the generator tests look for them. */
import type { Patient, Practitioner } from 'fhir/r4.js';

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
