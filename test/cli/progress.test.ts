/**
 * Progress on long work (issue #17.4): one bar with percent, rows/s and ETA on a terminal; elsewhere a line at most
 * every period, not one per block or page.
 */
import { describe, expect, it } from 'vitest';
import { barOf, clockTime, ProgressModel } from '../../src/cli/reporters/meter.js';
import { attachProgressBar } from '../../src/cli/reporters/progress.js';
import { pushReporter } from '../../src/cli/reporters/push-progress.js';
import { attachTextReporter } from '../../src/cli/reporters/text.js';
import { SyncEvents } from '../../src/sync/events.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';
import { recordingContext } from './support.js';

const acked = (index: number, rows: number) => ({ runId: 'r', index, rows, status: 200, ms: 1, possiblyDuplicated: false, possiblyDuplicatedRows: 0 });

describe('progress model', () => {
  it('gives rows/s, percent and ETA of the push, and no rate in its first second', async () => {
    const clock = new ManualClock(0);
    const model = new ProgressModel(clock);
    model.startPush(300_000, 100_000);
    expect(model.describe()).toBe('pushing: 0 of 300,000 rows (0%) · 0 of ~3 block(s)');
    await clock.advance(20_000);
    model.blockAcked(100_000);
    expect(model.describe()).toBe('pushing: 100,000 of 300,000 rows (33%) · 1 of ~3 block(s) · 5,000 rows/s · ETA 0:40');
    // Rows Purview acknowledged before move the percent, not the rate.
    model.alreadyDelivered(100_000);
    expect(model.describe()).toBe('pushing: 200,000 of 300,000 rows (66%) · 1 of ~2 block(s) · 5,000 rows/s · ETA 0:20');
    expect([clockTime(65), clockTime(3723), barOf(0.5, 10)]).toEqual(['1:05', '1:02:03', '█████░░░░░']);
  });

  it("shows the source's own progress (an export's X-Progress) while pulling, and forgets it for the push", () => {
    const clock = new ManualClock(0);
    const events = new SyncEvents();
    const printed: string[] = [];
    const detach = attachTextReporter(events, (line) => printed.push(line), clock, 10_000);
    const model = new ProgressModel(clock);
    model.startPull();
    model.sourceNote = 'export in progress: 40% done';
    expect(model.describe()).toBe('pulling: 0 events → 0 rows · export in progress: 40% done');
    model.startPush(10);
    expect(model.describe()).not.toContain('export');
    events.emit('source_progress', { runId: 'r', connector: 'c', message: 'export in progress: 40% done' });
    detach();
    expect(printed).toEqual(['  export in progress: 40% done']);
  });
});

describe('sync reporters', () => {
  function drive(events: SyncEvents, clock: ManualClock): Promise<void> {
    return (async () => {
      events.emit('run_start', { runId: 'r', connector: 'c', since: 'S', until: 'U', dryRun: false, backfill: false });
      for (let i = 0; i < 30; i++) {
        await clock.advance(1000);
        events.emit('page', { runId: 'r', events: 100, duplicates: 0, skipped: 0, rows: 90, rejects: 0 });
      }
      events.emit('spool_complete', { runId: 'r', rows: 2700 });
      for (let i = 0; i < 27; i++) {
        await clock.advance(2000);
        events.emit('block_acked', acked(i, 100));
      }
      events.emit('run_complete', { runId: 'r', connector: 'c', counts: { ...ZERO_COUNTS } });
    })();
  }

  it('off a terminal: the start, a line every period, the end of the pull; not a line per page or block', async () => {
    const clock = new ManualClock(0);
    const events = new SyncEvents();
    const printed: string[] = [];
    const detach = attachTextReporter(events, (line) => printed.push(line), clock, 10_000);
    await drive(events, clock);
    detach();
    expect(printed).toEqual([
      'run r for c: S → U',
      '  pulling: 1,000 events → 900 rows · 90 rows/s',
      '  pulling: 2,000 events → 1,800 rows · 90 rows/s',
      '  pulling: 3,000 events → 2,700 rows · 90 rows/s',
      '  pulled 3,000 events; spool complete: 2,700 rows',
      '  pushing: 500 of 2,700 rows (18%) · 5 block(s) · 50 rows/s · ETA 0:44',
      '  pushing: 1,000 of 2,700 rows (37%) · 10 block(s) · 50 rows/s · ETA 0:34',
      '  pushing: 1,500 of 2,700 rows (55%) · 15 block(s) · 50 rows/s · ETA 0:24',
      '  pushing: 2,000 of 2,700 rows (74%) · 20 block(s) · 50 rows/s · ETA 0:14',
      '  pushing: 2,500 of 2,700 rows (92%) · 25 block(s) · 50 rows/s · ETA 0:04',
    ]);
  });

  it('on a terminal: one bar, redrawn in place, ending at 100%', async () => {
    const clock = new ManualClock(0);
    const events = new SyncEvents();
    const ctx = recordingContext({ tty: true });
    const detach = attachProgressBar(events, ctx.stdout, clock);
    await drive(events, clock);
    detach();
    const drawn = ctx.written();
    expect(drawn).toContain('████████████████████ pushing: 2,700 of 2,700 rows (100%) · 27 block(s) · 50 rows/s · ETA 0:00');
    expect(drawn).not.toContain('\n  pushing'); // redrawn on one line, not printed as lines
  });
});

describe('bridge push progress', () => {
  it('prints retries at once and progress at most every period; nothing with --json', async () => {
    const clock = new ManualClock(0);
    const printed: string[] = [];
    const reporter = pushReporter({ mode: 'lines', rows: 300, blockRows: 100, print: (l) => printed.push(l), clock, everyMs: 10_000 });
    await clock.advance(4000);
    reporter.onEvent({ type: 'block_acked', index: 0, rows: 100, status: 200, ms: 4000, possiblyDuplicated: false, possiblyDuplicatedRows: 0 });
    reporter.onEvent({ type: 'block_retry', index: 1, attempt: 1, delayMs: 2000, reason: 'HTTP 503' });
    await clock.advance(8000);
    reporter.onEvent({ type: 'block_acked', index: 1, rows: 100, status: 200, ms: 8000, possiblyDuplicated: false, possiblyDuplicatedRows: 0 });
    reporter.finish();
    expect(printed).toEqual([
      'block 1 attempt 1 failed (HTTP 503); retrying in 2 s',
      '  pushing: 200 of 300 rows (66%) · 2 of ~3 block(s) · 17 rows/s · ETA 0:06',
    ]);
    const quiet: string[] = [];
    const none = pushReporter({ mode: 'quiet', rows: 3, blockRows: 1, print: (l) => quiet.push(l), clock });
    none.onEvent({ type: 'block_retry', index: 0, attempt: 1, delayMs: 1, reason: 'x' });
    expect(quiet).toEqual([]);
  });
});
