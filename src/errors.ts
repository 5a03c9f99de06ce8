/**
 * One error base with stable codes. Every code lives in ERROR_CODES with its HTTP status, CLI exit code and a
 * one-line "what to do next"; a test checks that every code is documented in the README's troubleshooting table.
 */

export interface ErrorCodeInfo {
  /** HTTP status the service answers with when this error ends a request. */
  readonly http: number;
  /** Process exit code of the CLI. 2 = bad input/config, 3 = auth, 4 = upstream EHR, 5 = Purview, 6 = state, 1 = other. */
  readonly exit: number;
  /** What the operator should do next. */
  readonly fix: string;
}

export const ERROR_CODES = {
  BRG_ERR_CONFIG_INVALID: {
    http: 500,
    exit: 2,
    fix: 'Do what the message says (correct the named config key, file or environment variable, or run the command it gives) and run again.',
  },
  BRG_ERR_CONFIG_SECRET_MISSING: { http: 500, exit: 2, fix: 'Set the named environment variable or secret file; secrets are never read from flags.' },
  BRG_ERR_INPUT_INVALID: {
    http: 400,
    exit: 2,
    fix: 'Correct what the message names (a flag, a request field, or a file at its line and column) and run again.',
  },
  BRG_ERR_KEY_INVALID: {
    http: 500,
    exit: 2,
    fix: 'Restore the named key file, or run the command the message gives: `bridge keys generate` where there is no key yet; for a broken active key, `bridge keys rotate`, then `bridge keys activate --now -- <new kid>`.',
  },
  BRG_ERR_KEY_NOT_PUBLISHED: {
    http: 500,
    exit: 2,
    fix: 'Publish the key: restore it in jwks.json, or replace it with `bridge keys rotate`, then `bridge keys activate --now -- <new kid>`; for a JWK Set URL, publish jwks.json there (or let its cache expire) and try again.',
  },
  BRG_ERR_SMART_DISCOVERY: {
    http: 502,
    exit: 3,
    fix: 'Set smart.tokenUrl explicitly, or check the FHIR base URL and that it serves .well-known/smart-configuration.',
  },
  BRG_ERR_SMART_INVALID_CLIENT: {
    http: 502,
    exit: 3,
    fix: 'Check the client id (production vs non-production), that the kid is in the registered JWK Set, that the JWK Set URL is reachable over TLS, and the clock.',
  },
  BRG_ERR_SMART_UNAUTHORIZED_CLIENT: {
    http: 502,
    exit: 3,
    fix: "The customer's Epic background-user setup for this client id is incomplete; ask their Epic Client Systems Administrator.",
  },
  BRG_ERR_SMART_INVALID_SCOPE: { http: 502, exit: 3, fix: 'Request only scopes whose APIs are selected on the Epic app record (smart.scope).' },
  BRG_ERR_SMART_INVALID_REQUEST: {
    http: 502,
    exit: 3,
    fix: 'The token request was malformed for this server; check smart.tokenUrl (no query string) and report a bug.',
  },
  BRG_ERR_SMART_TOKEN: {
    http: 502,
    exit: 3,
    fix: 'The token endpoint could not be reached or answered unexpectedly: check smart.tokenUrl, the way to it (DNS, proxy, firewall, TLS trust) and the server status.',
  },
  BRG_ERR_FHIR_CAPABILITY: {
    http: 502,
    exit: 4,
    fix: 'This FHIR server does not offer AuditEvent search; ask the EHR team to enable it or use a flat-file export with `bridge push`.',
  },
  BRG_ERR_FHIR_HTTP: {
    http: 502,
    exit: 4,
    fix: "The message says what answered: an OperationOutcome's codes (its text, which may name a patient, is in the FHIR server's log: check scopes and the request parameters), or an answer that is no FHIR server's (a gateway's page, a broken Bundle: check the network path to the server, or report it to the EHR team).",
  },
  BRG_ERR_FHIR_UNAVAILABLE: {
    http: 503,
    exit: 4,
    fix: 'The FHIR server kept failing after retries; try again later or lower fhir.concurrency / fhir.requestsPerSecond.',
  },
  BRG_ERR_FHIR_FOREIGN_LINK: {
    http: 502,
    exit: 4,
    fix: "The server returned a paging link to another origin; the token is not sent there. Check fhir.baseUrl matches the server's public base.",
  },
  BRG_ERR_FHIR_NOT_SUPPORTED: {
    http: 502,
    exit: 4,
    fix: 'The FHIR server does not offer a request the bridge relies on (HTTP 404/405, or not in /metadata); check fhir.baseUrl and ask the EHR team to enable read or search of the named type.',
  },
  BRG_ERR_FHIR_PAGING: {
    http: 502,
    exit: 4,
    fix: "The FHIR server's paging loops (a next link or page repeats) or skips events (its pages hold fewer than its Bundle.total, twice); nothing from the window was pushed. Report it to the EHR team; a smaller fhir.maxResultsPerSlice may avoid the looping page; fhir.checkSearchTotal: false only if the server's total is an estimate.",
  },
  BRG_ERR_CLOCK_AHEAD: {
    http: 500,
    exit: 2,
    fix: "Sync this host's clock (NTP, chrony); if it is right, the EHR's clock is behind (tell the EHR team). Nothing of the run was pushed, and the next run reads the same window.",
  },
  BRG_ERR_FHIR_TOO_LARGE: {
    http: 502,
    exit: 4,
    fix: 'A FHIR response exceeded fhir.maxResponseBytes; lower fhir.pageSize (or fhir.referenceBatchSize), or raise fhir.maxResponseBytes if the host has the memory.',
  },
  BRG_ERR_FHIR_EXPORT: {
    http: 502,
    exit: 4,
    fix: 'The FHIR server refused or failed the Bulk Data $export (the message names the type, status or step): check source.types against what the server exports, the scopes (system/<Type>.read) and that Bulk Data export is enabled for the client at the EHR; raise source.pollMaxMinutes for slow exports; the next run starts a new export.',
  },
  BRG_ERR_FHIR_EXPORT_FILE: {
    http: 502,
    exit: 4,
    fix: 'A Bulk Data export file is not what its manifest says (the message names the file and line: invalid JSON or UTF-8, another resourceType, a broken gzip stream); report it to the EHR team. Nothing of the run was pushed.',
  },
  BRG_ERR_PROXY_REFUSED: {
    http: 502,
    exit: 2,
    fix: 'The forward proxy refused the tunnel: on 407 set network.proxy.credentials (or user:password in HTTPS_PROXY); on 403 have the host allowed, or list it in NO_PROXY / network.proxy.noProxy.',
  },
  BRG_ERR_MAPPING_INVALID: { http: 500, exit: 2, fix: 'Fix the named mapping file, column and expression.' },
  BRG_ERR_PURVIEW_AUTH: { http: 502, exit: 5, fix: 'Check purview.tenantId, purview.appId and the secret or certificate of the Entra app registration.' },
  BRG_ERR_PURVIEW_FORBIDDEN: {
    http: 502,
    exit: 5,
    fix: 'The job id does not belong to this app id: copy the job id from the connector created with this Entra app.',
  },
  BRG_ERR_PURVIEW_REJECTED: {
    http: 502,
    exit: 5,
    fix: 'Purview rejected the block: on a 400 check the schema header and the file format (a sync refused the same block every run: `bridge state refused` / `give-up`); on a 413 (too large) lower purview.blockRows / --block-rows.',
  },
  BRG_ERR_PURVIEW_UNAVAILABLE: {
    http: 503,
    exit: 5,
    fix: 'Purview kept failing after retries (rerun later: the push resumes at the first unacknowledged block), or its certificate was not accepted (fix what the message names: no retry changes that).',
  },
  BRG_ERR_DROP_FOLDER: {
    http: 500,
    exit: 2,
    fix: 'Fix the drop folder or its archive as the message says (exists, writable, archive on the same filesystem); no file was taken.',
  },
  BRG_ERR_DROP_ARCHIVE: {
    http: 500,
    exit: 6,
    fix: 'A file could not be moved to the archive after its outcome; its rows were delivered (or refused) as the run says. Fix the archive; the next run moves it without sending a row again.',
  },
  BRG_ERR_STATE: {
    http: 500,
    exit: 6,
    fix: 'If the message says the database is locked by another process, wait for it and run again; if it says the database is damaged, restore it from a backup (never delete it); otherwise check the state directory exists, is writable and its disk has free space.',
  },
  BRG_ERR_STATE_SCHEMA: {
    http: 500,
    exit: 6,
    fix: 'Run the bridge version that matches the state database. If the database is the older (the message says which), upgrade it once every bridge of the older version using it is stopped: `bridge state upgrade`.',
  },
  // Answers of the HTTP API alone (no command raises them).
  BRG_ERR_UNAUTHORIZED: {
    http: 401,
    exit: 2,
    fix: 'Send Authorization: Bearer <token>; the service takes the tokens whose SHA-256 is in server.apiTokenSha256 (bridge token hash).',
  },
  BRG_ERR_NOT_FOUND: { http: 404, exit: 2, fix: 'Check the path (GET /docs/json lists the API) and the connector name or run id.' },
  BRG_ERR_RATE_LIMITED: { http: 429, exit: 2, fix: 'Wait for Retry-After, then ask again.' },
  BRG_ERR_RUN_IN_PROGRESS: {
    http: 409,
    exit: 6,
    fix: 'A run holds the connector (or, when the state schema is to be upgraded, any connector): wait for it, or stop the bridge the message names (a holder that died elsewhere lets go after state.leaseTtlSeconds); `bridge status` shows runs in flight.',
  },
  BRG_ERR_CONNECTOR_STATE: {
    http: 409,
    exit: 2,
    fix: 'Say what became of the named connector: `bridge state rename <old> <new>` if it was renamed, `bridge state retire <old>` if it is gone for good.',
  },
  BRG_ERR_ABORTED: { http: 503, exit: 130, fix: 'The run was cancelled; the next run resumes from the last checkpoint.' },
  BRG_ERR_SANDBOX_UNAVAILABLE: {
    http: 500,
    exit: 2,
    fix: "The offline sandbox is a development tool, not part of a production install: run it from a clone with `npm ci && npm run demo` (or `npm run sandbox`), or install the dev dependencies with `npm ci --include=dev` and run it from the sources; with Docker, `docker compose --profile sandbox up` (the image's sandbox target).",
  },
  BRG_ERR_INTERNAL: { http: 500, exit: 1, fix: 'Unexpected failure; report it with the run log (it contains no PHI).' },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Details travel with the error for logs and API answers; they must never hold PHI or secrets. */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | null | undefined>>;

export class BridgeError extends Error {
  override readonly name: string = 'BridgeError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get fix(): string {
    return ERROR_CODES[this.code].fix;
  }
}

/** Normalises anything thrown into a BridgeError once, at the edge. */
export function toBridgeError(error: unknown): BridgeError {
  if (error instanceof BridgeError) return error;
  if (isAbortError(error)) {
    // Aborted for a reason of its own (the run's lease taken over, or not renewable): that reason, not "cancelled".
    const cause = (error as Error).cause;
    return cause instanceof BridgeError ? cause : new BridgeError('BRG_ERR_ABORTED', 'The run was cancelled.', { cause: error });
  }
  if (error instanceof Error && error.name === 'SqliteError') {
    // better-sqlite3's errors carry SQLite's code: BUSY/LOCKED is another process holding the database.
    const code = String((error as { code?: unknown }).code ?? 'SQLITE_ERROR');
    const busy = code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
    return new BridgeError(
      'BRG_ERR_STATE',
      busy
        ? `The state database is locked by another process (${code}); wait for it to finish and run again.`
        : `The state database failed (${code}): ${scrubErrorText(error.message).replace(/\.?$/, '.')}${stateFaultAdvice(code)}`,
      { cause: error, details: { sqlite: code } },
    );
  }
  const message = scrubErrorText(error instanceof Error ? error.message : String(error));
  return new BridgeError('BRG_ERR_INTERNAL', message, { cause: error });
}

/**
 * An untyped error's text may quote the data it failed on: Node's JSON.parse says `Unexpected token 'J', "Jane Smith"
 * is not valid JSON`. Such text goes to run records, the operator page and logs, so quoted values are blanked: JSON's
 * quoted input whole (it may hold quotes itself), any other double-quoted text, and single-quoted text unless it is one
 * character (`Expected ',' or '}'`), a path (`open '/var/lib/bridge/x'`) or a property read (`reading 'family'`); long
 * digit runs (an MRN, a phone number) too, and what blankIdentifying blanks (a URL's query and credentials, tokens).
 */
const JSON_PHRASE = ' is not valid JSON';
/** How far before the phrase V8's quote of the input can start (it cuts long inputs short). */
const JSON_QUOTE_REACH = 10_000;

/**
 * V8's JSON.parse quote of its input (`Unexpected token 'J', "Jane\nSmith"... is not valid JSON`): from the first double
 * quote before the phrase (within JSON_QUOTE_REACH) to the phrase, lines and quotes included, made `"…"`. Found by
 * position, not by a pattern: a long text full of quotes costs one pass.
 */
function blankJsonQuotes(text: string): string {
  let out = '';
  let from = 0;
  for (let at = text.indexOf(JSON_PHRASE); at !== -1; at = text.indexOf(JSON_PHRASE, at + JSON_PHRASE.length)) {
    const open = text.indexOf('"', Math.max(from, at - JSON_QUOTE_REACH));
    if (open === -1 || open >= at) continue;
    out += `${text.slice(from, open)}"…"`;
    from = at;
  }
  return out + text.slice(from);
}

export function scrubErrorText(text: string): string {
  const unquoted = blankJsonQuotes(text)
    .replace(/"[^"\n]*"/g, '"…"')
    .replace(/(reading |setting |property )?'([^'\n]*)'/g, (quoted, read: string | undefined, inner: string) =>
      read !== undefined || inner.length <= 1 || /^(\/|\.{1,2}\/|[A-Za-z]:\\)/.test(inner) ? quoted : "'…'",
    );
  // Unquoted values too: Node's fetch names the whole URL it refused (`…includes credentials: https://u:p@host/Patient?identifier=…`).
  return blankIdentifying(unquoted, '…');
}

/**
 * What may identify a person or carry a secret in free text, blanked: JWTs, bearer tokens, URL credentials, URL query
 * strings, ids after a person's resource type, e-mail addresses and long digit runs (an MRN, a phone number), the
 * last as `numberMark`. The one list for both error text (scrubErrorText) and upstream bodies (http.ts
 * scrubUpstreamText), so a pattern added for one protects the other. Line breaks are kept (stack traces go through
 * here); whitespace after "Bearer" is kept as it was, for the same reason.
 */
export function blankIdentifying(text: string, numberMark: string): string {
  return (
    text
      .replace(/eyJ[\w-]*\.[\w-]*\.[\w-]*/g, '[jwt]')
      .replace(/\b(bearer)(\s+)[\w~+/.=-]+/gi, '$1$2[token]')
      // Before the e-mail pattern, which would take `p@ehr.example` of `//u:p@ehr.example` and leave the user name.
      .replace(/\/\/[^\s/?#"'<>]+@/g, '//…@')
      .replace(/\?[^\s"'<>]+/g, '?…')
      .replace(/\b(Patient|Practitioner|PractitionerRole|Person|RelatedPerson)\/[^\s/"'<>]+/g, '$1/…')
      .replace(/[\w.+-]+@[\w-]+(\.[\w-]+)+/g, '[email]')
      .replace(/\d{6,}/g, numberMark)
  );
}

/** SQLite's codes for a file that is not (or no longer) a whole database: a torn copy, a truncated file, a bad disk. */
const DAMAGED = ['SQLITE_CORRUPT', 'SQLITE_NOTADB'];
/** A disk without room for the bridge's files: errno's and SQLite's words for it. */
const NO_SPACE = ['ENOSPC', 'EDQUOT', 'SQLITE_FULL'];
/** A file system or a file the bridge may not write. */
const NOT_WRITABLE = ['EROFS', 'EACCES', 'EPERM', 'SQLITE_READONLY', 'SQLITE_CANTOPEN'];

/** An errno or SQLite code (`ENOSPC`, `SQLITE_CORRUPT_VTAB`), when `error` carries one. */
export function faultCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^(E[A-Z]+|SQLITE_[A-Z_]+)$/.test(code) ? code : undefined;
}

function isOf(code: string, kinds: readonly string[]): boolean {
  return kinds.some((kind) => code === kind || code.startsWith(`${kind}_`));
}

/**
 * What to do about a state database SQLite refused with `code` (empty when its message says enough). A damaged one
 * must not be deleted: a new database knows nothing of what Purview acknowledged, and the next runs would send it all
 * again, unflagged. `file`: the database's path, when known.
 */
export function stateFaultAdvice(code: string, file = '<stateDir>/bridge.sqlite'): string {
  if (isOf(code, DAMAGED)) {
    return ` The database file is damaged (a torn copy, a truncated file, a failing disk). Stop every bridge using it and keep the file (and its -wal beside it): restore it from your latest backup (README: Backing up the state), or salvage it with \`sqlite3 ${file} .recover | sqlite3 recovered.sqlite\` and put recovered.sqlite in its place, the old -wal and -shm files removed; rows pushed since the backup (or lost to the damage) may be sent again. Do not delete it: a new, empty database would send every row of its first window again, unflagged.`;
  }
  if (isOf(code, NO_SPACE)) return " Free space on the state directory's disk and run again.";
  return '';
}

/**
 * A file the bridge writes on this machine (a run's spool, its index or rejects, a Bulk export download, the run log)
 * that the machine refused: a full disk, a read-only or unwritable directory. BRG_ERR_STATE naming the file and the
 * errno code, with what to fix: left as it came, it read as a bug (BRG_ERR_INTERNAL, "report it"), and under a Bulk
 * download's retries as the FHIR server's network error. `outcome`: what became of the run. A BridgeError stays as it is.
 */
export function localWriteError(path: string, cause: unknown, outcome: string): BridgeError {
  return localWriteErrorOf(path, cause, outcome);
}

/**
 * Runs `write` of `path`; the machine's refusal (an errno or SQLite code, also as the cause of a BridgeError a writer
 * wrapped it in) comes out as localWriteError, anything else as it was thrown.
 */
export function writingTo<T>(path: string, outcome: string, write: () => T): T {
  try {
    return write();
  } catch (error) {
    throw asLocalWriteError(path, outcome, error);
  }
}

/** writingTo for a write that returns a promise. */
export async function writingToAsync<T>(path: string, outcome: string, write: () => T | Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw asLocalWriteError(path, outcome, error);
  }
}

function asLocalWriteError(path: string, outcome: string, error: unknown): unknown {
  const cause = error instanceof BridgeError && faultCode(error) === undefined ? error.cause : error;
  return faultCode(cause) === undefined ? error : localWriteErrorOf(path, cause, outcome);
}

function localWriteErrorOf(path: string, cause: unknown, outcome: string): BridgeError {
  if (cause instanceof BridgeError) return cause;
  const code = faultCode(cause) ?? 'an I/O error';
  const fix = isOf(code, NO_SPACE)
    ? "Free space on its disk (the state directory's)"
    : isOf(code, NOT_WRITABLE)
      ? "Make its directory writable by the bridge's user (not read-only)"
      : 'Check its directory and disk';
  return new BridgeError('BRG_ERR_STATE', `Cannot write ${path} (${code}). ${fix}, then run again; ${outcome}`, {
    cause,
    details: { file: path, errno: code },
  });
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}
