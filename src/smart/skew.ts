/**
 * Clock-skew recovery. Epic allows no leeway: iat/nbf must not be in the future and exp must be within 5 minutes,
 * so a client clock more than ~30 s fast (or minutes slow) gets a bare `invalid_client`. The server's `Date`
 * response header (RFC 9110 §6.6.1, one-second resolution) tells us its time; when the assertion we sent would be
 * invalid at that time, the rejection is explained by skew and one retry with a corrected clock is worthwhile.
 */
import type { AssertionClaims } from './assertion.js';
import { MAX_ASSERTION_SPAN_SEC } from './assertion.js';

/** The Date header truncates to the second: the server's time lies in [date, date + 1 s), so take the middle. */
const DATE_HEADER_MIDPOINT_MS = 500;
/** Allowance for truncation and transit when deciding whether skew could explain a rejection. */
const SLACK_SEC = 2;

/** Server time minus client time, in ms, from a response `Date` and the client's clock when it arrived. */
export function estimateOffsetMs(serverDateMs: number, clientNowMs: number): number {
  return serverDateMs + DATE_HEADER_MIDPOINT_MS - clientNowMs;
}

/**
 * True when the claims we sent break a time rule at some server time near `serverDateMs`, i.e. when clock skew
 * could be why the server rejected them. With synchronised clocks it is false, whatever smart.clockSkewSec.
 *
 * iat/nbf count only once past the Date's own second, without slack: the server checked them before it sent the Date,
 * so anything less is a skew under a second, which a one-second Date cannot measure. With smart.clockSkewSec 0 or 1,
 * synchronised clocks put iat within a slack of the server's time, which would blame every invalid_client (an unknown
 * kid, a wrong client id) on the clock and post a second assertion. exp keeps the slack: it is minutes from now.
 */
export function skewCouldExplain(claims: Pick<AssertionClaims, 'iat' | 'nbf' | 'exp'>, serverDateMs: number): boolean {
  const serverSec = Math.floor(serverDateMs / 1000);
  const earliest = serverSec - SLACK_SEC;
  const latest = serverSec + SLACK_SEC;
  return claims.iat > serverSec || claims.nbf > serverSec || claims.exp <= latest || claims.exp > earliest + MAX_ASSERTION_SPAN_SEC;
}
