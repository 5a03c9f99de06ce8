import { expect, it } from 'vitest';
import { refuseLarge } from '../../src/cli/commands/state-refused.js';
import { errorOf } from '../support/error-of.js';

it('gives up a block of more than 1,000 events only with --all, saying how to narrow it first', () => {
  const block = (events: number) => ({ blockId: 7, runId: 'r', events, rows: events, status: 400, refusedMs: 0 });
  expect(() => refuseLarge('main', block(1_000), false)).not.toThrow();
  expect(() => refuseLarge('main', block(100_000), true)).not.toThrow();
  const error = errorOf(() => refuseLarge('main', block(1_001), false));
  expect(error.code).toBe('BRG_ERR_INPUT_INVALID');
  expect(error.message).toContain('holds 1001 events');
  expect(error.message).toContain('purview__blockRows=100 bridge sync --connector main');
  expect(error.message).toContain('with --all');
});
