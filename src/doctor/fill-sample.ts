/**
 * `bridge doctor`'s last check: map a sample of recent AuditEvents with the connector's own mapping and show every
 * column's fill rate, before the first push. An optional column that is never filled raises no row warning, so
 * without this a site learns that Purview received no MRN at all only from Purview. The sample goes through the same
 * FHIR client and reference resolver a sync uses; the output holds column names, counts and reason codes only (no PHI).
 */
import type { AuditEvent } from 'fhir/r4.js';
import { type FhirClient, type ReferenceResolver, resourcesOf } from '../fhir/index.js';
import {
  type CompiledMapping,
  collectReferences,
  createFillCounter,
  FILL_FIXES,
  FILL_WARN_THRESHOLD,
  type FillReport,
  type FillWarning,
  fillWarnings,
  formatShare,
  mapEvent,
} from '../mapping/index.js';
import type { IdentifierReference } from '../reference-keys.js';

export interface FillSampleOptions {
  /** At most this many events, the most recent first. Default 200. */
  readonly events?: number;
  /** How far back from `until` to look. Default 24. */
  readonly lookbackHours?: number;
  /** End of the sampled window (exclusive), an ISO instant; default now. */
  readonly until?: string;
}

export const DEFAULT_FILL_SAMPLE = { events: 200, lookbackHours: 24 } as const;

export interface FillSampleDeps {
  readonly client: FhirClient;
  readonly resolver: ReferenceResolver;
  readonly mapping: CompiledMapping;
  readonly dateParam: 'date' | '_lastUpdated';
  /** Epoch ms; the window ends here unless `until` says otherwise. */
  readonly now: number;
  readonly signal?: AbortSignal;
}

export interface FillSample {
  readonly since: string;
  readonly until: string;
  readonly events: number;
  readonly skipped: number;
  /** Rows rejected, by reason code (e.g. missing-employee-login), with the column that decided it. */
  readonly rejects: ReadonlyArray<{ readonly reason: string; readonly column?: string; readonly count: number }>;
  /** Every column, watched or not; `rows` counts the rows kept. */
  readonly report: FillReport;
  /** Watched columns over the threshold, and reject reasons over it (a missing login rejects the row, it is never an empty cell). */
  readonly warnings: readonly FillWarning[];
}

/** Pulls up to `events` AuditEvents of the window, newest first, resolves their references and maps them. */
export async function sampleFill(deps: FillSampleDeps, options: FillSampleOptions = {}): Promise<FillSample> {
  const wanted = options.events ?? DEFAULT_FILL_SAMPLE.events;
  const untilMs = options.until === undefined ? deps.now : Date.parse(options.until);
  const sinceMs = untilMs - (options.lookbackHours ?? DEFAULT_FILL_SAMPLE.lookbackHours) * 3_600_000;
  const since = new Date(sinceMs).toISOString();
  const until = new Date(untilMs).toISOString();
  const events = await recentEvents(deps, since, until, wanted);
  const keys: string[] = [];
  const identifiers: IdentifierReference[] = [];
  for (const event of events) {
    const request = collectReferences(event, deps.mapping);
    keys.push(...request.keys);
    identifiers.push(...request.identifiers);
  }
  await deps.resolver.prefetch({ keys, identifiers }, deps.signal);
  const counter = createFillCounter(deps.mapping, 'all');
  const rejects = new Map<string, { reason: string; column?: string; count: number }>();
  let skipped = 0;
  for (const event of events) {
    const result = mapEvent(event, deps.mapping, deps.resolver);
    if (result.skipped) skipped += 1;
    counter.addResult(result);
    for (const reject of result.rejects) {
      const entry = rejects.get(reject.reason) ?? { reason: reject.reason, ...(reject.column ? { column: reject.column } : {}), count: 0 };
      entry.count += 1;
      rejects.set(reject.reason, entry);
    }
  }
  const report = counter.report();
  const rejectList = [...rejects.values()];
  return {
    since,
    until,
    events: events.length,
    skipped,
    rejects: rejectList,
    report,
    warnings: [...fillWarnings(report), ...rejectWarnings(rejectList, report.rows)],
  };
}

async function recentEvents(deps: FillSampleDeps, since: string, until: string, wanted: number): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  if (wanted <= 0) return events;
  const params = { [deps.dateParam]: [`ge${since}`, `lt${until}`], _sort: `-${deps.dateParam}`, _count: String(Math.min(wanted, 1000)) };
  for await (const bundle of deps.client.searchPages('AuditEvent', params, deps.signal)) {
    for (const event of resourcesOf<AuditEvent>(bundle, 'AuditEvent')) {
      events.push(event);
      if (events.length >= wanted) return events;
    }
  }
  return events;
}

/** Rejected rows never reach the fill count; a reason taking more than the threshold of all rows warns the same way. */
function rejectWarnings(rejects: FillSample['rejects'], keptRows: number): FillWarning[] {
  const total = keptRows + rejects.reduce((sum, reject) => sum + reject.count, 0);
  return rejects.flatMap((reject) => {
    const share = reject.count / total;
    if (!(share > FILL_WARN_THRESHOLD)) return [];
    const column = reject.column ?? reject.reason;
    const fix = reject.column ? FILL_FIXES[reject.column] : undefined;
    const message = `${formatShare(share)} of rows (${reject.count} of ${total}) were rejected as ${reject.reason}${fix ? `; ${fix}` : ''}`;
    return [{ code: `rejected-${reject.reason}:${column}`, column, empty: reject.count, rows: total, emptyShare: share, ...(fix ? { fix } : {}), message }];
  });
}

/**
 * The table `bridge doctor` prints: one line per column with its fill rate, a flag and the fix on the watched
 * columns over the threshold, then the reject reasons.
 */
export function formatFillTable(sample: FillSample): string[] {
  const width = Math.max(...sample.report.columns.map((column) => column.column.length), 6);
  const flagged = new Map(sample.warnings.map((warning) => [warning.column, warning]));
  const lines = sample.report.columns.map((column) => {
    const rows = sample.report.rows;
    const filled = rows === 0 ? '–' : formatShare((rows - column.empty) / rows);
    const label = column.watched ? '' : column.mandatory ? '  may be empty' : '  optional';
    const base = `${column.column.padEnd(width)}  ${filled.padStart(5)} filled (${rows - column.empty} of ${rows})${label}`;
    const warning = flagged.get(column.column);
    return warning?.code.startsWith('column-fill-low:')
      ? `${base}  <- over ${formatShare(FILL_WARN_THRESHOLD)} empty${warning.fix ? `: ${warning.fix}` : ''}`
      : base;
  });
  for (const reject of sample.rejects) {
    const warning = sample.warnings.find((entry) => entry.code.startsWith(`rejected-${reject.reason}:`));
    lines.push(`rejected: ${reject.reason}${reject.column ? ` (${reject.column})` : ''}: ${reject.count} row(s)${warning?.fix ? `  <- ${warning.fix}` : ''}`);
  }
  return lines;
}
