import { BridgeError } from '../../src/errors.js';

/** The BridgeError `run` throws; fails the test when it throws nothing or something else. */
export function errorOf(run: () => unknown): BridgeError {
  try {
    run();
  } catch (error) {
    if (error instanceof BridgeError) return error;
    throw error;
  }
  throw new Error('expected a BridgeError');
}
