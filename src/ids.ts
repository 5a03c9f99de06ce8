import { randomUUID } from 'node:crypto';

/** Random ids come through this so tests can make them deterministic. */
export type IdSource = () => string;

export const uuidSource: IdSource = () => randomUUID();
