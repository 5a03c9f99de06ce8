/**
 * Configuration layering: defaults < file (YAML or JSON) < environment < flags; validated once, then frozen.
 * This and the entry points are the only places that read the environment.
 *
 * Environment overrides use the path of the key, segments joined by `__` after the `BRIDGE__` prefix:
 * `BRIDGE__stateDir=/var/lib/bridge`, `BRIDGE__connectors__0__fhir__baseUrl=https://…`. Values that parse as JSON
 * (numbers, booleans, arrays) are used as such.
 */
import { readFileSync } from 'node:fs';
import { type Document, isAlias, isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { BridgeError } from '../errors.js';
import { recordMappingOptionOrigins } from './origins.js';
import { type Config, configSchema } from './schema.js';

export const ENV_PREFIX = 'BRIDGE__';
export const CONFIG_PATH_ENV = 'BRIDGE_CONFIG';

export interface LoadConfigOptions {
  /** Path of the config file; default $BRIDGE_CONFIG, else none (the environment's BRIDGE__ variables alone). */
  readonly path?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Highest-precedence values, as dotted paths (`connectors.0.fhir.baseUrl`). */
  readonly flags?: Readonly<Record<string, unknown>>;
  /** An in-memory base instead of a file (sandbox, tests). */
  readonly base?: unknown;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? env[CONFIG_PATH_ENV];
  const file = path ? readConfigFile(path) : undefined;
  const merged = structuredClone((options.base ?? file?.value ?? {}) as Record<string, unknown>);
  // Which environment variable set which key, and what it wrote: a refused value is named by its variable, not the
  // file; a JSON scalar ("2" a number, "true" a boolean) goes back to the text written where the key wants a text.
  const fromEnv = new Map<string, EnvSetting>();
  // By path, positions as numbers: connectors__2 after connectors__1 (and after connectors__0 whatever order the
  // environment lists them in), so a list is filled from its start and a position past its end means a gap.
  for (const [name, raw] of Object.entries(env).sort(([a], [b]) => comparePaths(a, b))) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split('__');
    refuseListHole(merged, path, name);
    const value = parseScalar(raw);
    setPath(merged, path, value);
    fromEnv.set(path.join('.'), { name, path, raw, parsed: typeof value !== 'string' });
  }
  for (const [dotted, value] of Object.entries(options.flags ?? {})) {
    if (value === undefined) continue;
    setPath(merged, dotted.split('.'), value);
    fromEnv.delete(dotted);
  }
  if ([...fromEnv.values()].some((setting) => setting.parsed)) restoreTexts(merged, fromEnv);
  const source = path ?? (options.base !== undefined ? '(in-memory config)' : `the environment alone (no --config file, no $${CONFIG_PATH_ENV})`);
  const setBy = new Map([...fromEnv].map(([key, setting]) => [key, setting.name]));
  for (const [dotted, value] of Object.entries(options.flags ?? {})) if (value !== undefined) setBy.set(dotted, 'a command-line option');
  return validateConfig(merged, source, setBy, options.base === undefined ? file?.positions : undefined);
}

/** What one BRIDGE__ variable set. */
interface EnvSetting {
  readonly name: string;
  readonly path: string[];
  readonly raw: string;
  /** Its text was read as a JSON number, boolean, list or section. */
  readonly parsed: boolean;
}

function comparePaths(a: string, b: string): number {
  const left = a.split('__');
  const right = b.split('__');
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const x = left[i] as string;
    const y = right[i] as string;
    if (x === y) continue;
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return left.length - right.length;
}

/**
 * A list is addressed by position from the environment (`BRIDGE__connectors__0__…`): a name there, or a position past
 * the end (which would leave empty entries before it), is refused naming the variable.
 */
function refuseListHole(merged: Record<string, unknown>, path: readonly string[], name: string): void {
  let cursor: unknown = merged;
  for (let i = 0; i < path.length - 1 && cursor !== null && typeof cursor === 'object'; i += 1) {
    const segment = path[i] as string;
    const index = path[i + 1] as string;
    // A list not there yet is made by a position (setPath): it starts empty, so only position 0 fits.
    const next = (cursor as Record<string, unknown>)[segment] ?? (/^\d+$/.test(index) ? [] : undefined);
    if (Array.isArray(next)) {
      const where = path.slice(0, i + 1).join('.');
      // "01" is no position: set on a list it would be a property nobody reads.
      if (!/^(0|[1-9]\d*)$/.test(index) || Number(index) > next.length) {
        throw new BridgeError(
          'BRG_ERR_CONFIG_INVALID',
          `${name} names ${where}.${index}, but ${where} is a list of ${next.length} entr${next.length === 1 ? 'y' : 'ies'} addressed by position from 0: use ${ENV_PREFIX}${path
            .slice(0, i + 1)
            .join('__')}__<0…${next.length}>__… (${next.length} adds one).`,
          { details: { variable: name } },
        );
      }
    }
    cursor = next;
  }
}

/** Values a profile fills in where the config leaves them out. */
export const PROFILES: Readonly<Record<string, { fhir: { baseUrl: string }; smart: { tokenUrl: string; scope?: string } }>> = {
  'epic-sandbox': {
    fhir: { baseUrl: 'https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4' },
    // Only what Epic's sandbox serves: its /metadata lists no AuditEvent, so asking for that scope fails with
    // invalid_scope before anything else can be proven (docs/epic-sandbox.md).
    smart: { tokenUrl: 'https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token', scope: 'system/Patient.read system/Practitioner.read' },
  },
};

/**
 * @param fromEnv - dotted key → what set it (the environment variable, or a command-line option), named in the refusal
 *   of its value.
 * @param positions - where the config file wrote each key, so a refusal of a value the file gave names its line and column.
 */
export function validateConfig(input: unknown, source: string, fromEnv: ReadonlyMap<string, string> = new Map(), positions?: ConfigPositions): Config {
  const parsed = configSchema.safeParse(applyProfiles(input));
  if (!parsed.success) {
    let first: FilePosition | undefined;
    const lines = parsed.error.issues.map((issue) => {
      const setter = setterOf(issue, fromEnv);
      if (setter !== undefined) return `${describeIssue(issue, input)} (set by ${setter})`;
      const position = positions?.of(issue.path, issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined);
      first ??= position;
      // A section the file writes, with keys inside it set by variables (a secret's `env` beside the file's `file`, a
      // certificate beside the file's secret): the refusal is of what the two made together, so both are named.
      const within = settersWithin(issue, fromEnv);
      const merged = within.length > 0 ? ` (the file's value merged with ${within.join(', ')})` : '';
      return `${describeIssue(issue, input, position)}${merged}`;
    });
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Invalid configuration in ${source}:\n${lines.join('\n')}`, {
      details: { source, issues: parsed.error.issues.length, ...(first ? { line: first.line, column: first.column } : {}) },
    });
  }
  const config = deepFreeze(parsed.data);
  // The mapping compiler checks mapping.options (their meaning is the mapping's): what it refuses is named here.
  recordMappingOptionOrigins(config, (path) => settingPlace(path, source, fromEnv, positions));
  return config;
}

/**
 * A key of the config as a refusal names it: `connectors.0.mapping.options.loginRegex in /etc/bridge/config.json (line 12,
 * column 7)`, or `… (set by BRIDGE__connectors__0__mapping__options__loginRegex)` when a variable (or an option) set it.
 */
function settingPlace(path: ReadonlyArray<string | number>, source: string, fromEnv: ReadonlyMap<string, string>, positions?: ConfigPositions): string {
  const dotted = path.join('.');
  const setter = setterOfPath(path.map(String), fromEnv) ?? [...fromEnv].find(([key]) => key.startsWith(`${dotted}.`))?.[1];
  if (setter !== undefined) return `${dotted} (set by ${setter})`;
  const position = positions?.of(path);
  return `${dotted} in ${source}${position?.exact ? ` (line ${position.line}, column ${position.column})` : ''}`;
}

/** The environment variable or option that set the refused key, or one of its sections (a JSON list or section). */
function setterOf(issue: z.core.$ZodIssue, fromEnv: ReadonlyMap<string, string>): string | undefined {
  const path = issue.path.map(String);
  // An unknown key is named below its section: the variable that set it (or a value inside it) is found by the key's path.
  if (issue.code === 'unrecognized_keys') {
    for (const key of issue.keys) {
      const prefix = [...path, key].join('.');
      for (const [dotted, setter] of fromEnv) if (dotted === prefix || dotted.startsWith(`${prefix}.`)) return setter;
    }
  }
  return setterOfPath(path, fromEnv);
}

/** The variable or option that set the key at `path` or a section holding it. */
function setterOfPath(path: readonly string[], fromEnv: ReadonlyMap<string, string>): string | undefined {
  for (let length = path.length; length > 0; length -= 1) {
    const setter = fromEnv.get(path.slice(0, length).join('.'));
    if (setter !== undefined) return setter;
  }
  return undefined;
}

/** The variables or options that set keys below the refused path (none when it is the root). */
function settersWithin(issue: z.core.$ZodIssue, fromEnv: ReadonlyMap<string, string>): string[] {
  const path = issue.path.map(String).join('.');
  if (path === '') return [];
  return [...new Set([...fromEnv].filter(([dotted]) => dotted.startsWith(`${path}.`)).map(([, setter]) => setter))];
}

/** A place in the config file, 1-based. `exact`: the refused key's own; else the nearest section around a missing key. */
export interface FilePosition {
  readonly line: number;
  readonly column: number;
  readonly exact: boolean;
}

export interface ConfigPositions {
  /** Where `path` (or its key `key`, for an unknown key) is written, else where its nearest written section starts. */
  of(path: readonly PropertyKey[], key?: string): FilePosition | undefined;
}

function positionsOf(doc: Document, lines: LineCounter): ConfigPositions {
  const at = (offset: number, exact: boolean): FilePosition => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col, exact };
  };
  return {
    of(path, key) {
      // Walked by hand, not with getIn: an alias (`fhir: *defaults`) is followed to the anchored value it stands for.
      let node: unknown = doc.contents;
      let depth = 0;
      for (const segment of path) {
        if (isAlias(node)) node = node.resolve(doc);
        const next: unknown = isMap(node) ? node.get(segment, true) : isSeq(node) && typeof segment === 'number' ? node.get(segment, true) : undefined;
        if (next === undefined) {
          // A list entry the file does not have was made elsewhere (BRIDGE__connectors__1__…): no place in the file.
          if (isSeq(node)) return undefined;
          break;
        }
        node = next;
        depth += 1;
      }
      if (isAlias(node)) node = node.resolve(doc);
      if (!isNode(node) || node.range === undefined || node.range === null) return undefined;
      const exact = depth === path.length;
      // An unknown key is pointed at itself, not at the section holding it.
      if (exact && key !== undefined && isMap(node)) {
        const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === key);
        const range = isPair(pair) && isNode(pair.key) ? pair.key.range : undefined;
        // Not written by the file (an environment variable or an option added it): no line of the file is to blame.
        return range ? at(range[0], true) : undefined;
      }
      // A refused value is pointed at itself (its key is on the same line); a missing key, at the section lacking it.
      return at(node.range[0], exact);
    },
  };
}

function applyProfiles(input: unknown): unknown {
  const connectors = (input as { connectors?: unknown } | null)?.connectors;
  if (!Array.isArray(connectors)) return input;
  for (const connector of connectors as Array<Record<string, unknown>>) {
    const preset = typeof connector['profile'] === 'string' ? PROFILES[connector['profile']] : undefined;
    if (!preset) continue;
    for (const section of ['fhir', 'smart'] as const) {
      const current = (connector[section] ?? {}) as Record<string, unknown>;
      connector[section] = { ...preset[section], ...current };
    }
  }
  return input;
}

function readConfigFile(path: string): { value: unknown; positions: ConfigPositions } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Cannot read the config file ${path}: create it or set ${CONFIG_PATH_ENV}.`, { cause });
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, lineCounter });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    const where = pos ? `${path}:${pos.line}:${pos.col}` : path;
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Config file ${where} is not valid YAML/JSON: ${first.message.split('\n')[0]}`);
  }
  try {
    return { value: doc.toJS() ?? {}, positions: positionsOf(doc, lineCounter) };
  } catch (error) {
    // An alias without its anchor, say: the message names the alias, which may be anything; the file is named instead.
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Config file ${path} is not valid YAML/JSON (${(error as Error).name}); check its anchors and aliases.`);
  }
}

/**
 * `key: got <value>, expected <form>`. Only scalar values are echoed, never under secret-like keys, and an unknown key
 * is named without its value: a misspelt secret key (clientSecret for secret) would otherwise print the secret.
 */
function describeIssue(issue: z.core.$ZodIssue, input: unknown, position?: FilePosition): string {
  const key = issue.path.map(String).join('.') || '(root)';
  const where = position === undefined ? '' : ` (${position.exact ? '' : 'in the section at '}line ${position.line}, column ${position.column})`;
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((name) => `"${name}"`).join(', ');
    return `  - ${key}${where}: unknown key(s) ${names} (values not shown); remove or rename them, see docs/configuration.md for the keys this section takes`;
  }
  const section = issue.code === 'invalid_type' && (issue.expected === 'object' || issue.expected === 'array');
  return `  - ${key}${where}: got ${shownValue(key, valueAt(input, issue.path), section)}; expected ${issue.message.replace(/^Invalid input: expected /, '')}`;
}

/** Longest text echoed in a validation message: a longer one is more likely pasted content (a key, an env file). */
const MAX_SHOWN_TEXT = 64;

/**
 * @param section - a section (object or list) was expected: a text there may be anything pasted, the config file's
 *   whole content included, so only its kind is said.
 */
function shownValue(key: string, value: unknown, section: boolean): string {
  if (/secret|token|password|proxy|credential|certificate|key(?!sDir)/i.test(key) || key === '(root)') return kindOf(value);
  if (value === undefined) return 'nothing';
  if (value !== null && typeof value === 'object') return Array.isArray(value) ? 'a list' : 'an object';
  if (typeof value === 'string' && (section || value.length > MAX_SHOWN_TEXT || /[\r\n]/.test(value))) return kindOf(value);
  // A URL's user:password@, were one there (refused, but quoted by the refusal).
  return JSON.stringify(value).replace(/\/\/[^/@\s"]*@/g, '//…@');
}

/** What a value is, without it. */
function kindOf(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return `a text of ${value.length} characters (not shown)`;
  if (value !== null && typeof value === 'object') return Array.isArray(value) ? 'a list' : 'an object';
  return `a ${value === null ? 'null' : typeof value} (not shown)`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cursor: unknown = input;
  for (const segment of path) {
    if (cursor === null || typeof cursor !== 'object') return undefined;
    cursor = (cursor as Record<PropertyKey, unknown>)[segment];
  }
  return cursor;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cursor: Record<string, unknown> = target;
  path.forEach((segment, i) => {
    if (i === path.length - 1) {
      cursor[segment] = value;
      return;
    }
    const next = cursor[segment];
    if (next === null || typeof next !== 'object') cursor[segment] = /^\d+$/.test(path[i + 1] ?? '') ? [] : {};
    cursor = cursor[segment] as Record<string, unknown>;
  });
}

/**
 * An env value that looked like a number or boolean, where the key wants a text (a Group id `12345`, a connector named
 * `2024`), goes back to the text written: the file would take `name: "2024"`, and the env var has no quotes to say so.
 */
function restoreTexts(merged: Record<string, unknown>, fromEnv: ReadonlyMap<string, EnvSetting>): void {
  const probe = configSchema.safeParse(applyProfiles(structuredClone(merged)));
  if (probe.success) return;
  for (const issue of probe.error.issues) {
    if (issue.code !== 'invalid_type' || issue.expected !== 'string') continue;
    const setting = fromEnv.get(issue.path.map(String).join('.'));
    if (setting?.parsed) setPath(merged, setting.path, setting.raw);
  }
}

function parseScalar(raw: string): unknown {
  try {
    const parsed: unknown = JSON.parse(raw);
    return typeof parsed === 'string' ? raw : parsed;
  } catch {
    return raw;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** `--profile NAME` on the command line applies to the first connector (or the one chosen with --connector at index 0). */
export function profileFlag(flags: { profile?: string }): Record<string, unknown> {
  return flags.profile ? { 'connectors.0.profile': flags.profile } : {};
}
