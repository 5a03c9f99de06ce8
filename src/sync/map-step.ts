/**
 * The map step every path shares — the sync pipeline and `bridge map`: AuditEvents (with their lookups resolved)
 * become connector lines per event, reject records, and the run's tallies (skip and reject reasons, row warnings,
 * column fill). Pure apart from the counters it keeps; where the lines and rejects go is the caller's business.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { type CompiledMapping, createFillCounter, createSerializer, type FillReport, mapEvent, type RowReject } from '../mapping/index.js';
import type { EventRows } from '../purview/event-spool.js';
import { eventClaimKey } from '../purview/ledger.js';
import type { ResourceLookup } from '../reference-keys.js';

export interface MapTallies {
  events: number;
  rows: number;
  skipped: number;
  rejects: number;
  readonly skipReasons: Record<string, number>;
  readonly rejectReasons: Record<string, number>;
  /** Row warnings by code (`<code>:<column>`), counted per event. */
  readonly warnings: Record<string, number>;
}

export interface MappedGroup {
  /** Per event, its key, time and lines (none when skipped or every row was rejected). */
  readonly events: EventRows[];
  readonly rejects: RowReject[];
  /** NDJSON text of the rejects, one line each. */
  readonly rejectText: string;
  readonly rows: number;
}

export interface MapStep {
  readonly tallies: MapTallies;
  headerLine(): string;
  map(events: Iterable<{ readonly event: AuditEvent; readonly recordedMs: number | undefined }>, lookup: ResourceLookup): MappedGroup;
  fill(): FillReport;
}

export function createMapStep(mapping: CompiledMapping): MapStep {
  const serializer = createSerializer(mapping);
  const fill = createFillCounter(mapping);
  const tallies: MapTallies = { events: 0, rows: 0, skipped: 0, rejects: 0, skipReasons: {}, rejectReasons: {}, warnings: {} };
  return {
    tallies,
    headerLine: () => serializer.headerLine(),
    fill: () => fill.report(),
    map(events, lookup) {
      const mapped: EventRows[] = [];
      const rejects: RowReject[] = [];
      let rejectText = '';
      let rows = 0;
      for (const { event, recordedMs } of events) {
        const outcome = mapEvent(event, mapping, lookup);
        tallies.events += 1;
        if (outcome.skipped) {
          tallies.skipped += 1;
          increment(tallies.skipReasons, outcome.skipped);
        }
        for (const code of outcome.warnings) increment(tallies.warnings, code);
        fill.addResult(outcome);
        const lines = serializer.lines(outcome);
        rows += lines.length;
        mapped.push({ key: eventClaimKey(event), recordedMs, lines });
        for (const reject of outcome.rejects) {
          rejects.push(reject);
          rejectText += `${JSON.stringify(reject)}\n`;
          increment(tallies.rejectReasons, reject.reason);
        }
      }
      refuseAllMalformed(rejects, mapped.length);
      tallies.rows += rows;
      tallies.rejects += rejects.length;
      return { events: mapped, rejects, rejectText, rows };
    },
  };
}

/** A group this large with every event malformed is no run of broken records but a fault of the bridge's own. */
const MALFORMED_GROUP = 20;

/**
 * A code fault turns every event into a `malformed-event` reject (rows.ts catches the type errors records cause): the
 * run would complete, and move the watermark past events never sent. A group of events every one of which failed so
 * stops the run instead, naming where.
 */
function refuseAllMalformed(rejects: readonly RowReject[], events: number): void {
  if (events < MALFORMED_GROUP) return;
  const malformed = rejects.filter((reject) => reject.reason === 'malformed-event');
  if (malformed.length < events) return;
  const places = [...new Set(malformed.map((reject) => reject.detail))].slice(0, 3).join('; ');
  throw new BridgeError(
    'BRG_ERR_INTERNAL',
    `All ${events} events of a group failed to map (${places}): that is a fault of the bridge, not of ${events} records. Nothing of them was pushed and the watermark did not move; report it with this message.`,
    { details: { events } },
  );
}

function increment(tally: Record<string, number>, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1;
}
