/** Moved to src/composition/ (the one composition root); kept as a re-export while callers move. */
export * from '../composition/index.js';
