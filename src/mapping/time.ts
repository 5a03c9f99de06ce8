/**
 * Event time: choose it (docs/mapping.md §4.1: period.start if it has a time part, else recorded) and format it
 * (docs/mapping.md §8.1). FHIR allows any number of fractional-second digits and JS Date keeps milliseconds only, so
 * the fraction is carried as the source text and only whole seconds go through Date arithmetic.
 */
import type { AuditEvent } from 'fhir/r4.js';

export type TimeFormat =
  | { readonly kind: 'iso-utc' }
  | { readonly kind: 'iso-offset' }
  | { readonly kind: 'local'; readonly zone: string; readonly formatter: Intl.DateTimeFormat };

export interface ParsedInstant {
  /** The source text, e.g. "2012-10-25T22:04:27.123456+11:00". */
  readonly text: string;
  /** Whole seconds since the epoch (UTC). */
  readonly epochSeconds: number;
  /** Fractional digits as given, without the dot ("" when none). */
  readonly fraction: string;
  /** Epoch milliseconds, for validity comparisons only. */
  readonly epochMs: number;
}

/**
 * FHIR dateTime with a time part (seconds and zone are then required by the R4 regex):
 * `YYYY-MM-DDThh:mm:ss[.f+](Z|±hh:mm)`. Parsed by position, without a regex: it runs once per event.
 */
export function parseInstant(text: string | undefined): ParsedInstant | undefined {
  if (text === undefined || text.length < 20 || text.charCodeAt(10) !== 0x54 /* T */) return undefined;
  if (text.charCodeAt(4) !== DASH || text.charCodeAt(7) !== DASH || text.charCodeAt(13) !== COLON || text.charCodeAt(16) !== COLON) return undefined;
  const hour = hourOf(text);
  const mi = digits(text, 14, 2);
  const s = digits(text, 17, 2);
  // Written so that NaN (a non-digit) fails every test.
  if (Number.isNaN(hour) || !(mi <= 59 && s <= 60)) return undefined;
  let index = 19;
  let fraction = '';
  let millis = 0;
  if (text.charCodeAt(index) === DOT) {
    let end = index + 1;
    while (end < text.length && isDigit(text.charCodeAt(end))) {
      // The first three digits are the milliseconds (validity comparisons only); the text keeps them all.
      if (end - index <= 3) millis += (text.charCodeAt(end) - 0x30) * 10 ** (3 - (end - index));
      end += 1;
    }
    if (end === index + 1) return undefined;
    fraction = text.slice(index + 1, end);
    index = end;
  }
  const offsetMinutes = zoneOffset(text, index);
  if (offsetMinutes === undefined) return undefined;
  const epochSeconds = hour + mi * 60 + s - offsetMinutes * 60;
  return { text, epochSeconds, fraction, epochMs: epochSeconds * 1000 + millis };
}

/**
 * The last date and hour parsed ("2026-11-03T14", as written, before its zone is applied) and its seconds since the
 * epoch: events come in time order, so most share it with the one before.
 */
let lastHourText = '';
let lastHourSeconds = 0;

/** Seconds since the epoch of text's `YYYY-MM-DDThh` as if it were UTC, or NaN when it is not a date and hour. */
function hourOf(text: string): number {
  if (lastHourText.length === 13 && text.startsWith(lastHourText)) return lastHourSeconds;
  const y = digits(text, 0, 4);
  const mo = digits(text, 5, 2);
  const d = digits(text, 8, 2);
  const h = digits(text, 11, 2);
  // A day the month lacks (2026-02-30) is refused: Date.UTC would roll it into the next month, another instant.
  if (!(y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(y, mo) && h <= 23)) return Number.NaN;
  lastHourText = text.slice(0, 13);
  lastHourSeconds = Date.UTC(y, mo - 1, d, h) / 1000;
  return lastHourSeconds;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days in month `month` (1–12) of the proleptic Gregorian `year` (also what --since/--until are checked against). */
export function daysIn(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === 2 && leap ? 29 : (MONTH_DAYS[month - 1] as number);
}

const DASH = 0x2d;
const COLON = 0x3a;
const DOT = 0x2e;

/** Minutes east of UTC for `Z` or `±hh:mm` at `index` (the end of the text), else undefined. */
function zoneOffset(text: string, index: number): number | undefined {
  if (text[index] === 'Z') return index + 1 === text.length ? 0 : undefined;
  const sign = text[index];
  if ((sign !== '+' && sign !== '-') || text.length !== index + 6 || text[index + 3] !== ':') return undefined;
  const hours = digits(text, index + 1, 2);
  const minutes = digits(text, index + 4, 2);
  // FHIR's dateTime allows offsets from -14:00 to +14:00 (…|14:00): +15:00 is no zone on Earth, likely a typo.
  if (Number.isNaN(hours) || Number.isNaN(minutes) || minutes > 59 || hours > 14 || (hours === 14 && minutes !== 0)) return undefined;
  return (sign === '-' ? -1 : 1) * (hours * 60 + minutes);
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** The decimal number in text[start, start+length), or NaN if any character is not a digit. */
function digits(text: string, start: number, length: number): number {
  let value = 0;
  for (let index = start; index < start + length; index += 1) {
    const code = text.charCodeAt(index);
    if (!isDigit(code)) return Number.NaN;
    value = value * 10 + (code - 0x30);
  }
  return value;
}

/** docs/mapping.md §4.1: `period.start` only when it carries a time, else `recorded` (an instant, always with a zone). */
export function chooseEventTime(event: AuditEvent): ParsedInstant | undefined {
  return parseInstant(event.period?.start) ?? parseInstant(event.recorded);
}

/** Parses `iso-utc` | `iso-offset` | `local:<IANA zone>`; undefined when the zone is unknown to this Node's ICU. */
export function parseTimeFormat(text: string): TimeFormat | undefined {
  if (text === 'iso-utc') return { kind: 'iso-utc' };
  if (text === 'iso-offset') return { kind: 'iso-offset' };
  if (!text.startsWith('local:')) return undefined;
  const zone = text.slice('local:'.length);
  try {
    const formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    return { kind: 'local', zone, formatter };
  } catch {
    return undefined;
  }
}

/**
 * Formats the event time. iso-utc: `2012-10-25T11:04:27Z` from `2012-10-25T22:04:27+11:00`, fraction kept verbatim;
 * iso-offset: the source text; local: wall-clock time in the zone without an offset (`2012-10-25T07:04:27`).
 */
export function formatInstant(instant: ParsedInstant, format: TimeFormat): string {
  // A UTC source ("…Z") already is its iso-utc form, fraction included.
  if (format.kind === 'iso-offset' || (format.kind === 'iso-utc' && instant.text.endsWith('Z'))) return instant.text;
  const offsetSeconds = format.kind === 'local' ? zoneOffsetSeconds(format, instant.epochSeconds) : 0;
  const wall = formatUtcSeconds(instant.epochSeconds + offsetSeconds);
  const fraction = instant.fraction ? `.${instant.fraction}` : '';
  return format.kind === 'local' ? `${wall}${fraction}` : `${wall}${fraction}Z`;
}

function formatUtcSeconds(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000);
  return `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** Zone offsets change only at transitions on whole quarter hours, so one Intl call per quarter hour is enough. */
const QUARTER_HOUR = 900;
const offsetCache = new Map<string, number>();

function zoneOffsetSeconds(format: { zone: string; formatter: Intl.DateTimeFormat }, epochSeconds: number): number {
  const bucket = Math.floor(epochSeconds / QUARTER_HOUR) * QUARTER_HOUR;
  const key = `${format.zone}@${bucket}`;
  const cached = offsetCache.get(key);
  if (cached !== undefined) return cached;
  const parts: Record<string, number> = {};
  for (const part of format.formatter.formatToParts(new Date(bucket * 1000))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  const wallAsUtc =
    Date.UTC(parts['year'] ?? 1970, (parts['month'] ?? 1) - 1, parts['day'] ?? 1, parts['hour'] ?? 0, parts['minute'] ?? 0, parts['second'] ?? 0) / 1000;
  const offset = wallAsUtc - bucket;
  if (offsetCache.size > 10_000) offsetCache.clear();
  offsetCache.set(key, offset);
  return offset;
}

/**
 * Epoch ms of a wall-clock time (no offset written) in an IANA zone, for local times such as a Clarity export's
 * `2026-11-01 02:30:00`: the offset valid at that wall time, found from its UTC reading and corrected once. In the hour
 * a DST change repeats, the first of the two instants (still daylight time); a time the change skips is read with the
 * offset after it. undefined when the text is no date and time.
 */
export function wallTimeInZone(text: string, format: Extract<TimeFormat, { kind: 'local' }>): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/.exec(text.trim());
  if (!match) return undefined;
  const [y, mo, d, h, mi, s] = match.slice(1, 7).map((part) => Number(part ?? '0')) as [number, number, number, number, number, number];
  if (!(mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(y, mo) && h <= 23 && mi <= 59 && s <= 59)) return undefined;
  const millis = Number((match[7] ?? '').padEnd(3, '0').slice(0, 3));
  const asUtc = Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
  const first = asUtc - zoneOffsetSeconds(format, asUtc);
  // In the repeated hour both readings are valid; the earlier instant, under the offset in force before the change (a
  // day before: no zone changes twice in a day, and some change by more than an hour).
  const before = asUtc - zoneOffsetSeconds(format, first - 86_400);
  const seconds = zoneOffsetSeconds(format, before) === asUtc - before ? before : asUtc - zoneOffsetSeconds(format, first);
  return seconds * 1000 + millis;
}
