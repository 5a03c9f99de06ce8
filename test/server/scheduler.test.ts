import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { createSyncRunner } from '../../src/server/runner.js';
import { nextFireTime, runSchedule } from '../../src/server/scheduler.js';
import type { SyncSummary } from '../../src/sync/pipeline.js';
import type { RunTrigger } from '../../src/sync/state/index.js';
import { flushMicrotasks, ManualClock } from '../support/manual-clock.js';

describe('nextFireTime', () => {
  it('computes the default daily 02:00 in the connector time zone', () => {
    const after = Date.parse('2026-11-23T12:00:00Z');
    expect(nextFireTime({ connector: 'c', cron: '0 2 * * *', timezone: 'America/Chicago' }, after)?.toISOString()).toBe('2026-11-24T08:00:00.000Z');
    expect(nextFireTime({ connector: 'c', cron: '0 2 * * *', timezone: 'Europe/Oslo' }, after)?.toISOString()).toBe('2026-11-24T01:00:00.000Z');
  });

  it('fires a time in the skipped hour once, at the hour after, and a time in the repeated hour once', () => {
    const fires = (cron: string, from: string, count: number): string[] => {
      const out: string[] = [];
      let after = Date.parse(from);
      for (let i = 0; i < count; i++) {
        const next = nextFireTime({ connector: 'c', cron, timezone: 'America/New_York' }, after);
        if (!next) break;
        out.push(next.toISOString());
        after = next.getTime();
      }
      return out;
    };
    // 02:30 does not exist on 2026-03-08 (02:00 EST becomes 03:00 EDT): it fires at 03:00 EDT.
    expect(fires('30 2 * * *', '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
    // 01:30 comes twice on 2026-11-01 (EDT, then EST): it fires at the first only.
    expect(fires('30 1 * * *', '2026-10-31T12:00:00Z', 2)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
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

describe('a tick during a run that does not pull up to now', () => {
  /** The service's wiring (service.ts): the real runner, a sync that ends when the test says so. */
  function scheduled(clock: ManualClock) {
    const started: Array<{ trigger: RunTrigger; at: string }> = [];
    const ends: Array<() => void> = [];
    const runner = createSyncRunner(
      (_connector, request) =>
        new Promise<SyncSummary>((resolve) => {
          started.push({ trigger: request.trigger ?? 'cli', at: new Date(clock.now()).toISOString() });
          request.onRunId?.(`run-${started.length}`);
          ends.push(() => resolve({ runId: `run-${started.length}` } as SyncSummary));
        }),
      silentLogger(),
    );
    const skipped: string[] = [];
    const controller = new AbortController();
    const loop = runSchedule(
      { connector: 'main', cron: '0 2 * * *', timezone: 'UTC' },
      {
        isRunning: (name) => runner.isRunning(name),
        fire: (name) => void runner.start(name, { trigger: 'schedule' }).catch(() => undefined),
        endOfRunShortOfNow: (name) => runner.endOfRunShortOfNow(name),
        onSkip: (_name, at) => skipped.push(at.toISOString()),
      },
      clock,
      silentLogger(),
      controller.signal,
    );
    return { runner, started, ends, skipped, controller, loop };
  }

  it("fires once the start-up 'resume' ends, not at the next day's tick; a run that pulls is still skipped", async () => {
    const clock = new ManualClock('2026-11-23T01:59:00Z');
    const { runner, started, ends, skipped, controller, loop } = scheduled(clock);
    await flushMicrotasks();
    // The service started up and is finishing the push its last shutdown interrupted when the nightly tick comes.
    await runner.start('main', { trigger: 'resume' });
    await clock.advance(2 * 60_000);
    expect(started).toEqual([{ trigger: 'resume', at: '2026-11-23T01:59:00.000Z' }]);
    await clock.advance(30 * 60_000);
    ends[0]?.();
    await flushMicrotasks();
    expect(started[1]).toEqual({ trigger: 'schedule', at: '2026-11-23T02:31:00.000Z' });
    expect(skipped).toEqual([]);
    // The next night, a run that pulls (an HTTP "Sync now") is in flight at the tick: skipped, its window covers it.
    ends[1]?.();
    await flushMicrotasks();
    await clock.advance(23 * 3_600_000);
    await runner.start('main', { trigger: 'http' });
    await clock.advance(3_600_000);
    expect(skipped).toEqual(['2026-11-24T02:00:00.000Z']);
    expect(started.map((run) => run.trigger)).toEqual(['resume', 'schedule', 'http']);
    controller.abort();
    await loop;
  });

  it('fires once an HTTP backfill of a past window (since and until) ends; an HTTP run to now (since alone) is skipped', async () => {
    const clock = new ManualClock('2026-11-23T01:59:00Z');
    const { runner, started, ends, skipped, controller, loop } = scheduled(clock);
    await flushMicrotasks();
    // A backfill of January is in flight at the nightly tick: it pulls nothing past its until, and the watermark never
    // moves backwards, so skipping the tick would leave last night's window to tomorrow's.
    await runner.start('main', { trigger: 'http', since: '2026-01-01T00:00:00Z', until: '2026-02-01T00:00:00Z' });
    await clock.advance(2 * 60_000);
    expect(started).toEqual([{ trigger: 'http', at: '2026-11-23T01:59:00.000Z' }]);
    await clock.advance(45 * 60_000);
    ends[0]?.();
    await flushMicrotasks();
    expect(started[1]).toEqual({ trigger: 'schedule', at: '2026-11-23T02:46:00.000Z' });
    expect(skipped).toEqual([]);
    // The next night, an HTTP run with a since and no until is in flight at the tick: it runs to now, so it covers the
    // tick's window, which is skipped as behind any run that pulls.
    ends[1]?.();
    await flushMicrotasks();
    await clock.advance(23 * 3_600_000);
    await runner.start('main', { trigger: 'http', since: '2026-11-20T00:00:00Z' });
    await clock.advance(3_600_000);
    expect(skipped).toEqual(['2026-11-24T02:00:00.000Z']);
    expect(started.map((run) => run.trigger)).toEqual(['http', 'schedule', 'http']);
    ends[2]?.();
    await flushMicrotasks();
    expect(started).toHaveLength(3);
    controller.abort();
    await loop;
  });

  it('a stop while the tick waits for the resume ends the schedule without firing', async () => {
    const clock = new ManualClock('2026-11-23T01:59:00Z');
    const { runner, started, ends, controller, loop } = scheduled(clock);
    await flushMicrotasks();
    await runner.start('main', { trigger: 'resume' });
    await clock.advance(2 * 60_000);
    controller.abort();
    await loop;
    ends[0]?.();
    await flushMicrotasks();
    expect(started.map((run) => run.trigger)).toEqual(['resume']);
  });
});

/**
 * The host's clock as the scheduler sees it: sleeps run on elapsed time, as Node's timers do (a monotonic clock), while
 * the wall clock `now` reads can be stepped (NTP, a VM restored from a snapshot).
 */
class SteppedClock {
  private elapsed = 0;
  private offset: number;
  private readonly sleepers: Array<{ until: number; resolve: () => void }> = [];
  constructor(start: string) {
    this.offset = Date.parse(start);
  }
  now(): number {
    return this.offset + this.elapsed;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const sleeper = { until: this.elapsed + Math.max(0, ms), resolve };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', () => {
        this.sleepers.splice(this.sleepers.indexOf(sleeper), 1);
        reject(new Error('aborted'));
      });
    });
  }
  step(ms: number): void {
    this.offset += ms;
  }
  async advance(ms: number): Promise<void> {
    const target = this.elapsed + ms;
    for (;;) {
      this.sleepers.sort((a, b) => a.until - b.until);
      const next = this.sleepers[0];
      if (!next || next.until > target) break;
      this.sleepers.shift();
      this.elapsed = Math.max(this.elapsed, next.until);
      next.resolve();
      await flushMicrotasks();
    }
    this.elapsed = target;
    await flushMicrotasks();
  }
}

describe('a wall clock stepped back', () => {
  function nightly(clock: SteppedClock) {
    const fired: string[] = [];
    const controller = new AbortController();
    const loop = runSchedule(
      { connector: 'main', cron: '0 2 * * *', timezone: 'UTC' },
      { isRunning: () => false, fire: () => fired.push(new Date(clock.now()).toISOString()) },
      clock,
      silentLogger(),
      controller.signal,
    );
    const stop = (): Promise<void> => {
      controller.abort();
      return loop;
    };
    return { fired, stop };
  }

  it('a clock a month ahead, corrected back, fires tonight, not a month from now', async () => {
    // The host booted with its clock a month ahead; NTP corrects it a minute after the service started.
    const clock = new SteppedClock('2026-12-23T01:00:00Z');
    const { fired, stop } = nightly(clock);
    await flushMicrotasks();
    await clock.advance(60_000);
    clock.step(-30 * 86_400_000);
    for (let hour = 0; hour < 48; hour++) await clock.advance(3_600_000);
    await stop();
    expect(fired).toEqual(['2026-11-23T02:00:00.000Z', '2026-11-24T02:00:00.000Z']);
  });

  it('a correction of a few minutes just after a tick does not fire it twice', async () => {
    const clock = new SteppedClock('2026-11-23T01:59:00Z');
    const { fired, stop } = nightly(clock);
    await flushMicrotasks();
    await clock.advance(60_000);
    expect(fired).toEqual(['2026-11-23T02:00:00.000Z']);
    clock.step(-5 * 60_000);
    for (let hour = 0; hour < 25; hour++) await clock.advance(3_600_000);
    await stop();
    expect(fired).toEqual(['2026-11-23T02:00:00.000Z', '2026-11-24T02:00:00.000Z']);
  });
});
