/**
 * One AuditEvent → connector rows (docs/mapping.md §3, §9). Pure: all lookups come through `lookup`, and the only state
 * is the per-resource memo inside the compiled mapping. One row per (event × distinct patient), attributed to the one
 * requesting human; missing critical values reject the row, other empty mandatory cells warn (or reject when strict).
 * Hot path (bench/transform.ts): no closures are created per event or row.
 */
import type { AuditEvent, HumanName } from 'fhir/r4.js';
import { joinCells } from '../connector-file/index.js';
import type { ResourceLookup } from '../reference-keys.js';
import { programOf } from './compile.js';
import { asPatient, isExcludedUser, patientSubjects, requestorAsRead, resolveUser, selectRequestor } from './context.js';
import { interpretRow } from './interpret.js';
import { MappedEvent } from './mapped-event.js';
import { createResolver } from './resolve.js';
import type { RowFunction } from './row-code.js';
import type { RowContext } from './row-context.js';
import { chooseEventTime } from './time.js';
import type { CompiledMapping, EventMapResult, Row, RowReject } from './types.js';
import { EventWarnings } from './warnings.js';

/** Most events reject nothing: they share one empty, frozen list. */
const NO_REJECTS: readonly RowReject[] = Object.freeze([]);

function skippedBy(reason: string): EventMapResult {
  return new MappedEvent([], [], [], [], [], reason, undefined);
}

export function mapEvent(event: AuditEvent, mapping: CompiledMapping, lookup: ResourceLookup): EventMapResult {
  try {
    return mapWith(event, mapping, lookup, programOf(mapping).row, false);
  } catch (error) {
    return malformed(event, error);
  }
}

/**
 * A value of another JSON type than FHIR gives it (a number where a string belongs, a null in a list), in the event or a
 * resource it names, that a path or built-in did not expect: the event is rejected (`malformed-event`, with its id),
 * rather than failing the run, which every later run over that window would fail again, the feed stuck on one event.
 * Only the type errors such data causes; anything else still fails the run.
 */
function malformed(event: AuditEvent, error: unknown): EventMapResult {
  if (!(error instanceof TypeError || error instanceof RangeError)) throw error;
  const id: unknown = event.id;
  const eventId = typeof id === 'string' ? id : '';
  // Where it arose, so a fault of the bridge's own (every event rejected alike) can be told from a broken record.
  const reject = { eventId, reason: eventId === '' ? 'missing-id' : 'malformed-event', detail: `${error.name} at ${codeFrame(error)}` };
  return new MappedEvent([], [], [], [reject], [], undefined, undefined);
}

/** The first frame of the stack in the bridge's own files, as `file.ts:line` (a frame names code, never a value). */
function codeFrame(error: Error): string {
  for (const line of (error.stack ?? '').split('\n').slice(1)) {
    const frame = /[/\\](?:src|dist)[/\\](?:.*[/\\])?([\w.-]+\.[jt]s):(\d+):\d+\)?$/.exec(line.trim());
    if (frame) return `${frame[1]}:${frame[2]}`;
  }
  return 'an unknown place';
}

/**
 * mapEvent with the interpreter (interpret.ts) in place of the generated row function: the reference the tests compare
 * the generated code with. Not for production paths.
 */
export function mapEventInterpreted(event: AuditEvent, mapping: CompiledMapping, lookup: ResourceLookup): EventMapResult {
  const program = programOf(mapping);
  return mapWith(
    event,
    mapping,
    lookup,
    (ctx, patientView, userView, warnings, rows, lines) => {
      const outcome = interpretRow(program, ctx, patientView, userView, warnings);
      if (outcome.length === 2) return [outcome[0] as string, outcome[1] as string];
      rows.push(outcome);
      lines.push(joinCells(outcome, program.delimiter));
      return undefined;
    },
    true,
  );
}

/** `interpreted`: the row function makes no empty-cell masks. */
function mapWith(event: AuditEvent, mapping: CompiledMapping, lookup: ResourceLookup, mapRow: RowFunction, interpreted: boolean): EventMapResult {
  const program = programOf(mapping);
  const eventId = event.id ?? '';
  // An event without an id has no identity: it can be neither de-duplicated nor acknowledged (every such event would
  // share one ledger key, and all but the first would be dropped as delivered). A searchset always carries ids.
  if (eventId === '') return new MappedEvent([], [], [], [{ eventId, reason: 'missing-id' }], [], undefined, undefined);
  const { skip, options } = program;
  // docs/mapping.md §3.1: outcome is 0..1 and an absent outcome counts as success.
  if (skip.failureOutcome && event.outcome !== undefined && event.outcome !== '0') return skippedBy('failure-outcome');
  const resolver = createResolver(event, lookup, options);
  const subjects = patientSubjects(event, resolver, options);
  if (subjects.length === 0) {
    return skip.noPatient ? skippedBy('no-patient') : new MappedEvent([], [], [], [{ eventId, reason: 'missing-patient' }], [], undefined, undefined);
  }
  const choice = selectRequestor(event, resolver);
  if (choice.kind === 'patient' && skip.patientRequestor) return skippedBy('patient-requestor');
  if (choice.kind === 'none' && skip.nonHumanRequestor) return skippedBy('non-human-requestor');
  const warnings = new EventWarnings();
  if (choice.kind === 'human' && choice.ambiguous) warnings.add('multiple-requestors');
  const agent = choice.kind === 'none' ? undefined : choice.agent;
  const instant = chooseEventTime(event);
  // A period.start with a time of day that is no FHIR dateTime ("2026-11-01T01:30:00", no zone): recorded stands in,
  // which may be another instant (when the access was logged, not when it happened), so the row says so.
  const start = event.period?.start;
  if (start !== undefined && start.length > 10 && instant?.text !== start) warnings.add('period-start-unreadable');
  const tMs = instant?.epochMs ?? Number.NaN;
  // The user is looked up by the identifier as the event gives it (resolve.ts tries it split and whole); the row and the
  // excludeUsers check read it split (docs/mapping.md §3.3).
  const resolvedUser = resolveUser(agent, resolver);
  const requestor = requestorAsRead(agent, options.parseCxIdentifiers);
  const { user, role, global } = resolvedUser;
  // The bridge's own reads, audited by the EHR as its background user, are no insider's access (docs/mapping.md §3.1).
  if (isExcludedUser(requestor, resolvedUser, options)) return skippedBy('excluded-user');
  const userView = user ? program.userViews.view(user, tMs) : undefined;
  const rows: Row[] = [];
  const lines: string[] = [];
  const empties: number[] = [];
  let rejects: RowReject[] | undefined;
  // Subjects are told apart before they are resolved; two forms of one patient (Patient/p1 and its MRN identifier)
  // resolve to one Patient, which makes one row (docs/mapping.md §3.4: one row per distinct patient). A contained
  // patient's id is local to the event: the resource itself tells it apart.
  let resolved: Set<unknown> | undefined;
  for (const subject of subjects) {
    const patient = asPatient(resolver.resolve(subject.ref, 'Patient'));
    if (patient && subjects.length > 1) {
      const identity = patient.id === undefined || subject.key.startsWith('#') ? patient : patient.id;
      resolved ??= new Set();
      if (resolved.has(identity)) continue;
      resolved.add(identity);
    }
    const patientView = patient ? program.patientViews.view(patient, tMs) : undefined;
    if (!patient) warnings.add('unresolved-patient');
    // docs/mapping.md §3.3 (step 4), §5.4: a display-only patient keeps its display, as a name that cannot be split
    // (text-only).
    const name: HumanName | undefined = patientView ? patientView.name : subject.ref.display ? { text: subject.ref.display } : undefined;
    // One literal with every field, so all row contexts share a shape.
    const ctx: RowContext = {
      event,
      instant,
      tMs,
      requestor,
      user,
      role,
      userName: userView?.name,
      patient,
      subject,
      name,
      address: patientView?.address,
      resolver,
      options,
      timeFormat: program.timeFormat,
      userIdIsGlobal: global,
    };
    const rejected = mapRow(ctx, patientView, userView, warnings, rows, lines, empties);
    if (rejected) {
      rejects ??= [];
      rejects.push({ eventId, patientRef: subject.label, reason: rejected[0], column: rejected[1] });
    }
  }
  return new MappedEvent(rows, lines, interpreted ? undefined : empties, rejects ?? NO_REJECTS, warnings.list(), undefined, program.delimiter);
}
