/** Pure window arithmetic for incremental pulls. */
import { BridgeError } from '../errors.js';
import { daysIn } from '../mapping/time.js';

export interface WindowPolicy {
  readonly overlapMs: number;
  readonly settleMs: number;
  readonly initialLookbackMs: number;
}

export interface SyncWindow {
  readonly since: string;
  readonly until: string;
  /** The previous watermark: events recorded before it may have been pushed already and are checked against the seen set. */
  readonly dedupeBefore?: string;
  /**
   * The delivery ledger has forgotten what Purview acknowledged before this instant (an earlier run pruned it): a
   * source that reads past its window (a Bulk export without `_since`) must not read before it, or events pushed long
   * ago would be sent again unflagged.
   */
  readonly forgottenBefore?: string;
  /** The run was given its start (--since, the HTTP trigger's since): asked for by someone, not the schedule's next window. */
  readonly explicitSince?: true;
}

/** How a window's ends are named to whoever asked: flags on the command line, the body's fields over HTTP. */
export interface WindowLabels {
  readonly since: string;
  readonly until: string;
}

export const FLAG_LABELS: WindowLabels = { since: '--since', until: '--until' };
export const BODY_LABELS: WindowLabels = { since: 'since', until: 'until' };

/**
 * From the stored watermark minus the overlap to now minus the settle delay; `--since/--until` override either end
 * (an explicit `since` makes a backfill), but `until` never reaches past now minus the settle delay. The watermark advances only after every event before it is pushed or
 * rejected, and never backwards (src/sync/pipeline.ts).
 */
export function computeWindow(
  nowMs: number,
  watermark: string | undefined,
  policy: WindowPolicy,
  override: { since?: string | undefined; until?: string | undefined } = {},
  sourceEnds = false,
  labels: WindowLabels = FLAG_LABELS,
): SyncWindow {
  // A source that ends its windows itself (a Bulk export covers what changed up to its transactionTime, by the server's
  // clock, and takes no --until: the pipeline refuses one) needs no settle delay, and its end here is only what the run
  // shows until the source reports its own. So a watermark past now minus the settle delay (runs closer together than
  // fhir.settleMinutes - fhir.overlapMinutes, or a server clock ahead of ours) is no empty window for it.
  // On a whole second: an event recorded to the second is that second's range in FHIR search, so a window ending inside
  // it (…:03.456) reads it with `lt` and the next window, starting there less the overlap, reads it again with `ge`,
  // before the first instant the previous run remembered: a reject or a skip counted twice, and taken for a late event.
  const settled = sourceEnds ? nowMs : Math.floor((nowMs - policy.settleMs) / 1_000) * 1_000;
  const asked = override.until ? parseInstant(override.until, labels.until) : settled;
  if (asked > settled) {
    // A later end would move the watermark past events not yet recorded (or not yet settled): the next runs would
    // start after them and never pull them.
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${labels.until} ${override.until} is later than now minus the settle delay (${new Date(settled).toISOString()}); events up to then may not all be recorded yet. Give an earlier ${labels.until}, or leave it out to sync up to now minus fhir.settleMinutes.`,
    );
  }
  // A given end is floored to its second too (…:03.456 ends at …:03), for the same reason: nothing past what was asked.
  const until = Math.floor(asked / 1_000) * 1_000;
  const since = override.since
    ? parseInstant(override.since, labels.since)
    : watermark
      ? Date.parse(watermark) - policy.overlapMs
      : until - policy.initialLookbackMs;
  if (!(since < until) && (!sourceEnds || override.since)) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      sourceEnds
        ? `${labels.since} ${override.since} is not before now (${new Date(nowMs).toISOString()}). Give an earlier ${labels.since}.`
        : `Empty sync window: since ${new Date(since).toISOString()} is not before until ${new Date(until).toISOString()}. Check ${labels.since}/${labels.until} or wait for the settle delay.`,
    );
  }
  return {
    since: new Date(since).toISOString(),
    until: new Date(Math.max(until, since)).toISOString(),
    ...(watermark ? { dedupeBefore: watermark } : {}),
    ...(override.since ? { explicitSince: true as const } : {}),
  };
}

/**
 * An ISO 8601 date or instant in ms since the epoch, refused (BRG_ERR_INPUT_INVALID, naming `field`) unless it is one:
 * shared by --since/--until and the HTTP trigger's body.
 * @param field - how the caller knows the value, e.g. `--since` or `since`
 */
export function parseInstant(value: string, field: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${field} "${value}" is not an ISO 8601 date or instant (e.g. 2026-11-01T00:00:00Z).`);
  }
  refuseMissingDay(value, field);
  // A time without Z or an offset would be read in this machine's zone: the same command would pull another window on
  // another host (and across a DST change, a window an hour off). A date alone is a UTC day.
  if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:/i.test(value) && !/(Z|[+-]\d{2}:?\d{2})$/i.test(value)) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${field} "${value}" has a time but no zone; add Z for UTC or the offset you mean (e.g. ${value}Z or ${value}-06:00).`,
    );
  }
  return ms;
}

/**
 * V8's Date.parse rolls a day past the month's end into the next month (2026-02-30 is March 2): a typo would pull a
 * window nobody asked for. The written year, month and day must name a day of the calendar.
 */
function refuseMissingDay(value: string, field: string): void {
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const known = month >= 1 && month <= 12;
  if (!known || day < 1 || day > daysIn(year, month)) {
    const length = known ? ` (${value.slice(0, 7)} has ${daysIn(year, month)} days)` : '';
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${field} "${value}" names a day that does not exist${length}; give a date of the calendar.`);
  }
}

/** Stable key for overlap de-duplication: the same version of the same event (the delivery ledger's key too). */
export { eventClaimKey as eventKey } from '../purview/index.js';
