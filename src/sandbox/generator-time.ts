/**
 * Time for the sandbox: FHIR date/dateTime/instant text ↔ epoch milliseconds (with sub-millisecond fractions kept),
 * the organisation's local offset with daylight saving time (America/Denver), and the varied `recorded` and
 * `period.start` texts the generator emits, so the bridge meets local offsets, DST and exact fractions as in production.
 * See: https://hl7.org/fhir/R4/datatypes.html#dateTime, https://hl7.org/fhir/R4/search.html#date
 */
import type { Rng } from './generator-random.js';

/**
 * The implicit range of a FHIR date/dateTime value, [startMs, endMs), each bound rounded UP to a whole millisecond:
 * generated instants are whole milliseconds, so "t ≥ x" ⟺ "t ≥ ceil(x)" and "t < x" ⟺ "t < ceil(x)". Rounding is
 * exact (BigInt): a float cannot hold 0.0001 ms next to an epoch of 1.8e12 ms.
 */
export interface TimeRange {
  readonly startMs: number;
  readonly endMs: number;
}

const DATE_TIME = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;
const DAY_MS = 86_400_000;

/**
 * Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD` and `YYYY-MM-DDThh:mm[:ss[.f…]][Z|±hh:mm]` into the range its precision
 * covers ("2026-11-01" is the whole day). A missing zone means UTC: R4 lets the server pick its own zone and the
 * sandbox's is UTC. Undefined when the text is not such a value.
 */
export function parseFhirDateTime(text: string): TimeRange | undefined {
  const m = DATE_TIME.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  const year = Number(y);
  const month = mo === undefined ? 1 : Number(mo);
  const day = d === undefined ? 1 : Number(d);
  const hour = Number(h ?? 0);
  const minute = Number(mi ?? 0);
  const second = Number(s ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  const offsetMs = zoneOffsetMs(zone);
  const wholeMs = utc(year, month - 1, day, hour, minute, second) - offsetMs;
  if (fraction !== undefined) return fractionRange(wholeMs, fraction);
  if (mo === undefined) return { startMs: wholeMs, endMs: utc(year + 1, 0, 1) - offsetMs };
  if (d === undefined) return { startMs: wholeMs, endMs: utc(year, month, 1) - offsetMs };
  if (h === undefined) return { startMs: wholeMs, endMs: wholeMs + DAY_MS };
  return { startMs: wholeMs, endMs: wholeMs + (s === undefined ? 60_000 : 1000) };
}

/** '.1' covers 100 ms, '.123' 1 ms, '.1234567' 100 ns: counted in units of the last digit, then rounded up to ms. */
function fractionRange(wholeMs: number, fraction: string): TimeRange {
  const digits = fraction.padEnd(3, '0');
  const unitsPerMs = 10n ** BigInt(digits.length - 3);
  const start = BigInt(wholeMs) * unitsPerMs + BigInt(digits);
  const width = 10n ** BigInt(digits.length - fraction.length);
  return { startMs: ceilDiv(start, unitsPerMs), endMs: ceilDiv(start + width, unitsPerMs) };
}

function ceilDiv(a: bigint, b: bigint): number {
  // BigInt division truncates toward zero, which is the ceiling for negative quotients.
  return Number(a >= 0n ? (a + b - 1n) / b : a / b);
}

/** Date.UTC, but years 0–99 stay years 0–99 (Date.UTC would read them as 1900–1999). */
function utc(year: number, monthIndex: number, day: number, hour = 0, minute = 0, second = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, day);
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month, 0)).getUTCDate();
}

function zoneOffsetMs(zone: string | undefined): number {
  if (zone === undefined || zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  return sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
}

/** 'YYYY-MM-DD' of an epoch-ms instant (UTC). */
export function dateOnly(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A date `years` (fractional allowed) before `ms`, as 'YYYY-MM-DD'. */
export function yearsBefore(ms: number, years: number): string {
  return dateOnly(ms - Math.round(years * 365.25 * DAY_MS));
}

/** The day after a 'YYYY-MM-DD' date. */
export function dayAfter(date: string): string {
  return dateOnly(Date.parse(`${date}T00:00:00Z`) + DAY_MS);
}

/**
 * The sandbox organisation's UTC offset at an instant: America/Denver under the US rules in force since 2007 —
 * MDT (−06:00) from the second Sunday of March 02:00 MST (09:00 UTC) to the first Sunday of November 02:00 MDT
 * (08:00 UTC), MST (−07:00) otherwise. Arithmetic rather than Intl, so the bytes never depend on the ICU data the
 * Node build ships (a test checks it against Intl).
 */
export function denverOffsetMinutes(ms: number): number {
  const year = new Date(ms).getUTCFullYear();
  const dstStart = Date.UTC(year, 2, nthSunday(year, 2, 2), 9);
  const dstEnd = Date.UTC(year, 10, nthSunday(year, 10, 1), 8);
  return ms >= dstStart && ms < dstEnd ? -360 : -420;
}

/** Day of the month of the n-th Sunday of a month (monthIndex 0–11). */
function nthSunday(year: number, monthIndex: number, n: number): number {
  const firstWeekday = new Date(Date.UTC(year, monthIndex, 1)).getUTCDay();
  return 1 + ((7 - firstWeekday) % 7) + 7 * (n - 1);
}

/**
 * An instant as FHIR text in the organisation's local offset: '2026-11-01T01:59:58.250-06:00', then after the fall
 * back '2026-11-01T01:00:03-07:00' (textually earlier, an instant later). `fraction` false drops the milliseconds,
 * which must then be zero: the text always names exactly this instant.
 */
export function formatLocal(ms: number, fraction: boolean): string {
  const offset = denverOffsetMinutes(ms);
  const local = new Date(ms + offset * 60_000).toISOString();
  const abs = Math.abs(offset);
  const zone = `${offset < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${local.slice(0, fraction ? 23 : 19)}${zone}`;
}

/** An instant as UTC FHIR text, with or without its milliseconds (same rule as formatLocal). */
export function formatUtc(ms: number, fraction: boolean): string {
  const iso = new Date(ms).toISOString();
  return fraction ? iso : `${iso.slice(0, 19)}Z`;
}

/** Share of `recorded` values written in the local offset; the rest are UTC ('Z'). */
const LOCAL_RECORDED_SHARE = 0.75;

/**
 * `recorded` as an Epic server might write it: mostly the organisation's local offset (with DST), sometimes UTC, with
 * milliseconds unless the instant is a whole second. Only the text varies; the instant is exactly recordedMs.
 */
export function formatRecorded(recordedMs: number, rng: Rng): string {
  const fraction = recordedMs % 1000 !== 0;
  return rng.chance(LOCAL_RECORDED_SHARE) ? formatLocal(recordedMs, fraction) : formatUtc(recordedMs, fraction);
}

type PeriodFormat = 'millis' | 'seconds' | 'micros' | 'seven-digits' | 'local-offset';
const PERIOD_FORMATS: ReadonlyArray<{ format: PeriodFormat; weight: number }> = [
  { format: 'millis', weight: 40 },
  { format: 'seconds', weight: 20 },
  { format: 'seven-digits', weight: 20 },
  { format: 'micros', weight: 10 },
  { format: 'local-offset', weight: 10 },
];

/**
 * `period.start` 0–2 s before `recorded`, in one of several valid shapes: '.123Z', no fraction, '.123456Z',
 * '.1234567Z' (more digits than JS Date keeps) or the local offset ('-06:00' or '-07:00' by DST). Never after `recorded`.
 */
export function formatPeriodStart(recordedMs: number, rng: Rng): string {
  const backMs = rng.int(2000);
  const { format } = rng.weighted(PERIOD_FORMATS, (f) => f.weight);
  const iso = new Date(recordedMs - backMs).toISOString();
  switch (format) {
    case 'millis':
      return iso;
    case 'seconds': {
      // Whole seconds round down by up to 999 ms; step forward a second when that would leave the 2 s window.
      const second = Math.floor((recordedMs - backMs) / 1000) * 1000;
      return `${new Date(recordedMs - second >= 2000 ? second + 1000 : second).toISOString().slice(0, 19)}Z`;
    }
    case 'micros':
    case 'seven-digits': {
      // Extra digits add up to 0.9999 ms, so step back at least 1 ms to stay at or before recorded.
      const base = new Date(recordedMs - Math.max(1, backMs)).toISOString();
      return `${base.slice(0, 23)}${rng.digits(format === 'micros' ? 3 : 4)}Z`;
    }
    case 'local-offset':
      return formatLocal(recordedMs - backMs, true);
  }
}
