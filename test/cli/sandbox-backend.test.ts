import { expect, it } from 'vitest';
import { backendFor, MEMORY_BACKEND_MAX_EVENTS } from '../../src/cli/commands/sandbox.js';

it('loads small data sets into the searchable memory backend and serves larger ones lazily, unless told which', () => {
  const events = (n: number) => ({ dir: '/tmp/x', data: { events: n } });
  expect(MEMORY_BACKEND_MAX_EVENTS).toBe(10_000);
  expect(backendFor(undefined, events(10_000))).toBe('memory');
  // 50,000 events outgrew the CLI's 256 MB heap in the memory backend (an out-of-memory crash, not an error).
  expect(backendFor(undefined, events(10_001))).toBe('generated');
  expect(backendFor(undefined, events(50_000))).toBe('generated');
  expect(backendFor('memory', events(50_000))).toBe('memory');
  expect(backendFor('generated', events(10))).toBe('generated');
});
