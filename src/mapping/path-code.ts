/**
 * A simple path (simple-path.ts) as one specialised cell function: what `toCell(accessor(ctx), join)` returns, computed
 * without building the intermediate collections. The path is walked depth first, which visits items in the order
 * FHIRPath's step-by-step collections hold them, so `first()` is the first item to reach it, `skip(n)` drops the
 * first n, and without `join` the first non-empty value ends the walk. `last()` needs the whole collection: such
 * paths keep the accessor.
 *
 * The source is generated (`new Function`) so every property read is a named load V8 can specialise. Nothing from the
 * mapping file is spliced in as code: member names are checked to be identifiers and written with JSON.stringify;
 * every other value (literals, sets, regexes, counts, the join text) reaches the function through its parameters.
 */
import type { RowContext } from './row-context.js';
import { CONTEXT_GETTERS } from './row-context.js';
import { choiceValue, type PathStep, type Predicate, predicateFunction, type SimplePath } from './simple-path.js';

/** The raw (unsanitised) cell value; '' when the path yields no primitive. */
export type PathCell = (ctx: RowContext) => string;

/** The path yields nothing whatever the row, e.g. `where(system in %loginSystems)` while that option is empty. */
export const NEVER = 'never';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The specialised cell function, NEVER, or undefined when the path needs the collection accessor (`last()`). */
export function compilePathCell(path: SimplePath, join: string | undefined): PathCell | typeof NEVER | undefined {
  if (yieldsNothing(path)) return NEVER;
  if (path.steps.some((step) => step.kind === 'last')) return undefined;
  const emitter = new Emitter(path.steps, join !== undefined);
  const root = path.root;
  const start = root.kind === 'event' ? `const x = ctx.event;\n${emitter.steps(0, 'x')}` : emitter.each(root.kind === 'variable' ? 'G(ctx)' : 'C', 0);
  const source = `"use strict";\nreturn function pathCell(ctx) {\n${emitter.declarations.join('\n')}\n${join === undefined ? '' : "let out = '';\n"}${start}\nreturn ${join === undefined ? "''" : 'out'};\n};`;
  const getter = root.kind === 'variable' ? CONTEXT_GETTERS[root.name] : undefined;
  const constant = root.kind === 'constant' ? [...root.items] : undefined;
  const factory = new Function('G', 'C', 'P', 'K', 'J', 'CH', source) as (
    getter: ((ctx: RowContext) => unknown) | undefined,
    constant: unknown[] | undefined,
    predicates: Predicate[],
    counts: number[],
    join: string | undefined,
    choice: typeof choiceValue,
  ) => PathCell;
  return factory(getter, constant, emitter.predicates, emitter.counts, join, choiceValue);
}

/** An `in` over an empty option, or an option root with no value, can never match. */
function yieldsNothing(path: SimplePath): boolean {
  if (path.root.kind === 'constant' && path.root.items.length === 0) return true;
  return path.steps.some((step) => step.kind === 'where' && step.predicates.some((predicate) => predicate.kind === 'in' && predicate.allowed.size === 0));
}

class Emitter {
  readonly declarations: string[] = [];
  readonly predicates: Predicate[] = [];
  readonly counts: number[] = [];
  private names = 0;

  constructor(
    private readonly path: readonly PathStep[],
    private readonly joined: boolean,
  ) {}

  /** Code that runs the steps from `index` on each item of `value` (a single value or an array, nulls skipped). */
  each(value: string, index: number): string {
    const m = this.fresh('m');
    const list = this.fresh('a');
    const n = this.fresh('n');
    const j = this.fresh('j');
    const x = this.fresh('x');
    return `const ${m} = ${value};
if (${m} !== undefined && ${m} !== null) {
const ${list} = Array.isArray(${m});
const ${n} = ${list} ? ${m}.length : 1;
for (let ${j} = 0; ${j} < ${n}; ${j} += 1) {
const ${x} = ${list} ? ${m}[${j}] : ${m};
if (${x} !== undefined && ${x} !== null) {
${this.steps(index, x)}
}
}
}`;
  }

  /** Code that runs the steps from `index` on the one item in variable `x`. */
  steps(index: number, x: string): string {
    const step = this.path[index];
    if (step === undefined) return this.terminal(x);
    switch (step.kind) {
      case 'member': {
        if (!IDENTIFIER.test(step.name)) throw new Error(`not an identifier: ${JSON.stringify(step.name)}`);
        const key = JSON.stringify(step.name);
        const value = this.fresh('v');
        const choice = step.choice ? `if (${value} === undefined) ${value} = CH(${x}, ${key});\n` : '';
        return `if (typeof ${x} === 'object' && !Array.isArray(${x})) {\nlet ${value} = ${x}[${key}];\n${choice}${this.each(value, index + 1)}\n}`;
      }
      case 'first': {
        const taken = this.fresh('f');
        this.declarations.push(`let ${taken} = false;`);
        return `if (!${taken}) {\n${taken} = true;\n${this.steps(index + 1, x)}\n}`;
      }
      case 'skip': {
        const seen = this.fresh('k');
        this.declarations.push(`let ${seen} = 0;`);
        this.counts.push(step.count);
        return `if (${seen} < K[${this.counts.length - 1}]) ${seen} += 1;\nelse {\n${this.steps(index + 1, x)}\n}`;
      }
      case 'where': {
        const tests = step.predicates.map((predicate) => {
          this.predicates.push(predicateFunction(predicate));
          return `P[${this.predicates.length - 1}](${x})`;
        });
        return `if (${tests.join(' && ')}) {\n${this.steps(index + 1, x)}\n}`;
      }
      case 'last':
        throw new Error('last() is not compiled to code');
    }
  }

  /** toCell (row-context.ts): strings, numbers and booleans are values; the first non-empty one, or all joined. */
  private terminal(x: string): string {
    const text = this.fresh('t');
    const value = `const ${text} = typeof ${x} === 'string' ? ${x} : typeof ${x} === 'number' || typeof ${x} === 'boolean' ? String(${x}) : '';`;
    return this.joined ? `${value}\nif (${text} !== '') out = out === '' ? ${text} : out + J + ${text};` : `${value}\nif (${text} !== '') return ${text};`;
  }

  private fresh(prefix: string): string {
    this.names += 1;
    return `${prefix}${this.names}`;
  }
}
