/**
 * The FHIR server's clock, as its answers' `Date` headers tell it (RFC 9110 §6.6.1: to the second). A window ends by
 * this host's clock; a host whose clock runs ahead of the EHR's by more than the overlap ends windows at instants the
 * EHR has not reached, and the next window starts after events it then records (sync/pull-stage.ts refuses such a run).
 * An answer a cache kept (it carries `Age`, RFC 9111 §5.1: a gateway in front of the EHR may keep /metadata) tells
 * when it was made, not the time now: it is no reading.
 */
import type { Clock } from '../clock.js';
import { httpDateMs } from '../http.js';

type HeaderValue = string | readonly string[] | undefined;

export interface ServerClock {
  /** Notes one answer's Date header (and its Age header, if any), read as the answer arrives. */
  observe(date: HeaderValue, age?: HeaderValue): void;
  /**
   * The server's time now by its last fresh Date header, as late as that header allows (it drops the fraction, so up
   * to 999 ms are added), carried forward by this host's clock since; undefined before any answer carried one.
   */
  now(): number | undefined;
}

export function createServerClock(clock: Clock): ServerClock {
  let last: { serverMs: number; localMs: number } | undefined;
  return {
    observe(date, age) {
      if (first(age) !== undefined) return;
      const text = first(date);
      const serverMs = text === undefined ? undefined : httpDateMs(text.trim());
      if (serverMs !== undefined) last = { serverMs, localMs: clock.now() };
    },
    now() {
      return last === undefined ? undefined : last.serverMs + 999 + (clock.now() - last.localMs);
    },
  };
}

function first(value: HeaderValue): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}
