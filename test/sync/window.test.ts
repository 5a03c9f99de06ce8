import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { computeWindow, eventKey } from '../../src/sync/window.js';

const policy = { overlapMs: 15 * 60_000, settleMs: 5 * 60_000, initialLookbackMs: 24 * 3_600_000 };
const now = Date.parse('2026-11-23T12:00:00.000Z');

describe('computeWindow', () => {
  it('starts a first run the lookback before the settled end', () => {
    expect(computeWindow(now, undefined, policy)).toEqual({ since: '2026-11-22T11:55:00.000Z', until: '2026-11-23T11:55:00.000Z' });
  });

  it('a source that ends its windows itself (a Bulk export) is no empty window when its watermark is past now minus the settle delay', () => {
    // The last export's transactionTime, by a server clock two minutes ahead; or runs closer together than the settle delay.
    const watermark = '2026-11-23T12:02:00.000Z';
    expect(() => computeWindow(now, watermark, { ...policy, overlapMs: 0 })).toThrow(/Empty sync window/);
    expect(computeWindow(now, watermark, { ...policy, overlapMs: 0 }, {}, true)).toEqual({
      since: '2026-11-23T12:02:00.000Z',
      until: '2026-11-23T12:02:00.000Z',
      dedupeBefore: watermark,
    });
    expect(computeWindow(now, '2026-11-23T10:00:00.000Z', policy, {}, true)).toEqual({
      since: '2026-11-23T09:45:00.000Z',
      until: '2026-11-23T12:00:00.000Z',
      dedupeBefore: '2026-11-23T10:00:00.000Z',
    });
    expect(computeWindow(now, undefined, policy, {}, true)).toEqual({ since: '2026-11-22T12:00:00.000Z', until: '2026-11-23T12:00:00.000Z' });
    // A start someone gives is still theirs (a backfill), and still has to be in the past.
    expect(computeWindow(now, watermark, policy, { since: '2026-11-20' }, true)).toEqual({
      since: '2026-11-20T00:00:00.000Z',
      until: '2026-11-23T12:00:00.000Z',
      dedupeBefore: watermark,
      explicitSince: true,
    });
    expect(() => computeWindow(now, watermark, policy, { since: '2026-11-23T12:00:00Z' }, true)).toThrow(
      expect.objectContaining({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining('is not before now') }),
    );
  });

  it('re-reads the overlap before the watermark and marks it for de-duplication', () => {
    expect(computeWindow(now, '2026-11-23T10:00:00.000Z', policy)).toEqual({
      since: '2026-11-23T09:45:00.000Z',
      until: '2026-11-23T11:55:00.000Z',
      dedupeBefore: '2026-11-23T10:00:00.000Z',
    });
  });

  it('lets --since/--until override either end for backfills', () => {
    const window = computeWindow(now, '2026-11-23T10:00:00.000Z', policy, { since: '2026-10-01', until: '2026-10-02T00:00:00Z' });
    expect(window.since).toBe('2026-10-01T00:00:00.000Z');
    expect(window.until).toBe('2026-10-02T00:00:00.000Z');
    // Asked for by someone, not the schedule's next window (a Bulk source's backoff lets it through).
    expect(window.explicitSince).toBe(true);
    expect(computeWindow(now, '2026-11-23T10:00:00.000Z', policy, { until: '2026-11-23T11:00:00Z' }).explicitSince).toBeUndefined();
  });

  it('rejects an empty window and a malformed instant with the flag named', () => {
    expect(() => computeWindow(now, undefined, policy, { since: '2026-11-23T12:00:00Z', until: '2026-11-23T11:00:00Z' })).toThrow(/Empty sync window/);
    const error = (() => {
      try {
        computeWindow(now, undefined, policy, { since: 'yesterday' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((error as BridgeError).message).toContain('--since "yesterday"');
  });
});

describe('a --since or --until that is no day of the calendar', () => {
  it('is refused naming the flag, not rolled into the next month', () => {
    for (const [flag, value] of [
      ['since', '2026-02-30'],
      ['since', '2026-02-29'],
      ['until', '2026-02-31T10:00Z'],
      ['until', '2026-04-31T00:00:00+02:00'],
    ] as const) {
      expect(() => computeWindow(now, undefined, policy, { since: '2026-01-01', until: '2026-06-01', [flag]: value })).toThrow(
        expect.objectContaining({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining(`--${flag} "${value}" names a day that does not exist`) }),
      );
    }
  });

  it('accepts a leap day and an offset that moves the instant into the next month', () => {
    expect(computeWindow(Date.parse('2028-06-01T00:00:00Z'), undefined, policy, { since: '2028-02-29', until: '2028-04-30T23:30:00-02:00' })).toMatchObject({
      since: '2028-02-29T00:00:00.000Z',
      until: '2028-05-01T01:30:00.000Z',
    });
  });
});

describe('a --since or --until without a zone', () => {
  it('refuses a time without Z or an offset (it would be read in the host zone); a date alone is a UTC day', () => {
    for (const since of ['2026-11-01T00:00:00', '2026-11-01 10:00', '2026-11-01t10:00:00']) {
      expect(() => computeWindow(now, undefined, policy, { since, until: '2026-11-02T00:00:00Z' })).toThrow(
        expect.objectContaining({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining('add Z for UTC or the offset you mean') }),
      );
    }
    expect(computeWindow(now, undefined, policy, { since: '2026-11-01T00:00:00-06:00', until: '2026-11-02' })).toMatchObject({
      since: '2026-11-01T06:00:00.000Z',
      until: '2026-11-02T00:00:00.000Z',
    });
  });
});

describe('the end of a window', () => {
  it('never reaches past now minus the settle delay: a later --until would move the watermark past unrecorded events', () => {
    expect(computeWindow(now, undefined, policy, { until: '2026-11-23T11:55:00Z' }).until).toBe('2026-11-23T11:55:00.000Z');
    expect(() => computeWindow(now, undefined, policy, { until: '2026-11-23T11:55:00.001Z' })).toThrow(
      /--until 2026-11-23T11:55:00.001Z is later than now minus the settle delay \(2026-11-23T11:55:00.000Z\)/,
    );
    expect(() => computeWindow(now, '2026-11-23T10:00:00.000Z', policy, { since: '2026-11-20', until: '2027-01-01' })).toThrow(BridgeError);
  });

  it('ends a given --until on its whole second, as a scheduled window ends: the next run does not read that second twice', () => {
    expect(computeWindow(now, undefined, policy, { since: '2026-11-23T10:00:00Z', until: '2026-11-23T11:00:03.456Z' }).until).toBe('2026-11-23T11:00:03.000Z');
    expect(computeWindow(now, undefined, policy, { until: '2026-11-23T11:00:03.456+01:00' }).until).toBe('2026-11-23T10:00:03.000Z');
  });
});

describe('eventKey', () => {
  it('combines id and version so a new version of an event is not mistaken for the old one', () => {
    expect(eventKey({ id: 'a', meta: { versionId: '2' } })).toBe('a|2');
    expect(eventKey({ id: 'a' })).toBe('a|');
  });
});
