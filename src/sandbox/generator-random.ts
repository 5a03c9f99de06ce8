/**
 * Seeded randomness with O(1) random access. Every entity draws from its own stream, seeded from (seed, stream, index),
 * so `eventAt(i)` never depends on generating events 0…i−1 and the same seed gives byte-identical data on any
 * platform (integer maths through Math.imul only).
 */

/** Independent random streams. Adding a stream never changes the values of the others. */
export const STREAM = {
  practitioner: 1,
  patient: 2,
  event: 3,
  eventTime: 4,
  practitionerName: 5,
  /** Per practitioner: their usual workstation and their panel of patients. */
  workstationHome: 6,
  patientPanel: 7,
  /** Per person: which of Epic's extra identifiers (decoys, an old MRN or login) they carry. */
  patientIdentifiers: 8,
  practitionerIdentifiers: 9,
  /** Per whole second of the timeline: whether events recorded in it are whole seconds (no fraction). */
  recordedPrecision: 10,
  /** Per event: whether `recorded` is written in the local offset or in UTC. */
  recordedFormat: 11,
  /** Per break-the-glass event: which of its two signals it carries (generator-events.ts btgSignalOf). */
  btgSignal: 12,
  /** Per user: whether they have a provider record (a Practitioner) or are staff without one. */
  practitionerRecord: 13,
  idTail: 16,
  idKey: 32,
  canaryKey: 64,
} as const;

/** What an opaque id names; part of the id's key, so a Patient id never decodes as a Practitioner index. */
export const ID_KIND = { practitioner: 1, patient: 2, event: 3, device: 4 } as const;
export type IdKind = (typeof ID_KIND)[keyof typeof ID_KIND];

/** murmur3's 32-bit finaliser: a cheap, well-mixed integer hash. */
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit seed for one (seed, stream, index) triple; `seed` may be any safe integer (both halves count). */
export function streamSeed(seed: number, stream: number, index: number): number {
  const low = seed >>> 0;
  const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
  let h = fmix32(low ^ 0x9e3779b9);
  h = fmix32(h ^ high ^ Math.imul(stream, 0x85ebca6b));
  return fmix32(h ^ Math.imul(index >>> 0, 0xcc9e2d51) ^ stream);
}

/** A small seeded generator (mulberry32 underneath) with the draws the generator needs. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). mulberry32, public domain (Tommy Ettinger). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  }

  /** Whole number in [0, maxExclusive). */
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new RangeError('pick() needs a non-empty list');
    return item;
  }

  /** Picks by weight; `weightOf` must be positive for at least one item. */
  weighted<T>(items: readonly T[], weightOf: (item: T) => number): T {
    let total = 0;
    for (const item of items) total += weightOf(item);
    let left = this.next() * total;
    for (const item of items) {
      left -= weightOf(item);
      if (left < 0) return item;
    }
    return this.pick(items);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /** `length` digits 0-9 as a string (keeps leading zeros). */
  digits(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += String(this.int(10));
    return out;
  }
}

export function rngFor(seed: number, stream: number, index: number): Rng {
  return new Rng(streamSeed(seed, stream, index));
}

/**
 * A keyed bijection on 32-bit integers (4-round Feistel network), so ids and canary tokens look random yet stay
 * unique and invertible in O(1).
 */
function permute32(value: number, key: number, inverse = false): number {
  let left = (value >>> 16) & 0xffff;
  let right = value & 0xffff;
  for (let step = 0; step < 4; step++) {
    const r = inverse ? 3 - step : step;
    if (!inverse) {
      const next = left ^ feistelRound(right, key, r);
      left = right;
      right = next;
    } else {
      const previous = right ^ feistelRound(left, key, r);
      right = left;
      left = previous;
    }
  }
  return ((left << 16) | right) >>> 0;
}

function feistelRound(half: number, key: number, round: number): number {
  return fmix32(half ^ key ^ Math.imul(round + 1, 0x9e3779b9)) & 0xffff;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TAIL_LENGTH = 17;
const INDEX_DIGITS = 6; // 62^6 > 2^32
/** Epic FHIR ids are 24 characters of this shape, e.g. "erXuFYUfucBZaryVksYEcMg3" (docs/epic-smart.md §7.1). */
export const ID_LENGTH = 1 + TAIL_LENGTH + INDEX_DIGITS;
/** Ids encode a 32-bit index. */
export const MAX_INDEX = 0xffff_ffff;

/**
 * Opaque, Epic-looking id: 'e' + 17 seeded characters + the keyed permutation of the index in 6 base-62 digits,
 * each shifted by a tail character. The tail doubles as a checksum: decoding recomputes the whole id and compares.
 */
export function entityId(seed: number, kind: IdKind, index: number): string {
  const rng = rngFor(seed, STREAM.idTail + kind, index);
  let code = permute32(index, streamSeed(seed, STREAM.idKey, kind));
  // Base-62 digits of the code, most significant first, each shifted by the matching tail character.
  const digits = new Array<number>(INDEX_DIGITS);
  for (let i = INDEX_DIGITS - 1; i >= 0; i--) {
    digits[i] = code % 62;
    code = Math.floor(code / 62);
  }
  let tail = '';
  let masked = '';
  for (let i = 0; i < TAIL_LENGTH; i++) {
    const shift = rng.int(62);
    tail += BASE62[shift];
    if (i < INDEX_DIGITS) masked += BASE62[((digits[i] ?? 0) + shift) % 62];
  }
  return `e${tail}${masked}`;
}

/** The index an id was made from, or undefined when this dataset (seed, kind, count) did not make it. O(1). */
export function indexFromId(seed: number, kind: IdKind, id: string, count: number): number | undefined {
  if (id.length !== ID_LENGTH || id[0] !== 'e') return undefined;
  let code = 0;
  for (let i = 0; i < INDEX_DIGITS; i++) {
    const masked = BASE62.indexOf(id[1 + TAIL_LENGTH + i] ?? '');
    const shift = BASE62.indexOf(id[1 + i] ?? '');
    if (masked < 0 || shift < 0) return undefined;
    code = code * 62 + ((masked - shift + 62) % 62);
  }
  if (code > MAX_INDEX) return undefined;
  const index = permute32(code, streamSeed(seed, STREAM.idKey, kind), true);
  if (index >= count) return undefined;
  return entityId(seed, kind, index) === id ? index : undefined;
}

/**
 * 'CANARY' + 10 hex digits, unique per (field, index): the field code plus a keyed permutation of the index. Leak
 * tests grep logs for 'CANARY'; a hit names exactly one value.
 */
export function canaryToken(seed: number, field: number, index: number): string {
  const scrambled = permute32(index, streamSeed(seed, STREAM.canaryKey, field));
  return `CANARY${(field & 0xff).toString(16).padStart(2, '0')}${scrambled.toString(16).padStart(8, '0')}`;
}
