/**
 * Direct accessors for the FHIRPath subset mapping files mostly use, so the hot path skips fhirpath.js node wrapping
 * (docs/mapping.md §12.2: a compiled `where(...).first()` runs at ~150k ops/s, too slow for 22 columns × 100k rows/s).
 * Supported: `%var` or a root member, then `.member`, `.first()`, `.last()`, `.skip(n)` and `.where(…)` over a
 * conjunction (`and`) of `m = 'lit'`, `m in %option`, `matches(%option)`, `m.empty()`, `m.exists()`. A choice-type
 * member (`value` for valueString …) is found by its JSON suffix, as FHIRPath does with the model. Anything else is
 * left to fhirpath.js; test/mapping/simple-path.test.ts checks that both engines agree.
 *
 * The text is parsed once into a SimplePath; `compileSimplePath` turns it into a collection accessor (FHIRPath's
 * meaning, step by step) and path-code.ts into the specialised cell function the row code calls.
 */
import { CHOICE_ELEMENTS } from './choice-elements.js';
import { CONTEXT_GETTERS, type ContextVariable, type RowContext } from './row-context.js';

export type Accessor = (ctx: RowContext) => unknown[];
export type Predicate = (item: unknown) => boolean;

export type PathRoot =
  /** A root member (`type.code`): the first step reads it from the AuditEvent. */
  | { readonly kind: 'event' }
  | { readonly kind: 'variable'; readonly name: ContextVariable }
  /** An option variable: its value, as a collection, fixed at compile time. */
  | { readonly kind: 'constant'; readonly items: readonly unknown[] };

export type PathStep =
  | { readonly kind: 'member'; readonly name: string; readonly choice: boolean }
  | { readonly kind: 'first' }
  | { readonly kind: 'last' }
  | { readonly kind: 'skip'; readonly count: number }
  | { readonly kind: 'where'; readonly predicates: readonly PathPredicate[] };

export type PathPredicate =
  | { readonly kind: 'equals'; readonly name: string; readonly choice: boolean; readonly literal: string }
  | { readonly kind: 'in'; readonly name: string; readonly choice: boolean; readonly allowed: ReadonlySet<string> }
  | { readonly kind: 'matches'; readonly regex: RegExp }
  | { readonly kind: 'presence'; readonly name: string; readonly choice: boolean; readonly exists: boolean };

export interface SimplePath {
  readonly root: PathRoot;
  readonly steps: readonly PathStep[];
}

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';
/**
 * FHIRPath's reserved words its grammar does not take as identifiers (as, contains, in and is it does): a path using
 * one as a member is left to fhirpath.js, which refuses it.
 */
const KEYWORDS = new Set(['and', 'or', 'xor', 'implies', 'div', 'mod', 'true', 'false']);
const ROOT = new RegExp(`^(%?)(${IDENT})`);
const WHERE = /^where\(((?:[^()']|'[^'\\]*'|\((?:[^()']|'[^'\\]*')*\))*)\)/;
type Options = Readonly<Record<string, unknown>>;
const SEGMENTS: ReadonlyArray<[RegExp, (m: RegExpExecArray, options: Options) => PathStep | undefined]> = [
  [/^first\(\)/, () => ({ kind: 'first' })],
  [/^last\(\)/, () => ({ kind: 'last' })],
  [/^skip\((\d+)\)/, (m) => ({ kind: 'skip', count: Number(m[1]) })],
  [WHERE, (m, options) => where(m[1] as string, options)],
  [new RegExp(`^(${IDENT})(?![A-Za-z0-9_(])`), (m) => (KEYWORDS.has(m[1] as string) ? undefined : memberStep(m[1] as string))],
];
const PREDICATES: ReadonlyArray<[RegExp, (m: RegExpExecArray, options: Options) => PathPredicate | undefined]> = [
  [new RegExp(`^(${IDENT})\\s*=\\s*'([^'\\\\]*)'$`), (m) => ({ kind: 'equals', ...named(m[1] as string), literal: m[2] as string })],
  [new RegExp(`^(${IDENT})\\s+in\\s+%(${IDENT})$`), (m, options) => within(m[1] as string, options[m[2] as string])],
  [new RegExp(`^matches\\(%(${IDENT})\\)$`), (m, options) => matches(options[m[1] as string])],
  [new RegExp(`^(${IDENT})\\.(empty|exists)\\(\\)$`), (m) => ({ kind: 'presence', ...named(m[1] as string), exists: m[2] === 'exists' })],
];

/**
 * Parses `text` into a SimplePath, or returns undefined when it is outside the subset.
 * @param options - the resolved option variables (constants at compile time).
 */
export function parseSimplePath(text: string, options: Options): SimplePath | undefined {
  const root = ROOT.exec(text);
  if (!root) return undefined;
  const name = root[2] as string;
  const steps: PathStep[] = [];
  let start: PathRoot;
  if (root[1] !== '%') {
    // A capitalised root is a type name in FHIRPath (AuditEvent.type); leave those to fhirpath.js.
    if (!/^[a-z]/.test(name) || KEYWORDS.has(name)) return undefined;
    start = { kind: 'event' };
    steps.push(memberStep(name));
  } else if (Object.hasOwn(CONTEXT_GETTERS, name)) {
    start = { kind: 'variable', name: name as ContextVariable };
  } else if (Object.hasOwn(options, name)) {
    start = { kind: 'constant', items: collection(options[name]) };
  } else return undefined;
  let rest = text.slice(root[0].length);
  while (rest.length > 0) {
    if (!rest.startsWith('.')) return undefined;
    rest = rest.slice(1);
    const step = matchSegment(rest, options);
    if (!step) return undefined;
    steps.push(step.step);
    rest = rest.slice(step.length);
  }
  return { root: start, steps };
}

/** Compiles `text` to a direct accessor (the collection FHIRPath yields), or undefined when it is outside the subset. */
export function compileSimplePath(text: string, options: Options): Accessor | undefined {
  const path = parseSimplePath(text, options);
  return path ? pathAccessor(path) : undefined;
}

/** The collection accessor of a parsed path: FHIRPath's meaning, one step at a time. */
export function pathAccessor(path: SimplePath): Accessor {
  const start = rootAccessor(path.root);
  const steps = path.steps.map(stepFunction);
  return (ctx) => {
    let items = start(ctx);
    for (const step of steps) {
      if (items.length === 0) return items;
      items = step(items);
    }
    return items;
  };
}

function rootAccessor(root: PathRoot): Accessor {
  switch (root.kind) {
    case 'event':
      return (ctx) => [ctx.event];
    case 'variable': {
      const get = CONTEXT_GETTERS[root.name];
      return (ctx) => collection(get(ctx));
    }
    case 'constant': {
      const items = [...root.items];
      return () => items;
    }
  }
}

function stepFunction(step: PathStep): (items: unknown[]) => unknown[] {
  switch (step.kind) {
    case 'first':
      return (items) => items.slice(0, 1);
    case 'last':
      return (items) => items.slice(-1);
    case 'skip':
      return (items) => items.slice(step.count);
    case 'member':
      return (items) => {
        const out: unknown[] = [];
        for (const item of items) {
          const value = memberValue(item, step.name, step.choice);
          if (value === undefined || value === null) continue;
          if (Array.isArray(value)) {
            for (const element of value) if (element !== undefined && element !== null) out.push(element);
          } else out.push(value);
        }
        return out;
      };
    case 'where': {
      const tests = step.predicates.map(predicateFunction);
      return (items) => items.filter((item) => tests.every((test) => test(item)));
    }
  }
}

function matchSegment(rest: string, options: Options): { step: PathStep; length: number } | undefined {
  for (const [pattern, build] of SEGMENTS) {
    const m = pattern.exec(rest);
    if (!m) continue;
    const step = build(m, options);
    return step ? { step, length: m[0].length } : undefined;
  }
  return undefined;
}

function collection(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value.filter((item) => item !== undefined && item !== null) : [value];
}

function named(name: string): { name: string; choice: boolean } {
  return { name, choice: CHOICE_ELEMENTS.has(name) };
}

function memberStep(name: string): PathStep {
  return { kind: 'member', ...named(name) };
}

/** The raw member of one item (null/undefined when absent); only objects have members. */
function memberValue(item: unknown, name: string, choice: boolean): unknown {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) return undefined;
  const value = (item as Record<string, unknown>)[name];
  return value === undefined && choice ? choiceValue(item as Record<string, unknown>, name) : value;
}

/** `value` finds `valueString`, `valueReference` …: JSON spells a choice element with its type suffix. */
export function choiceValue(item: Record<string, unknown>, name: string): unknown {
  for (const key of Object.keys(item)) {
    if (key.length > name.length && key.startsWith(name) && /[A-Z]/.test(key.charAt(name.length))) return item[key];
  }
  return undefined;
}

/** `where(a and b …)`; undefined (leave it to fhirpath.js) when any part is outside the subset. */
function where(condition: string, options: Options): PathStep | undefined {
  const predicates: PathPredicate[] = [];
  for (const part of splitAnd(condition)) {
    const predicate = predicateOf(part.trim(), options);
    if (!predicate || ('name' in predicate && KEYWORDS.has(predicate.name))) return undefined;
    predicates.push(predicate);
  }
  return { kind: 'where', predicates };
}

function splitAnd(condition: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let index = 0; index < condition.length; index += 1) {
    if (condition[index] === "'") quoted = !quoted;
    if (!quoted && condition.startsWith(' and ', index)) {
      parts.push(condition.slice(start, index));
      start = index + ' and '.length;
    }
  }
  parts.push(condition.slice(start));
  return parts;
}

function predicateOf(text: string, options: Options): PathPredicate | undefined {
  for (const [pattern, build] of PREDICATES) {
    const m = pattern.exec(text);
    if (m) return build(m, options);
  }
  return undefined;
}

function within(name: string, option: unknown): PathPredicate | undefined {
  const allowed = collection(option);
  if (!allowed.every((value) => typeof value === 'string')) return undefined;
  return { kind: 'in', ...named(name), allowed: new Set(allowed as string[]) };
}

/** Same flags as fhirpath.js matches(): unanchored, 's' and 'u'. */
function matches(option: unknown): PathPredicate | undefined {
  if (typeof option !== 'string') return undefined;
  return { kind: 'matches', regex: new RegExp(option, 'su') };
}

/** Marks "not exactly one value" for singleMember. */
const NOT_ONE: unique symbol = Symbol('not exactly one value');

/** The member's only value (FHIRPath `=` and `in` compare singletons), or NOT_ONE when it has none or several. */
function singleMember(item: unknown, name: string, choice: boolean): unknown {
  const value = memberValue(item, name, choice);
  if (value === undefined || value === null) return NOT_ONE;
  if (!Array.isArray(value)) return value;
  let found: unknown = NOT_ONE;
  for (const element of value) {
    if (element === undefined || element === null) continue;
    if (found !== NOT_ONE) return NOT_ONE;
    found = element;
  }
  return found;
}

function hasMember(item: unknown, name: string, choice: boolean): boolean {
  const value = memberValue(item, name, choice);
  if (value === undefined || value === null) return false;
  return !Array.isArray(value) || value.some((element) => element !== undefined && element !== null);
}

/** One where() condition as a test of one item; allocates nothing (it runs per item per row). */
export function predicateFunction(predicate: PathPredicate): Predicate {
  switch (predicate.kind) {
    case 'equals': {
      const { name, choice, literal } = predicate;
      return (item) => singleMember(item, name, choice) === literal;
    }
    case 'in': {
      const { name, choice, allowed } = predicate;
      return (item) => {
        const value = singleMember(item, name, choice);
        return typeof value === 'string' && allowed.has(value);
      };
    }
    case 'matches': {
      const regex = predicate.regex;
      return (item) => typeof item === 'string' && regex.test(item);
    }
    case 'presence': {
      const { name, choice, exists } = predicate;
      return (item) => hasMember(item, name, choice) === exists;
    }
  }
}
