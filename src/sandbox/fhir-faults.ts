/**
 * Programmable, deterministic fault injection for the sandbox FHIR server. A test queues rules; each request takes
 * the first queued rule (FIFO) whose `match` accepts its target (`/path?query`) and that has uses left. No
 * randomness and no timing except the `delay` fault's own wait.
 */
import type { ServerResponse } from 'node:http';

/** What a matched request gets instead of, or on top of, its normal answer. */
export type FaultAction =
  /** Answer `status` at once with an OperationOutcome, e.g. 429 with Retry-After (delta-seconds or an HTTP-date) or a 503. */
  | { readonly kind: 'status'; readonly status: number; readonly retryAfter?: string }
  /** Answer `status` as a gateway in front of the server does (a load balancer's 502/503/504): an HTML page, no OperationOutcome. */
  | { readonly kind: 'gateway'; readonly status: number; readonly retryAfter?: string }
  /** Answer normally, but only after `ms` of real time (set it above the client's timeout to test timeouts). */
  | { readonly kind: 'delay'; readonly ms: number }
  /** Epic's "Session ID for cached search results has expired": HTTP 400, OperationOutcome code 4113. */
  | { readonly kind: 'search-expired' }
  /**
   * Epic's Break-the-Glass refusal of a restricted chart to a background user: HTTP 403, OperationOutcome code 4130
   * (match it to one patient's read and the `_id` or identifier searches that name it).
   */
  | { readonly kind: 'break-the-glass' }
  /** Answer normally, but rewrite the searchset's `next` link to this origin (e.g. `http://127.0.0.1:9`). */
  | { readonly kind: 'foreign-next'; readonly origin: string }
  /** Answer normally, but with a `next` link that is the page's own URL (a paging loop; issue #14.6). */
  | { readonly kind: 'self-next' }
  /** Answer normally, but with a `next` link to the same offset under a new `_sid`: a loop whose URL changes. */
  | { readonly kind: 'stuck-next' }
  /** Answer normally, but without the `next` link: a page that ends the walk although more results follow. */
  | { readonly kind: 'drop-next' }
  /** Answer normally, but state this `total` whatever matched: a server whose total is an estimate or counts the whole table. */
  | { readonly kind: 'fixed-total'; readonly total: number }
  /** Answer as a lenient server that ignores one search parameter: the search (and its next links) runs without it. */
  | { readonly kind: 'ignore-param'; readonly name: string }
  /**
   * Answer normally, with an OperationOutcome entry (search.mode 'outcome') added to the searchset, as Epic does: e.g.
   * 4101 "no results" (a warning) or 4127 "additional data may exist" (the results were cut short).
   */
  | { readonly kind: 'outcome-entry'; readonly code: string; readonly severity: 'information' | 'warning' | 'error' }
  /**
   * Answer as a server that honours only the first `max` ids of an `_id=a,b,c` list and leaves the rest out without a
   * word (a cap on list length, or ids it could not read): the searchset holds only those resources.
   */
  | { readonly kind: 'partial-id-list'; readonly max: number }
  /** Answer 200 with a valid but empty searchset padded to `bytes`, with or without Content-Length (chunked). */
  | { readonly kind: 'huge-body'; readonly bytes: number; readonly contentLength: boolean };

export interface FaultRule {
  readonly action: FaultAction;
  /** Tested against the request target without origin, e.g. `/…/R4/AuditEvent?date=…&_offset=200`. Default: every request. */
  readonly match?: RegExp;
  /** How many requests this rule applies to. Default 1. */
  readonly times?: number;
}

export interface FiredFault {
  readonly kind: FaultAction['kind'];
  readonly target: string;
}

export interface FaultPlan {
  /** Queues a rule behind those already queued. */
  add(rule: FaultRule): void;
  /** Drops every queued rule (fired history is kept). */
  clear(): void;
  /** Uses left over all queued rules. */
  readonly pending: number;
  /** Faults applied so far, in order. */
  readonly fired: readonly FiredFault[];
}

/** The server's side of the plan: takes the fault for one request, if any. */
export interface FaultSource extends FaultPlan {
  take(target: string): FaultAction | undefined;
}

/** Epic's code system for its OperationOutcome codes (4101, 4113, 4127, …). */
export const EPIC_OUTCOME_SYSTEM = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.657369';

export function createFaultPlan(): FaultSource {
  const rules: Array<{ action: FaultAction; match?: RegExp; left: number }> = [];
  const fired: FiredFault[] = [];
  return {
    add(rule) {
      const times = rule.times ?? 1;
      if (!Number.isInteger(times) || times < 1) throw new TypeError(`FaultRule.times must be a whole number >= 1, got ${times}`);
      if (rule.action.kind === 'delay' && !(rule.action.ms >= 0)) throw new TypeError(`delay fault needs ms >= 0, got ${rule.action.ms}`);
      if (rule.action.kind === 'partial-id-list' && !(Number.isInteger(rule.action.max) && rule.action.max >= 1)) {
        throw new TypeError(`partial-id-list fault needs a whole number max >= 1, got ${rule.action.max}`);
      }
      if (rule.action.kind === 'huge-body' && !(Number.isInteger(rule.action.bytes) && rule.action.bytes >= 100)) {
        throw new TypeError(`huge-body fault needs a whole number of bytes >= 100, got ${rule.action.bytes}`);
      }
      rules.push({ action: rule.action, left: times, ...(rule.match ? { match: rule.match } : {}) });
    },
    clear() {
      rules.length = 0;
    },
    get pending() {
      return rules.reduce((sum, rule) => sum + rule.left, 0);
    },
    fired,
    take(target) {
      const index = rules.findIndex((rule) => rule.match === undefined || testOnce(rule.match, target));
      const rule = rules[index];
      if (!rule) return undefined;
      rule.left -= 1;
      if (rule.left === 0) rules.splice(index, 1);
      fired.push({ kind: rule.action.kind, target });
      return rule.action;
    },
  };
}

/** A global or sticky RegExp keeps lastIndex between calls; reset it so matching stays deterministic. */
function testOnce(pattern: RegExp, target: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(target);
}

/** An Epic-coded OperationOutcome entry of a searchset (outcome-entry fault). */
export function searchsetOutcomeEntry(code: string, severity: string): Record<string, unknown> {
  const text = code === '4127' ? 'Additional data may exist' : code === '4101' ? 'No results were found' : `Epic outcome ${code}`;
  return {
    resource: {
      resourceType: 'OperationOutcome',
      issue: [{ severity, code: 'informational', details: { coding: [{ system: EPIC_OUTCOME_SYSTEM, code, display: text }], text } }],
    },
    search: { mode: 'outcome' },
  };
}

/**
 * The OperationOutcome Epic answers when a paging session has expired (docs/epic-smart.md §6.2: issue the original
 * search again).
 */
export function searchExpiredOutcome(): Record<string, unknown> {
  return epicOutcome('processing', '4113', 'Session ID for cached search results has expired');
}

/** Epic's refusal of a chart under Break-the-Glass (docs/epic-smart.md §6.3: do not retry). */
export function breakTheGlassOutcome(): Record<string, unknown> {
  return epicOutcome('forbidden', '4130', 'Break-the-Glass security does not authorize you to access the selected patient');
}

function epicOutcome(code: string, epicCode: string, text: string): Record<string, unknown> {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, details: { coding: [{ system: EPIC_OUTCOME_SYSTEM, code: epicCode, display: text }], text } }],
  };
}

/**
 * Streams `{"resourceType":"Bundle",…,"padding":"xxx…"}` of exactly `bytes` bytes in 64 KiB chunks, waiting for the
 * socket to drain, and stops as soon as the client goes away (a capped client cancels the read).
 */
export async function writePaddedBundle(res: ServerResponse, bytes: number, contentLength: boolean): Promise<void> {
  const head = '{"resourceType":"Bundle","type":"searchset","total":0,"entry":[],"padding":"';
  const tail = '"}';
  const fill = bytes - head.length - tail.length;
  res.writeHead(200, { 'content-type': 'application/fhir+json; charset=utf-8', ...(contentLength ? { 'content-length': String(bytes) } : {}) });
  const chunk = 'x'.repeat(64 * 1024);
  const write = async (text: string): Promise<boolean> => {
    if (res.destroyed) return false;
    if (!res.write(text))
      await new Promise<void>((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
    return !res.destroyed;
  };
  if (!(await write(head))) return;
  for (let left = fill; left > 0; left -= chunk.length) {
    if (!(await write(left >= chunk.length ? chunk : chunk.slice(0, left)))) return;
  }
  if (await write(tail)) res.end();
}
