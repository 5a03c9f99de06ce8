/**
 * Status polling: Retry-After (seconds, HTTP-date, absurd and absolute-epoch values clamped), never faster than
 * pollMinSeconds and backing off without a hint, X-Progress surfaced, a 429 pausing polling, transient 5xx retried,
 * a failed export abandoned, the deadline, a forgotten export restarted, the token refreshed between polls.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../../src/errors.js';
import { cleanProgress } from '../../../src/fhir/bulk/job.js';
import { MAX_BACKOFF_MS, MAX_POLL_WAIT_MS, pollDelay, retryAfterMs } from '../../../src/fhir/bulk/poll-delay.js';
import { parseRetryAfter } from '../../../src/http.js';
import { createCachedTokenSource } from '../../../src/token-cache.js';
import { InstantClock } from '../../support/manual-clock.js';
import { START } from '../support.js';
import { type BulkFixture, eventTypes, MemoryCheckpoints, startBulkFixture } from './support.js';

let f: BulkFixture;
beforeAll(async () => {
  f = await startBulkFixture();
});
afterAll(async () => f?.close());
afterEach(() => {
  Object.assign(f.bulk, { processingPolls: 1, retryAfter: '1', failJobs: false });
  f.fx.server.faults.clear();
});

describe('pollDelay', () => {
  const now = Date.parse('2026-11-01T00:00:00Z');
  it('honours delta-seconds and HTTP-dates, never below the minimum', () => {
    expect(pollDelay('7', now, 2000, 0)).toEqual({ ms: 7000, basis: 'retry-after' });
    expect(pollDelay('0', now, 2000, 0)).toEqual({ ms: 2000, basis: 'clamped' });
    expect(pollDelay('Sun, 01 Nov 2026 00:00:12 GMT', now, 2000, 0)).toEqual({ ms: 12_000, basis: 'retry-after' });
    expect(pollDelay('Sat, 31 Oct 2026 23:00:00 GMT', now, 2000, 0)).toEqual({ ms: 2000, basis: 'clamped' });
    // The two obsolete HTTP-date forms a recipient must accept (RFC 9110 §5.6.7), both GMT.
    expect(pollDelay('Sun Nov  1 00:00:30 2026', now, 2000, 0)).toEqual({ ms: 30_000, basis: 'retry-after' });
    expect(pollDelay('Sunday, 01-Nov-26 00:00:20 GMT', now, 2000, 0)).toEqual({ ms: 20_000, basis: 'retry-after' });
  });
  it('reads Retry-After for requests the same way: a decimal or a date already past gives no hint (own backoff), not 0', () => {
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('Sun Nov  1 00:00:30 2026', now)).toBe(30_000);
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter('Sat, 31 Oct 2026 23:00:00 GMT', now)).toBeUndefined();
  });
  it('clamps absurd values and reads an absolute epoch time as the instant it names', () => {
    expect(pollDelay('86400', now, 2000, 0)).toEqual({ ms: MAX_POLL_WAIT_MS, basis: 'clamped' });
    expect(pollDelay(String(now / 1000 + 30), now, 2000, 0)).toEqual({ ms: 30_000, basis: 'epoch' });
    expect(pollDelay(String(now + 45_000), now, 2000, 0)).toEqual({ ms: 45_000, basis: 'epoch' });
    expect(pollDelay(String(now / 1000 + 86_400 * 365), now, 2000, 0)).toEqual({ ms: MAX_POLL_WAIT_MS, basis: 'epoch' });
    // A configured minimum above the cap is still the minimum (source.pollMinSeconds goes up to 600).
    expect(pollDelay('5', now, 600_000, 0)).toEqual({ ms: 600_000, basis: 'clamped' });
    expect(pollDelay('86400', now, 600_000, 0)).toEqual({ ms: 600_000, basis: 'clamped' });
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs('12 apples', now)).toBeUndefined();
  });
  it('backs off from the minimum without a hint, up to a ceiling', () => {
    expect([0, 1, 2, 3, 10].map((step) => pollDelay(undefined, now, 2000, step).ms)).toEqual([2000, 4000, 8000, 16_000, MAX_BACKOFF_MS]);
    expect(pollDelay('garbage', now, 2000, 1)).toEqual({ ms: 4000, basis: 'backoff' });
  });
});

describe('polling the sandbox', () => {
  it('waits what Retry-After says (seconds), and surfaces X-Progress as events and log lines without PHI or tokens', async () => {
    Object.assign(f.bulk, { processingPolls: 3, retryAfter: '7' });
    const clock = new InstantClock(START);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => done(void lines.push(chunk.toString())) }));
    const harness = f.source({ clock, logger });
    expect(await harness.read()).toHaveLength(f.data.events.length);
    expect(clock.slept.filter((ms) => ms === 7000)).toHaveLength(3);
    const progress = harness.events.filter((e) => e.type === 'progress').map((e) => (e as { progress: string }).progress);
    expect(progress).toEqual(['25%', '50%', '75%']);
    expect(lines.filter((l) => l.includes('FHIR $export in progress'))).toHaveLength(3);
    const token = await f.fx.tokens.getToken();
    expect(lines.join('\n')).not.toContain(token);
  });

  it('shows only the figures of X-Progress (a percentage, or N of M), never its words: a server may name the chart it exports', () => {
    expect(cleanProgress('now exporting chart of Jane Doe, born 1961-04-02')).toBeUndefined();
    expect(cleanProgress('Jane Doe: 42.5 % done')).toBe('42.5%');
    expect(cleanProgress('Processing 1200 of 5000 resources (Jane Doe)')).toBe('1200 of 5000');
    expect(cleanProgress('3/7 types')).toBe('3 of 7');
    expect(cleanProgress('in progress')).toBeUndefined();
    expect(cleanProgress(undefined)).toBeUndefined();
  });

  it('waits until an HTTP-date, and clamps an absurd Retry-After or reads an epoch one', async () => {
    for (const [retryAfter, expected] of [
      [new Date(START + 12_000).toUTCString(), 12_000],
      ['999999', MAX_POLL_WAIT_MS],
      [String(START / 1000 + 20), 20_000],
      ['0', 1000],
    ] as const) {
      f.bulk.retryAfter = retryAfter;
      const clock = new InstantClock(START);
      await f.source({ clock }).read();
      expect(clock.slept[0], retryAfter).toBe(expected);
    }
  });

  it('backs off from pollMinSeconds when the server sends no Retry-After', async () => {
    Object.assign(f.bulk, { processingPolls: 4, retryAfter: undefined });
    const clock = new InstantClock(START);
    await f.source({ clock, settings: { pollMinSeconds: 3 } }).read();
    expect(clock.slept).toEqual([3000, 6000, 12_000, 24_000]);
  });

  it('pauses polling for the Retry-After of a 429, then goes on', async () => {
    f.fx.server.faults.add({ action: { kind: 'status', status: 429, retryAfter: '9' }, match: /\/bulk\/status\// });
    const clock = new InstantClock(START);
    expect(await f.source({ clock }).read()).toHaveLength(f.data.events.length);
    expect(clock.slept).toContain(9000);
    expect(f.fx.server.faults.pending).toBe(0);
  });

  it('retries a 5xx whose OperationOutcome is transient, and keeps the checkpoint when they never end', async () => {
    f.fx.server.faults.add({ action: { kind: 'status', status: 503 }, match: /\/bulk\/status\//, times: 2 });
    expect(await f.source({ clock: new InstantClock(START) }).read()).toHaveLength(f.data.events.length);
    f.fx.server.faults.add({ action: { kind: 'status', status: 500 }, match: /\/bulk\/status\//, times: 10 });
    const harness = f.source({ clock: new InstantClock(START) });
    const error = await harness.read().catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
    // The export itself may be fine: the next run polls the same status URL instead of exporting again.
    expect(harness.store.parsed()?.statusUrl).toMatch(/\/bulk\/status\//);
    f.fx.server.faults.clear();
    const kickoffs = f.fx.server.bulk.log.kickoffs.length;
    expect(await f.source({ clock: new InstantClock(START), store: harness.store, dir: harness.dir }).read()).toHaveLength(f.data.events.length);
    expect(f.fx.server.bulk.log.kickoffs.length).toBe(kickoffs);
  });

  it("polls on through a gateway's 502/503/504 page, or a web server's own 500 page (no OperationOutcome): the server did not fail the export, so no DELETE", async () => {
    for (const status of [502, 500, 504]) f.fx.server.faults.add({ action: { kind: 'gateway', status, retryAfter: '3' }, match: /\/bulk\/status\// });
    const deletes = f.fx.server.bulk.log.deletes.length;
    const kickoffs = f.fx.server.bulk.log.kickoffs.length;
    const clock = new InstantClock(START);
    expect(await f.source({ clock }).read()).toHaveLength(f.data.events.length);
    expect(f.fx.server.faults.pending).toBe(0);
    expect(clock.slept.filter((ms) => ms === 3000)).toHaveLength(3);
    expect(f.fx.server.bulk.log.kickoffs.length).toBe(kickoffs + 1);
    // The one DELETE is the finished export's.
    expect(f.fx.server.bulk.log.deletes.length).toBe(deletes + 1);
  });

  it('keeps the export when its status URL answers 403 (the grant, not the export): the run after the fix polls it again', async () => {
    f.fx.server.faults.add({ action: { kind: 'status', status: 403 }, match: /\/bulk\/status\// });
    const harness = f.source({ clock: new InstantClock(START) });
    const error = await harness.read().catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_HTTP');
    expect(harness.store.parsed()?.statusUrl).toMatch(/\/bulk\/status\//);
    const kickoffs = f.fx.server.bulk.log.kickoffs.length;
    expect(await f.source({ clock: new InstantClock(START), store: harness.store, dir: harness.dir }).read()).toHaveLength(f.data.events.length);
    expect(f.fx.server.bulk.log.kickoffs.length).toBe(kickoffs);
  });

  it('abandons an export the server reports failed (a 5xx that is not transient): DELETE, no checkpoint', async () => {
    f.bulk.failJobs = true;
    const deletes = f.fx.server.bulk.log.deletes.length;
    const harness = f.source({ clock: new InstantClock(START) });
    const error = await harness.read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
    expect((error as BridgeError).message).toMatch(
      /reports the export failed: .* answered HTTP 500 with an OperationOutcome \(error processing\)\. Its text is not quoted, as it may name a patient; the FHIR server's log of the export http:\/\/127\.0\.0\.1:\d+\/\S+\/bulk\/status\/[0-9a-f-]+ has it\. The next run starts a new export\.$/,
    );
    expect((error as BridgeError).message).not.toContain('the sandbox was asked to fail it');
    expect(harness.store.value).toBeUndefined();
    expect(f.fx.server.bulk.log.deletes.length).toBe(deletes + 1);
  });

  it('gives up after pollMaxMinutes, abandoning the export', async () => {
    Object.assign(f.bulk, { processingPolls: 1000, retryAfter: '30' });
    const harness = f.source({ clock: new InstantClock(START), settings: { pollMaxMinutes: 2 } });
    const error = await harness.read().catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
    expect((error as BridgeError).message).toMatch(/was not ready by 2026-11-01T00:02:00.000Z \(source.pollMaxMinutes after its kick-off\)/);
    expect(harness.store.value).toBeUndefined();
  });

  it('starts a new export when the status URL answers 404 (the server forgot it)', async () => {
    f.fx.server.faults.add({ action: { kind: 'status', status: 404 }, match: /\/bulk\/status\// });
    const kickoffs = f.fx.server.bulk.log.kickoffs.length;
    const harness = f.source({ clock: new InstantClock(START) });
    expect(await harness.read()).toHaveLength(f.data.events.length);
    expect(f.fx.server.bulk.log.kickoffs.length).toBe(kickoffs + 2);
    expect(eventTypes(harness.events)).toContain('restart');
  });

  it('refreshes a short-lived token between polls: every poll carries a valid token, none is refused', async () => {
    Object.assign(f.bulk, { processingPolls: 6, retryAfter: '1' });
    const clock = new InstantClock(START);
    const expiry = new Map<string, number>();
    let issued = 0;
    const tokens = createCachedTokenSource(
      async () => {
        issued += 1;
        const token = `short-${issued}`;
        f.fx.tokens.valid.add(token);
        expiry.set(token, clock.now() + 2000);
        return { accessToken: token, expiresInSec: 2 };
      },
      { clock },
    );
    // The server forgets tokens as the (instant) clock passes their expiry.
    const sleep = clock.sleep.bind(clock);
    clock.sleep = async (ms, signal) => {
      await sleep(ms, signal);
      for (const [token, at] of expiry) if (clock.now() >= at) f.fx.tokens.valid.delete(token);
    };
    const polls = f.fx.server.bulk.log.polls.length;
    expect(await f.source({ clock, tokens, store: new MemoryCheckpoints() }).read()).toHaveLength(f.data.events.length);
    const seen = f.fx.server.bulk.log.polls.slice(polls);
    expect(seen).toHaveLength(7);
    expect(seen.every((poll) => poll.status !== 401)).toBe(true);
    expect(new Set(seen.map((poll) => poll.token)).size).toBeGreaterThanOrEqual(4);
    expect(issued).toBeGreaterThanOrEqual(4);
  });
});
