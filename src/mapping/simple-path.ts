/**
 * Direct accessors for the FHIRPath subset mapping files mostly use, so the hot path skips fhirpath.js node wrapping
 * (docs/mapping.md §12.2: a compiled `where(...).first()` runs at ~150k ops/s, too slow for 22 columns × 100k rows/s).
 * Supported: `%var` or a root member, then `.member`, `.first()`, `.last()`, `.skip(n)` and `.where(…)` over a
 * conjunction (`and`) of `m = 'lit'`, `m in %option`, `matches(%option)`, `m.empty()`, `m.exists()`. A choice-type
 * member (`value` for valueString …) is found by its JSON suffix, as FHIRPath does with the model. Anything else is
 * left to fhirpath.js; test/mapping/simple-path.test.ts checks that both engines agree.
 */
import r4 from 'fhirpath/fhir-context/r4';
import { CONTEXT_GETTERS, type ContextVariable, type RowContext } from './row-context.js';

type Step = (items: unknown[]) => unknown[];
type Predicate = (item: unknown) => boolean;
export type Accessor = (ctx: RowContext) => unknown[];

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';
const ROOT = new RegExp(`^(%?)(${IDENT})`);
const WHERE = /^where\(((?:[^()']|'[^'\\]*'|\((?:[^()']|'[^'\\]*')*\))*)\)/;
const SEGMENTS: ReadonlyArray<[RegExp, (m: RegExpExecArray, options: Readonly<Record<string, unknown>>) => Step | undefined]> = [
  [/^first\(\)/, () => (items) => items.slice(0, 1)],
  [/^last\(\)/, () => (items) => items.slice(-1)],
  [/^skip\((\d+)\)/, (m) => (items) => items.slice(Number(m[1]))],
  [WHERE, (m, options) => where(m[1] as string, options)],
  [new RegExp(`^(${IDENT})(?![A-Za-z0-9_(])`), (m) => member(m[1] as string)],
];
const PREDICATES: ReadonlyArray<[RegExp, (m: RegExpExecArray, options: Readonly<Record<string, unknown>>) => Predicate | undefined]> = [
  [new RegExp(`^(${IDENT})\\s*=\\s*'([^'\\\\]*)'$`), (m) => equals(m[1] as string, m[2] as string)],
  [new RegExp(`^(${IDENT})\\s+in\\s+%(${IDENT})$`), (m, options) => within(m[1] as string, options[m[2] as string])],
  [new RegExp(`^matches\\(%(${IDENT})\\)$`), (m, options) => matches(options[m[1] as string])],
  [new RegExp(`^(${IDENT})\\.(empty|exists)\\(\\)$`), (m) => presence(m[1] as string, m[2] === 'exists')],
];

/** Element names that are choice types somewhere in R4 (value[x], deceased[x] …): looked up by JSON suffix when absent. */
const CHOICE_BASES = new Set(Object.keys(r4.choiceTypePaths).map((path) => path.slice(path.lastIndexOf('.') + 1)));

/**
 * Compiles `text` to a direct accessor, or returns undefined when it is outside the subset.
 * @param options - the resolved option variables (constants at compile time).
 */
export function compileSimplePath(text: string, options: Readonly<Record<string, unknown>>): Accessor | undefined {
  const root = ROOT.exec(text);
  if (!root) return undefined;
  const start = rootAccessor(root[1] === '%', root[2] as string, options);
  if (!start) return undefined;
  const steps: Step[] = [];
  let rest = text.slice(root[0].length);
  while (rest.length > 0) {
    if (!rest.startsWith('.')) return undefined;
    rest = rest.slice(1);
    const step = matchSegment(rest, options);
    if (!step) return undefined;
    steps.push(step.step);
    rest = rest.slice(step.length);
  }
  return (ctx) => {
    let items = start(ctx);
    for (const step of steps) {
      if (items.length === 0) return items;
      items = step(items);
    }
    return items;
  };
}

function rootAccessor(isVariable: boolean, name: string, options: Readonly<Record<string, unknown>>): Accessor | undefined {
  if (!isVariable) {
    // A capitalised root is a type name in FHIRPath (AuditEvent.type); leave those to fhirpath.js.
    if (!/^[a-z]/.test(name)) return undefined;
    const read = member(name);
    return (ctx) => read([ctx.event]);
  }
  if (name in CONTEXT_GETTERS) {
    const get = CONTEXT_GETTERS[name as ContextVariable];
    return (ctx) => collection(get(ctx));
  }
  if (!(name in options)) return undefined;
  const constant = collection(options[name]);
  return () => constant;
}

function matchSegment(rest: string, options: Readonly<Record<string, unknown>>): { step: Step; length: number } | undefined {
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

function member(name: string): Step {
  const choice = CHOICE_BASES.has(name);
  return (items) => {
    const out: unknown[] = [];
    for (const item of items) {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) continue;
      let value = (item as Record<string, unknown>)[name];
      if (value === undefined && choice) value = choiceValue(item as Record<string, unknown>, name);
      if (value === undefined || value === null) continue;
      if (Array.isArray(value)) {
        for (const element of value) if (element !== undefined && element !== null) out.push(element);
      } else out.push(value);
    }
    return out;
  };
}

/** `value` finds `valueString`, `valueReference` …: JSON spells a choice element with its type suffix. */
function choiceValue(item: Record<string, unknown>, name: string): unknown {
  for (const key of Object.keys(item)) {
    if (key.length > name.length && key.startsWith(name) && /[A-Z]/.test(key.charAt(name.length))) return item[key];
  }
  return undefined;
}

/** `where(a and b …)`; undefined (leave it to fhirpath.js) when any part is outside the subset. */
function where(condition: string, options: Readonly<Record<string, unknown>>): Step | undefined {
  const predicates: Predicate[] = [];
  for (const part of splitAnd(condition)) {
    const predicate = predicateOf(part.trim(), options);
    if (!predicate) return undefined;
    predicates.push(predicate);
  }
  return (items) => items.filter((item) => predicates.every((predicate) => predicate(item)));
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

function predicateOf(text: string, options: Readonly<Record<string, unknown>>): Predicate | undefined {
  for (const [pattern, build] of PREDICATES) {
    const m = pattern.exec(text);
    if (m) return build(m, options);
  }
  return undefined;
}

/** FHIRPath `=` on a singleton; an empty or multi-valued member is not equal. */
function equals(name: string, literal: string): Predicate {
  const read = member(name);
  return (item) => {
    const values = read([item]);
    return values.length === 1 && values[0] === literal;
  };
}

function within(name: string, option: unknown): Predicate | undefined {
  const allowed = collection(option);
  if (!allowed.every((value) => typeof value === 'string')) return undefined;
  const set = new Set(allowed as string[]);
  const read = member(name);
  return (item) => {
    const values = read([item]);
    return values.length === 1 && typeof values[0] === 'string' && set.has(values[0]);
  };
}

/** Same flags as fhirpath.js matches(): unanchored, 's' and 'u'. */
function matches(option: unknown): Predicate | undefined {
  if (typeof option !== 'string') return undefined;
  const regex = new RegExp(option, 'su');
  return (item) => typeof item === 'string' && regex.test(item);
}

function presence(name: string, exists: boolean): Predicate {
  const read = member(name);
  return (item) => (read([item]).length > 0) === exists;
}
