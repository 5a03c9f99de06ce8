/**
 * Cron schedules per connector (croner computes the next fire time in the connector's IANA zone); waits go through
 * the injected clock so tests run a day of schedule instantly. A tick while the connector's run is in flight is
 * skipped, never queued: the next run's window covers what the skipped one would have pulled. Except behind a run that
 * does not pull up to now (the start-up 'resume' of an interrupted push, which pulls nothing new; a backfill of a past
 * window, given an explicit end): skipping would leave the tick's window to the next tick, a day later for a nightly
 * schedule, so the tick fires as soon as that run ends.
 */
import { Cron } from 'croner';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';

export interface ScheduleEntry {
  readonly connector: string;
  readonly cron: string;
  readonly timezone?: string;
}

export interface SchedulerHooks {
  isRunning(connector: string): boolean;
  fire(connector: string): void;
  /**
   * The end of the connector's run in flight when that run does not pull up to now (a start-up 'resume', a run given an
   * explicit end), else undefined: a tick waits for such a run instead of being skipped, since it leaves the tick's
   * window unpulled.
   */
  endOfRunShortOfNow?: (connector: string) => Promise<void> | undefined;
  /** Observes skips (tests, metrics). */
  onSkip?: (connector: string, at: Date) => void;
}

const MAX_STEP_MS = 3_600_000;

/** Next fire time strictly after `afterMs`. */
export function nextFireTime(entry: ScheduleEntry, afterMs: number): Date | undefined {
  const cron = new Cron(entry.cron, { paused: true, ...(entry.timezone ? { timezone: entry.timezone } : {}) });
  return cron.nextRun(new Date(afterMs)) ?? undefined;
}

/**
 * The longest step back of the clock taken for a correction (NTP stepping a few seconds or minutes): the slot fired
 * last is not fired again. A longer one means the clock that fired it was wrong: the schedule follows the clock now.
 */
const MAX_BACK_STEP_MS = 3_600_000;

/** Runs until `signal` aborts. */
export async function runSchedule(entry: ScheduleEntry, hooks: SchedulerHooks, clock: Clock, logger: Logger, signal: AbortSignal): Promise<void> {
  let lastFired: number | undefined;
  while (!signal.aborted) {
    let next = nextFireTime(entry, clock.now());
    if (!next) return;
    try {
      // In steps of at most an hour, to the fire time read again after each: a monthly cron waits longer than a timer
      // can (setTimeout fires at once past 2^31 − 1 ms, about 24.8 days), and a suspended VM or a clock step moves it.
      for (let left = next.getTime() - clock.now(); left > 0; left = next.getTime() - clock.now()) {
        const step = Math.min(left, MAX_STEP_MS);
        await clock.sleep(step, signal);
        next = earlierAfterStepBack(entry, next, clock.now() - step, lastFired);
      }
    } catch {
      return; // aborted
    }
    lastFired = next.getTime();
    const finishing = hooks.endOfRunShortOfNow?.(entry.connector);
    if (finishing) {
      logger.info(
        { connector: entry.connector, at: next.toISOString() },
        'scheduled sync waits for the run in flight to end: it does not pull up to now (a resumed push, a backfill)',
      );
      if (!(await endOrAbort(finishing, signal))) return;
    }
    if (hooks.isRunning(entry.connector)) {
      logger.warn({ connector: entry.connector, at: next.toISOString() }, 'scheduled sync skipped: a run is still in flight');
      hooks.onSkip?.(entry.connector, next);
      continue;
    }
    hooks.fire(entry.connector);
  }
}

/**
 * `next` was computed before the clock stepped back (NTP correcting a clock that ran ahead, a VM restored): it may lie
 * days past the slots the clock now reads, and waiting for it would skip them all. The first slot after the clock
 * reading the sleep began at (`sleptFromMs`, as the clock reads now) comes first then; never the slot fired last,
 * after a small correction.
 */
function earlierAfterStepBack(entry: ScheduleEntry, next: Date, sleptFromMs: number, lastFired: number | undefined): Date {
  const corrected = lastFired !== undefined && sleptFromMs < lastFired && lastFired - sleptFromMs <= MAX_BACK_STEP_MS;
  const candidate = nextFireTime(entry, corrected ? lastFired : sleptFromMs);
  return candidate !== undefined && candidate.getTime() < next.getTime() ? candidate : next;
}

/** Waits for `end` (its failure too: the run logs its own); false when `signal` aborts first. */
function endOrAbort(end: Promise<void>, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    end
      .then(
        () => resolve(true),
        () => resolve(true),
      )
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}
