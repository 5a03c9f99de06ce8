/**
 * What an expression sees for one row (one AuditEvent × one patient), and the FHIRPath variables built from it.
 * The expression root is the AuditEvent; everything else is a %variable.
 */
import type { Address, AuditEvent, AuditEventAgent, HumanName, Patient, Practitioner, PractitionerRole } from 'fhir/r4.js';
import type { PatientSubject } from './context.js';
import type { CONTEXT_VARIABLES, ResolvedOptions } from './options.js';
import type { Resolver } from './resolve.js';
import type { ParsedInstant, TimeFormat } from './time.js';

export interface RowContext {
  readonly event: AuditEvent;
  /** %t: the chosen event time (docs/mapping.md §4.1), undefined when the event has none. */
  readonly instant: ParsedInstant | undefined;
  /** Event time in epoch ms for validity checks; NaN when unknown. */
  readonly tMs: number;
  readonly requestor: AuditEventAgent | undefined;
  readonly user: Practitioner | undefined;
  readonly role: PractitionerRole | undefined;
  /** The user's name valid at %t, ranked by use. */
  readonly userName: HumanName | undefined;
  readonly patient: Patient | undefined;
  readonly subject: PatientSubject;
  /** The patient's name valid at %t (or the reference display when the patient could not be resolved). */
  readonly name: HumanName | undefined;
  readonly address: Address | undefined;
  readonly resolver: Resolver;
  readonly options: ResolvedOptions;
  readonly timeFormat: TimeFormat;
  /** True when %user came from a literal (non-contained) reference, so its id is a real EHR id. */
  readonly userIdIsGlobal: boolean;
}

export type ContextVariable = (typeof CONTEXT_VARIABLES)[number];

export const CONTEXT_GETTERS: Readonly<Record<ContextVariable, (ctx: RowContext) => unknown>> = {
  event: (ctx) => ctx.event,
  requestor: (ctx) => ctx.requestor,
  user: (ctx) => ctx.user,
  role: (ctx) => ctx.role,
  userName: (ctx) => ctx.userName,
  patient: (ctx) => ctx.patient,
  subject: (ctx) => ctx.subject.ref,
  name: (ctx) => ctx.name,
  address: (ctx) => ctx.address,
  t: (ctx) => ctx.instant?.text,
};

/** The environment for fhirpath.js: options first, context variables over them; absent values are empty collections. */
export function fhirpathVariables(ctx: RowContext): Record<string, unknown> {
  const vars: Record<string, unknown> = { ...ctx.options.variables };
  for (const [name, get] of Object.entries(CONTEXT_GETTERS)) vars[name] = get(ctx) ?? [];
  return vars;
}

/** A FHIRPath result as one cell: the first non-empty primitive, or all of them joined by `join`. */
export function toCell(values: readonly unknown[], join: string | undefined): string {
  let out = '';
  for (const value of values) {
    const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
    if (text === '') continue;
    if (join === undefined) return text;
    out = out === '' ? text : `${out}${join}${text}`;
  }
  return out;
}
