/**
 * How long to wait before the next status poll. The server's Retry-After is honoured (delta-seconds or an HTTP-date,
 * RFC 9110 §10.2.3), but never above MAX_POLL_WAIT_MS (a wild value must not park an export for a day) and never below
 * source.pollMinSeconds, even when that is longer. Some servers send an absolute epoch time where delta-seconds belong ("Retry-After:
 * 1796000000"); read as seconds that would be 57 years, so a number that large is taken as the instant it names.
 * Without a hint the wait backs off from the minimum, doubling up to MAX_BACKOFF_MS.
 */

import { httpDateMs } from '../../http.js';

/** The longest single wait between two polls, whatever the server says. */
export const MAX_POLL_WAIT_MS = 5 * 60_000;
/** Where the backoff without a hint stops growing. */
export const MAX_BACKOFF_MS = 60_000;
/** Delta-seconds from here on are an absolute Unix time (2001-09-09 onwards), in seconds; from EPOCH_MS_FROM, in ms. */
const EPOCH_SECONDS_FROM = 1_000_000_000;
const EPOCH_MS_FROM = 1_000_000_000_000;

export interface PollDelay {
  readonly ms: number;
  /** How the wait was chosen, for the log: 'retry-after', 'clamped', 'epoch', 'backoff'. */
  readonly basis: 'retry-after' | 'clamped' | 'epoch' | 'backoff';
}

/**
 * @param retryAfter the header's value, if any
 * @param backoffStep polls in a row without a usable hint (0 for the first)
 */
export function pollDelay(retryAfter: string | undefined, nowMs: number, minMs: number, backoffStep: number): PollDelay {
  const hinted = retryAfterMs(retryAfter, nowMs);
  if (hinted === undefined) {
    const ms = Math.min(Math.max(minMs, MAX_BACKOFF_MS), minMs * 2 ** Math.min(backoffStep, 20));
    return { ms, basis: 'backoff' };
  }
  // The configured minimum wins over the cap: an operator who asked for 10 minutes between polls gets them.
  const ms = Math.max(minMs, Math.min(MAX_POLL_WAIT_MS, hinted.ms));
  return { ms, basis: hinted.epoch ? 'epoch' : ms !== hinted.ms ? 'clamped' : 'retry-after' };
}

/** Retry-After as a wait in ms (never negative), or undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, nowMs: number): { ms: number; epoch: boolean } | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= EPOCH_MS_FROM) return { ms: Math.max(0, n - nowMs), epoch: true };
    if (n >= EPOCH_SECONDS_FROM) return { ms: Math.max(0, n * 1000 - nowMs), epoch: true };
    return { ms: n * 1000, epoch: false };
  }
  const at = httpDateMs(text);
  return at === undefined ? undefined : { ms: Math.max(0, at - nowMs), epoch: false };
}
