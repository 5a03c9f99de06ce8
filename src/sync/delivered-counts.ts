/**
 * A run's counts with what the delivery ledger holds as acknowledged of it (StateStore.deliveredOf, every push of the
 * run id). A run's record gets its push's counts only when it completes, and then those of its last push: a run killed
 * or failed during its push would show no block, and a resumed one only the blocks (and the possibly duplicated ones)
 * of its last push. The ledger figure is taken where it is larger; where retention pruned it, the record's stands.
 */
import type { RunCounts, RunDelivered } from './state/index.js';

export function withDelivered(counts: RunCounts, delivered: RunDelivered, completed: boolean): RunCounts {
  return {
    ...counts,
    blocksAcked: Math.max(counts.blocksAcked, delivered.blocks),
    possiblyDuplicated: Math.max(counts.possiblyDuplicated, delivered.possiblyDuplicated),
    rowsPossiblyDuplicated: Math.max(counts.rowsPossiblyDuplicated, delivered.rowsPossiblyDuplicated),
    // A completed run's rowsAcked holds every row of its input already (sent, or found delivered before); one not
    // completed has, besides the rows its finished files found delivered, those its blocks carried.
    rowsAcked: completed ? counts.rowsAcked : Math.max(counts.rowsAcked, counts.rowsAlreadyDelivered + delivered.rows),
  };
}
