/**
 * The FHIR server's clock, as its answers' `Date` headers tell it (RFC 9110 §6.6.1: to the second). A window ends by
 * this host's clock; a host whose clock runs ahead of the EHR's by more than the overlap ends windows at instants the
 * EHR has not reached, and the next window starts after events it then records (sync/pull-stage.ts refuses such a run).
 */
import type { Clock } from '../clock.js';

export interface ServerClock {
  /** Notes one answer's Date header, read as it arrives. */
  observe(date: string | readonly string[] | undefined): void;
  /**
   * The server's time now by its last Date header, as late as that header allows (it drops the fraction, so up to
   * 999 ms are added), carried forward by this host's clock since; undefined before any answer carried one.
   */
  now(): number | undefined;
}

export function createServerClock(clock: Clock): ServerClock {
  let last: { serverMs: number; localMs: number } | undefined;
  return {
    observe(date) {
      const text = typeof date === 'string' ? date : date?.[0];
      // An HTTP-date ("Mon, 07 Dec 2026 11:02:03 GMT"); anything else (absent, garbage) is no reading.
      const serverMs = text === undefined || !/GMT$/.test(text.trim()) ? Number.NaN : Date.parse(text);
      if (!Number.isNaN(serverMs)) last = { serverMs, localMs: clock.now() };
    },
    now() {
      return last === undefined ? undefined : last.serverMs + 999 + (clock.now() - last.localMs);
    },
  };
}
