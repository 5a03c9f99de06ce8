/**
 * The map step every path shares — the sync pipeline and `bridge map`: AuditEvents (with their lookups resolved)
 * become connector lines per event, reject records, and the run's tallies (skip and reject reasons, row warnings,
 * column fill). Pure apart from the counters it keeps; where the lines and rejects go is the caller's business.
 */
import type { AuditEvent } from 'fhir/r4.js';
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
      tallies.rows += rows;
      tallies.rejects += rejects.length;
      return { events: mapped, rejects, rejectText, rows };
    },
  };
}

function increment(tally: Record<string, number>, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1;
}
