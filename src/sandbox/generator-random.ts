/**
 * Seeded randomness with O(1) random access: every entity draws from its own stream seeded by (seed, kind, index),
 * so `eventAt(i)` never depends on generating events 0…i−1, and the same seed gives byte-identical data.
 */

/** mulberry32: small, fast, good enough for test data. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over the parts, used to derive per-entity seeds. */
export function hashParts(...parts: ReadonlyArray<string | number>): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = String(part);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x7c;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface Rng {
  next(): number;
  int(maxExclusive: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  hex(chars: number): string;
}

export function rngFor(seed: number, kind: string, index: number): Rng {
  const next = mulberry32(hashParts(seed, kind, index));
  const int = (max: number): number => Math.floor(next() * max);
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)] as T,
    chance: (p) => next() < p,
    hex: (chars) => Array.from({ length: chars }, () => int(16).toString(16)).join(''),
  };
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * Epic-looking opaque ids from which the index can be recovered: `e` + kind letter + base-36 index (7 chars) +
 * 12 seeded characters. The seeded tail acts as a checksum: `indexFromId` rejects ids this dataset did not make.
 */
export function entityId(seed: number, kind: string, index: number): string {
  const tail = mulberry32(hashParts(seed, 'id', kind, index));
  let suffix = '';
  for (let i = 0; i < 12; i++) suffix += ID_CHARS[Math.floor(tail() * ID_CHARS.length)];
  return `e${kind}${index.toString(36).padStart(7, '0')}${suffix}`;
}

export function indexFromId(seed: number, kind: string, id: string, count: number): number | undefined {
  if (id.length !== 21 || id[0] !== 'e' || id[1] !== kind) return undefined;
  const index = Number.parseInt(id.slice(2, 9), 36);
  if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
  return entityId(seed, kind, index) === id ? index : undefined;
}
