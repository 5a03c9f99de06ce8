/**
 * An order-independent digest of a multiset of rows: how many, and the sum and XOR of a 64-bit hash of each. Two
 * sides that saw the same rows, each exactly once, end with equal digests; a row missing, doubled or changed makes
 * them differ (but for a 2^-64 chance). The ingestion emulator keeps one per job instead of every row, so a million-
 * row demo verifies exactly-once in constant memory.
 */
import { createHash } from 'node:crypto';

export interface RowDigestValue {
  readonly rows: number;
  /** Hex, 16 digits each. */
  readonly sum: string;
  readonly xor: string;
}

export interface RowDigest {
  add(row: string | Buffer): void;
  value(): RowDigestValue;
}

const MASK = (1n << 64n) - 1n;

export function createRowDigest(): RowDigest {
  let rows = 0;
  let sum = 0n;
  let xor = 0n;
  return {
    add(row) {
      const h = createHash('sha256').update(row).digest().readBigUInt64BE(0);
      rows += 1;
      sum = (sum + h) & MASK;
      xor ^= h;
    },
    value: () => ({ rows, sum: sum.toString(16).padStart(16, '0'), xor: xor.toString(16).padStart(16, '0') }),
  };
}
