/**
 * The mapping domain's filesystem edge: reading mapping files (with `extends` of a built-in mapping) and streaming
 * NDJSON input. JSON syntax errors name the file, line and column, never the offending text (it may be PHI).
 */
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BridgeError, type ErrorCode } from '../errors.js';
import type { ConnectorSchema } from '../connector-file/index.js';
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
  const stream = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const raw of lines) {
      line += 1;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      yield { value: parseJson(text, path, 'BRG_ERR_INPUT_INVALID', line - 1), line };
    }
  } catch (cause) {
    if (cause instanceof BridgeError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Input file ${path} cannot be read (${code}); check the path.`, { cause, details: { file: path } });
  } finally {
    lines.close();
    stream.destroy();
  }
}
