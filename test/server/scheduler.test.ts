import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { nextFireTime, runSchedule } from '../../src/server/scheduler.js';
import { flushMicrotasks, ManualClock } from '../support/manual-clock.js';

describe('nextFireTime', () => {
  it('computes the default daily 02:00 in the connector time zone', () => {
    const after = Date.parse('2026-11-23T12:00:00Z');
    expect(nextFireTime({ connector: 'c', cron: '0 2 * * *', timezone: 'America/Chicago' }, after)?.toISOString()).toBe('2026-11-24T08:00:00.000Z');
    expect(nextFireTime({ connector: 'c', cron: '0 2 * * *', timezone: 'Europe/Oslo' }, after)?.toISOString()).toBe('2026-11-24T01:00:00.000Z');
  });
});

describe('runSchedule with an injected clock', () => {
  it('fires on time and skips a tick while a run is in flight', async () => {
    const clock = new ManualClock('2026-11-23T00:30:00Z');
    const fired: string[] = [];
    const skipped: string[] = [];
    let running = false;
    const controller = new AbortController();
    const loop = runSchedule(
      { connector: 'main', cron: '0 * * * *', timezone: 'UTC' },
      {
        isRunning: () => running,
        fire: () => {
          fired.push(new Date(clock.now()).toISOString());
        },
        onSkip: (_c, at) => skipped.push(at.toISOString()),
      },
      clock,
      silentLogger(),
      controller.signal,
    );
    await flushMicrotasks();
    await clock.advance(29 * 60_000);
    expect(fired).toEqual([]);
    await clock.advance(60_000);
    expect(fired).toEqual(['2026-11-23T01:00:00.000Z']);
    running = true;
    await clock.advance(60 * 60_000);
    expect(skipped).toEqual(['2026-11-23T02:00:00.000Z']);
    expect(fired).toHaveLength(1);
    running = false;
    await clock.advance(60 * 60_000);
    expect(fired).toEqual(['2026-11-23T01:00:00.000Z', '2026-11-23T03:00:00.000Z']);
    controller.abort();
    await loop;
  });
});

describe('a schedule further away than a timer can wait', () => {
  it('a yearly cron on the system clock does not fire now (setTimeout fires at once past 2^31 − 1 ms)', async () => {
    const fired: number[] = [];
    const controller = new AbortController();
    const loop = runSchedule(
      { connector: 'main', cron: '0 2 1 1 *', timezone: 'UTC' },
      { isRunning: () => false, fire: () => fired.push(Date.now()) },
      systemClock,
      silentLogger(),
      controller.signal,
    );
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    await loop;
    expect(fired).toEqual([]);
  });

  it('a monthly cron on an injected clock fires once, on the day, after 40 days of waiting in steps', async () => {
    const clock = new ManualClock('2026-12-06T12:00:00Z');
    const fired: string[] = [];
    const controller = new AbortController();
    const loop = runSchedule(
      { connector: 'main', cron: '0 2 15 1 *', timezone: 'UTC' },
      { isRunning: () => false, fire: () => fired.push(new Date(clock.now()).toISOString()) },
      clock,
      silentLogger(),
      controller.signal,
    );
    for (let hour = 0; hour < 40 * 24; hour++) await clock.advance(3_600_000);
    controller.abort();
    await loop;
    expect(fired).toEqual(['2027-01-15T02:00:00.000Z']);
  });
});
