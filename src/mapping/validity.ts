/**
 * "Valid at the event time" and ranking by use (docs/mapping.md §5.1, §5.2): the name, address, MRN and e-mail a row
 * shows are the ones in force when the access happened, not the ones valid today (Patient-example's maiden name ended
 * in 2002). FHIR period bounds may be partial ("2002"); `end` is inclusive at its own precision, so "2002" ends at
 * 2003-01-01.
 */
import type { Address, ContactPoint, HumanName, Identifier, Period } from 'fhir/r4.js';

const PARTIAL = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/;
const FULL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/** First millisecond covered by a date/dateTime (date-only values are read as UTC days). */
export function lowerBound(text: string): number | undefined {
  return bound(text, false);
}

/** First millisecond after a date/dateTime at its own precision (exclusive upper bound). */
export function upperBound(text: string): number | undefined {
  return bound(text, true);
}

function bound(text: string, upper: boolean): number | undefined {
  const full = FULL.exec(text);
  if (full) {
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? undefined : ms + (upper ? lastDigitSpanMs(full[7]) : 0);
  }
  const m = PARTIAL.exec(text);
  if (!m) return undefined;
  const year = Number(m[1]);
  if (m[2] === undefined) return Date.UTC(year + (upper ? 1 : 0), 0, 1);
  const month = Number(m[2]) - 1;
  if (m[3] === undefined) return Date.UTC(year, month + (upper ? 1 : 0), 1);
  return Date.UTC(year, month, Number(m[3]) + (upper ? 1 : 0));
}

/**
 * How long the last written digit of a dateTime's seconds spans, in ms: a second without a fraction, 100 ms for ".5".
 * Past milliseconds Date.parse truncates the bound, as the event's time is truncated: the next millisecond.
 */
function lastDigitSpanMs(fraction: string | undefined): number {
  if (fraction === undefined) return 1000;
  return fraction.length >= 3 ? 1 : 10 ** (3 - fraction.length);
}

/** Unparsable bounds count as absent, so bad data widens validity instead of hiding a patient's only name. */
export function isValidAt(period: Period | undefined, tMs: number): boolean {
  if (!period) return true;
  const start = period.start === undefined ? undefined : lowerBound(period.start);
  if (start !== undefined && !(tMs >= start)) return false;
  const end = period.end === undefined ? undefined : upperBound(period.end);
  if (end !== undefined && !(tMs < end)) return false;
  return true;
}

interface Periodic {
  readonly period?: Period | undefined;
}

/**
 * Every instant at which some element of the resource starts or stops being valid, sorted. Between two breakpoints
 * the valid set is constant, so per-resource results can be cached per interval (see cache.ts).
 */
export function validityBreakpoints(lists: ReadonlyArray<ReadonlyArray<Periodic> | undefined>): number[] {
  const points = new Set<number>();
  for (const list of lists) {
    for (const item of list ?? []) {
      const start = item.period?.start === undefined ? undefined : lowerBound(item.period.start);
      const end = item.period?.end === undefined ? undefined : upperBound(item.period.end);
      if (start !== undefined) points.add(start);
      if (end !== undefined) points.add(end);
    }
  }
  return [...points].sort((a, b) => a - b);
}

/** Index of the validity interval that contains tMs. */
export function intervalIndex(breakpoints: readonly number[], tMs: number): number {
  let index = 0;
  while (index < breakpoints.length && (breakpoints[index] as number) <= tMs) index += 1;
  return index;
}

/** Items valid at tMs, best rank first, document order within a rank. */
export function rankedValid<T extends Periodic>(items: readonly T[] | undefined, tMs: number, rank: (item: T) => number): T[] {
  if (!items) return [];
  const valid: Array<{ item: T; rank: number; order: number }> = [];
  items.forEach((item, order) => {
    const r = rank(item);
    if (r >= 0 && isValidAt(item.period, tMs)) valid.push({ item, rank: r, order });
  });
  return valid.sort((a, b) => a.rank - b.rank || a.order - b.order).map((entry) => entry.item);
}

const NAME_RANK: Readonly<Record<string, number>> = { official: 0, usual: 1, temp: 3, nickname: 4, anonymous: 5, old: 6, maiden: 7 };

/**
 * docs/mapping.md §5.2: official > usual > (no use) > temp > nickname > anonymous > old > maiden; names with no content
 * are ignored, and a current name (official, usual, none, temp) with a family part comes before all others (a text-only
 * name cannot be split into the first and last name columns, both mandatory).
 */
export function chooseName(names: readonly HumanName[] | undefined, tMs: number): HumanName | undefined {
  const chosen = rankedValid(names, tMs, (name) => {
    if (!(name.family || name.given?.some(isFilled) || name.text)) return -1;
    const rank = NAME_RANK[name.use ?? ''] ?? 2;
    // A current name with a family part fills both name columns: it comes before any other, a text-only official
    // included; the rest (text-only, given-only, nickname, old, maiden) keep the order of their use after it.
    return name.family && rank <= CURRENT ? rank : rank + LATER;
  })[0];
  return chosen && withoutBlanks(chosen, 'given');
}

/** official, usual, (none), temp: the uses of a name in use now. */
const CURRENT = 3;
/** Past every use's rank. */
const LATER = 10;

/**
 * docs/mapping.md §5.2: home (physical|both) > home (postal) > no use > temp; work, billing and old only when nothing
 * else exists.
 */
export function chooseAddress(addresses: readonly Address[] | undefined, tMs: number): Address | undefined {
  const chosen = rankedValid(addresses, tMs, addressRank)[0];
  return chosen && withoutBlanks(chosen, 'line');
}

/** A list item with text in it: an empty or white-space-only string is no name or line (FHIR: never a value). */
function isFilled(item: unknown): boolean {
  return typeof item === 'string' ? item.trim() !== '' : Boolean(item);
}

/**
 * The element without the blank items of its list `key` (docs/mapping.md §5.4, §5.5): `given: ["", "Ann"]` is one given
 * name, Ann, so the first-name column shows her and the middle-name column nothing; kept as an item, the blank would be
 * the "first" and shift Ann into the middle name (and an address's second line into the first line's place). The same
 * object when there is no blank (the common case: no copy).
 */
function withoutBlanks<T extends HumanName | Address>(element: T, key: 'given' | 'line'): T {
  const list: unknown = (element as Record<string, unknown>)[key];
  if (!Array.isArray(list) || list.every(isFilled)) return element;
  return { ...element, [key]: list.filter(isFilled) };
}

function addressRank(address: Address): number {
  if (!(address.line?.some(isFilled) || address.city || address.postalCode || address.text)) return -1;
  switch (address.use) {
    case 'home':
      return address.type === 'postal' ? 1 : 0;
    case undefined:
      return 2;
    case 'temp':
      return 3;
    case 'work':
      return 4;
    case 'billing':
      return 5;
    case 'old':
      return 6;
    default:
      return 2;
  }
}

const IDENTIFIER_RANK: Readonly<Record<string, number>> = { official: 0, usual: 1, secondary: 3, temp: 4, old: 5 };

/** Identifiers passing `test`, valid at tMs, ranked official > usual > (none) > secondary > temp > old. */
export function rankedIdentifiers(identifiers: readonly Identifier[] | undefined, tMs: number, test: (identifier: Identifier) => boolean): Identifier[] {
  return rankedValid(identifiers, tMs, (identifier) => (test(identifier) ? (IDENTIFIER_RANK[identifier.use ?? ''] ?? 2) : -1));
}

/** docs/mapping.md §7.1 (step 5): e-mail addresses with use work (then no use), valid at tMs, by ContactPoint.rank. */
export function workEmails(telecom: readonly ContactPoint[] | undefined, tMs: number): ContactPoint[] {
  return rankedValid(telecom, tMs, (point) => {
    if (point.system !== 'email' || !point.value) return -1;
    const useRank = point.use === 'work' ? 0 : point.use === undefined ? 1 : -1;
    return useRank < 0 ? -1 : useRank * 1e6 + Math.min(point.rank ?? 1e5, 1e5);
  });
}
