/**
 * The mapping domain's filesystem edge: reading mapping files (with `extends` of a built-in mapping) and streaming
 * NDJSON input. JSON syntax errors name the file, line and column, never the offending text (it may be PHI).
 */
import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type ConnectorSchema, columnAt, firstInvalidUtf8 } from '../connector-file/index.js';
import { BridgeError, type ErrorCode } from '../errors.js';
import { compileMapping } from './compile.js';
import { locateJsonError } from './json-position.js';
import { mappingFileSpec, mergeMappingSpecs } from './spec.js';
import type { CompiledMapping, MappingOverrides } from './types.js';

/** Absolute path of mappings/<schema>-connector.json in this checkout. */
export function builtinMappingPath(schema: ConnectorSchema): string {
  return fileURLToPath(new URL(`../../mappings/${schema}-connector.json`, import.meta.url));
}

/** Reads, validates and compiles a mapping file; throws BRG_ERR_MAPPING_INVALID naming the file (and column, expression). */
export function loadMapping(path: string, overrides: MappingOverrides = {}): CompiledMapping {
  const spec = readJsonFile(path);
  const own = mappingFileSpec.safeParse(spec);
  if (!own.success || !own.data.extends) return compileMapping(spec, path, overrides);
  const baseName = own.data.extends;
  if (own.data.schema && own.data.schema !== baseName) {
    throw mappingError(path, `"schema": "${own.data.schema}" contradicts "extends": "${baseName}"`);
  }
  const basePath = builtinMappingPath(baseName);
  const baseSpec = readJsonFile(basePath);
  const base = mappingFileSpec.safeParse(baseSpec);
  // A broken built-in file: compiling it on its own gives the precise error.
  if (!base.success) return compileMapping(baseSpec, basePath, overrides);
  if (base.data.extends) throw mappingError(basePath, 'must not itself use "extends"');
  return compileMapping(mergeMappingSpecs(base.data, own.data), path, overrides);
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw mappingError(path, `cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'}); check the path`, cause);
  }
  return parseJson(text.replace(/^\uFEFF/, ''), path, 'BRG_ERR_MAPPING_INVALID', 0);
}

function parseJson(text: string, file: string, code: ErrorCode, lineOffset: number): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // The engine's message quotes the input (possibly PHI), so it is not kept as the cause: position only.
    const at = locateJsonError(text) ?? { line: 1, column: 1, reason: 'invalid JSON' };
    const line = at.line + lineOffset;
    const what = code === 'BRG_ERR_MAPPING_INVALID' ? 'Mapping file' : 'Input file';
    throw new BridgeError(code, `${what} ${file}: invalid JSON at line ${line}, column ${at.column}: ${at.reason}.`, {
      details: { file, line, column: at.column },
    });
  }
}

function mappingError(path: string, what: string, cause?: unknown): BridgeError {
  return new BridgeError('BRG_ERR_MAPPING_INVALID', `Mapping file ${path} ${what}.`, {
    ...(cause === undefined ? {} : { cause }),
    details: { file: path },
  });
}

/**
 * Streams an NDJSON file one value at a time (blank lines skipped, a leading BOM ignored).
 * Throws BRG_ERR_INPUT_INVALID naming the file, line and column on a syntax error, or when the file cannot be read.
 */
export async function* readNdjson(path: string): AsyncGenerator<{ value: unknown; line: number }> {
  for await (const lines of readNdjsonLines(path)) {
    for (let i = 0; i < lines.length; i++) {
      const text = lines.text(i);
      if (!isBlank(text)) yield { value: parseNdjsonLine(text, path, lines.first + i), line: lines.first + i };
    }
  }
}

/**
 * The lines of an NDJSON file a chunk (~1 MiB) at a time, for callers that parse and use each value at once: one await
 * per chunk instead of one per line (readline and an await per value were a visible share of `bridge map`'s time), and
 * no chunk of parsed values held across a young-generation GC. Blank lines are included; `isBlank` tells them.
 */
export async function* readNdjsonLines(path: string): AsyncGenerator<NdjsonLines> {
  try {
    yield* ndjsonLines(fileChunks(path));
  } catch (cause) {
    if (cause instanceof BridgeError) throw cause;
    if (cause instanceof NotUtf8Error) {
      throw new BridgeError('BRG_ERR_INPUT_INVALID', `Input file ${path}: ${cause.message}. Export it again as UTF-8 (FHIR's JSON is UTF-8).`, {
        cause,
        details: { file: path, line: cause.line, column: cause.column },
      });
    }
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Input file ${path} cannot be read (${code}); check the path.`, { cause, details: { file: path } });
  }
}

/**
 * A file's bytes, ~1 MiB at a time, read into one buffer reused for every chunk: each chunk is valid only until the
 * next is asked for. A new Buffer per chunk (as a read stream makes) counts as external memory, and V8 answers
 * external memory with full GCs of the whole heap (measured: 31 instead of 5 during a `bridge map` whose lookups
 * fill the old generation).
 */
export async function* fileChunks(path: string, size = 1 << 20): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, size, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/** One NDJSON line's value; BRG_ERR_INPUT_INVALID naming the file, line and column when it is not JSON. */
export function parseNdjsonLine(text: string, path: string, line: number): unknown {
  return parseJson(text, path, 'BRG_ERR_INPUT_INVALID', line - 1);
}

/**
 * The lines of one chunk, decoded one at a time when asked for: lines decoded ahead and held while the chunk is mapped
 * outlived young-generation GCs and were collected as old objects (measured: a third of `bridge map`'s time in GC).
 */
export class NdjsonLines {
  constructor(
    private readonly chunk: Buffer,
    /** Start and end (exclusive) byte offset of each line in `chunk`, in pairs; a line from an earlier chunk is in `head`. */
    private readonly bounds: readonly number[],
    /** The 1-based number of the first line. */
    readonly first: number,
    /** The first line when it began in an earlier chunk (already decoded). */
    private readonly head: string | undefined,
  ) {}

  get length(): number {
    return this.bounds.length / 2 + (this.head === undefined ? 0 : 1);
  }

  /** Line `i` of the chunk (0-based), without its CR LF; a BOM at the very start of the stream is dropped. */
  text(i: number): string {
    const k = this.head === undefined ? i : i - 1;
    const text = k < 0 ? (this.head as string) : this.chunk.toString('utf8', this.bounds[2 * k] as number, this.bounds[2 * k + 1] as number);
    return this.first === 1 && i === 0 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }
}

/**
 * A line that is not UTF-8: decoded, its bad bytes would become U+FFFD, and a name "M\ufffdller" would reach Purview as
 * if it were one (Windows-1252 or Latin-1 text is the usual cause). Says where, never the bytes.
 */
export class NotUtf8Error extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
  ) {
    super(
      `not UTF-8 at line ${line}, column ${column} (a byte there starts no UTF-8 character: the file is in another encoding, such as Windows-1252, or damaged)`,
    );
    this.name = 'NotUtf8Error';
  }
}

/** Throws NotUtf8Error for line `line` when its bytes are not UTF-8. */
function checkUtf8(bytes: Buffer, line: number): void {
  if (isUtf8(bytes)) return;
  const at = firstInvalidUtf8(bytes);
  throw new NotUtf8Error(line, columnAt(bytes, Math.max(0, at)));
}

/**
 * Splits a byte stream into UTF-8 lines, a chunk at a time: LF or CRLF ends a line, a leading BOM is dropped, the last
 * line needs no newline. Blank lines are kept (so numbering stays simple); the caller skips them. A line longer than
 * `maxLineBytes` throws a RangeError instead of growing without bound; one that is not UTF-8, a NotUtf8Error.
 */
export async function* ndjsonLines(chunks: AsyncIterable<Buffer | string>, maxLineBytes = Number.POSITIVE_INFINITY): AsyncGenerator<NdjsonLines> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let next = 1;
  for await (const raw of chunks) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    const bounds: number[] = [];
    let head: string | undefined;
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      // A newline is ASCII, so cutting at one never splits a multi-byte character.
      const end = nl > start && chunk[nl - 1] === 13 ? nl - 1 : nl;
      if (pending.length === 0) {
        if (end - start > maxLineBytes) throw new RangeError(`line ${next + bounds.length / 2} is longer than ${maxLineBytes} bytes`);
        bounds.push(start, end);
      } else {
        pending.push(chunk.subarray(0, nl));
        if (pendingBytes + nl > maxLineBytes) throw new RangeError(`line ${next} is longer than ${maxLineBytes} bytes`);
        const whole = Buffer.concat(pending);
        checkUtf8(whole, next);
        head = whole.toString('utf8').replace(/\r$/, '');
        pending = [];
        pendingBytes = 0;
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      // Copied: the chunk's buffer may be reused for the next one (fileChunks).
      pending.push(Buffer.from(chunk.subarray(start)));
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLineBytes)
        throw new RangeError(`line ${next + bounds.length / 2 + (head === undefined ? 0 : 1)} is longer than ${maxLineBytes} bytes`);
    }
    // One check for the chunk's whole lines (the bytes between them are line ends); a failure is then placed by line.
    if (bounds.length > 0 && !isUtf8(chunk.subarray(bounds[0], bounds[bounds.length - 1]))) {
      for (let k = 0; k < bounds.length; k += 2) checkUtf8(chunk.subarray(bounds[k], bounds[k + 1]), next + (head === undefined ? 0 : 1) + k / 2);
    }
    const lines = new NdjsonLines(chunk, bounds, next, head);
    if (lines.length === 0) continue;
    yield lines;
    next += lines.length;
  }
  if (pending.length > 0) {
    const last = Buffer.concat(pending);
    checkUtf8(last, next);
    yield new NdjsonLines(last, [0, last.length > 0 && last[last.length - 1] === 13 ? last.length - 1 : last.length], next, undefined);
  }
}

/** An empty or whitespace-only line (skipped in NDJSON). */
export function isBlank(text: string): boolean {
  return text.length === 0 || text.trim() === '';
}
