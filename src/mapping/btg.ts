/**
 * Restricted-access (break-the-glass) columns (docs/mapping.md §6). R4 has no BTG element: the signal is a v3-ActReason BTG
 * purpose of use (agent-level first, then purposeOfEvent), or a DICOM 110127 "Emergency Override Started" subtype.
 * The reason is empty for ordinary accesses; that is the normal value, not a placeholder.
 */
import type { CodeableConcept, Coding } from 'fhir/r4.js';
import { DCM } from './context.js';
import type { RowContext } from './row-context.js';

export const V3_ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
/** docs/mapping.md §6.2, §9.3: the one permitted stand-in, used only when the event is a BTG and names no reason at all. */
export const BTG_FALLBACK_REASON = 'Emergency Override';

interface BtgState {
  /** `%pou` = `%req.purposeOfUse | purposeOfEvent`. */
  readonly pou: readonly CodeableConcept[];
  readonly concept?: CodeableConcept;
  readonly coding?: Coding;
}

function btgState(ctx: RowContext): BtgState | undefined {
  const agentLevel = ctx.requestor?.purposeOfUse;
  const eventLevel = ctx.event.purposeOfEvent;
  const pou = agentLevel?.length || eventLevel?.length ? [...(agentLevel ?? []), ...(eventLevel ?? [])] : NO_PURPOSES;
  for (const concept of pou) {
    const coding = btgCoding(concept, ctx.options.btgCodes);
    if (coding) return { pou, concept, coding };
  }
  for (const coding of ctx.event.subtype ?? []) {
    if (coding.system === DCM && coding.code === '110127') return { pou };
  }
  return undefined;
}

const NO_PURPOSES: readonly CodeableConcept[] = [];

/** v3-ActReason under its canonical URL, its OID and its FHIR DSTU2-era URL: all three are in use. */
const ACT_REASON_SYSTEMS: ReadonlySet<string> = new Set([V3_ACT_REASON, 'urn:oid:2.16.840.1.113883.5.8', 'http://hl7.org/fhir/v3/ActReason']);

function btgCoding(concept: CodeableConcept, codes: ReadonlySet<string>): Coding | undefined {
  return concept.coding?.find(
    (coding) => coding.system !== undefined && ACT_REASON_SYSTEMS.has(coding.system) && coding.code !== undefined && codes.has(coding.code),
  );
}

/** The user-chosen category: the first other purpose of use (text, else display, else code). */
function reasonConcept(state: BtgState, codes: ReadonlySet<string>): { concept: CodeableConcept; text: string } | undefined {
  for (const concept of state.pou) {
    if (btgCoding(concept, codes)) continue;
    const text = concept.text || concept.coding?.find((coding) => coding.display)?.display || concept.coding?.find((coding) => coding.code)?.code;
    if (text) return { concept, text };
  }
  return undefined;
}

/** ZC_BTG_REASON.NAME / Restricted Access Reason. */
export function btgReason(ctx: RowContext): string | undefined {
  const state = btgState(ctx);
  if (!state) return undefined;
  return reasonConcept(state, ctx.options.btgCodes)?.text || state.coding?.display || BTG_FALLBACK_REASON;
}

/** PAT_BTG_AUDIT.BTG_EXPLANATION / Restricted Access Comment: free text, never outcomeDesc (that describes the outcome). */
export function btgComment(ctx: RowContext): string | undefined {
  const state = btgState(ctx);
  if (!state) return undefined;
  if (state.concept?.text) return state.concept.text;
  const reason = reasonConcept(state, ctx.options.btgCodes)?.concept;
  const other = state.pou.find((concept) => concept !== reason && concept.text)?.text;
  return other || detailText(ctx);
}

function detailText(ctx: RowContext): string | undefined {
  if (ctx.options.btgDetailTypes.size === 0) return undefined;
  for (const entity of ctx.event.entity ?? []) {
    for (const detail of entity.detail ?? []) {
      if (!ctx.options.btgDetailTypes.has(detail.type)) continue;
      if (detail.valueString) return detail.valueString;
      if (detail.valueBase64Binary) return Buffer.from(detail.valueBase64Binary, 'base64').toString('utf8');
    }
  }
  return undefined;
}
