/**
 * Compiles one column entry once: a built-in, a direct accessor (simple-path.ts) or fhirpath.js with the R4 model
 * (docs/mapping.md §12.2: always compile, never evaluate() per row). Parse errors and unknown %variables fail here, before
 * any network call, naming the file, the column and the expression.
 */
import { createRequire } from 'node:module';
import type { compile as fhirpathCompile, parse as fhirpathParse } from 'fhirpath';
import { BridgeError } from '../errors.js';
import { BUILTINS, type Scope, type WarningSink } from './builtins.js';
import { CONTEXT_VARIABLES, invalidOption } from './options.js';
import { compilePathCell, NEVER } from './path-code.js';
import { regexProblem } from './regex-safety.js';
import { fhirpathVariables, type RowContext, toCell } from './row-context.js';
import { parseSimplePath, pathAccessor, type SimplePath } from './simple-path.js';
import type { ExpressionEntry } from './spec.js';

export interface CompiledExpression {
  /** The FHIRPath text, or `builtin:<name>`. */
  readonly text: string;
  readonly scope: Scope;
  /**
   * Index into the value memo of its scope's resource (patient or user views); -1 for event-scoped expressions and
   * in columns memoised as a whole (compile.ts assigns it).
   */
  readonly slot: number;
  /** Warning emitted when this entry supplies the column value, as `<code>:<column>`. */
  readonly warn?: string;
  /** The %variables the expression reads (none for built-ins): an option no expression reads is a mistake. */
  readonly variables: readonly string[];
  /** The raw (unsanitised) cell value; '' when empty. */
  evaluate(ctx: RowContext, sink: WarningSink): string;
  /**
   * The same value for the generated row code (row-code.ts), undefined or '' when empty: the built-in itself or a
   * specialised path function, so each call site there sees one function.
   */
  readonly cell: (ctx: RowContext, sink: WarningSink) => string | undefined;
  /** Yields nothing whatever the row (path-code.ts NEVER): the row code leaves it out. */
  readonly never: boolean;
}

export interface ExpressionSite {
  readonly source: string;
  readonly column: string;
  readonly join: string | undefined;
  readonly options: Readonly<Record<string, unknown>>;
  /** The configuration's setting that gave an option (ResolvedOptions.settingOf); undefined: the mapping file's. */
  readonly settingOf?: (name: string) => string | undefined;
}

const PATIENT_VARIABLES = new Set(['patient', 'name', 'address']);
const USER_VARIABLES = new Set(['user', 'userName']);
/** fhirpath.js's own environment variables; %context/%resource/%rootResource are the AuditEvent. */
const ENGINE_VARIABLES = new Set(['ucum', 'sct', 'loinc', 'factory', 'terminologies']);
/** Engine variables that are objects with functions of their own (`%factory.Coding(…)`), not in fhirpath.js's table. */
const OBJECT_VARIABLES = new Set(['factory', 'terminologies']);
/** The FHIRPath functions whose first argument is a regular expression. */
const REGEX_FUNCTIONS = new Set(['matches', 'matchesFull', 'replaceMatches']);
const ROOT_VARIABLES = new Set(['context', 'resource', 'rootResource']);

interface FhirpathEngine {
  readonly parse: typeof fhirpathParse;
  readonly compile: typeof fhirpathCompile;
  /** fhirpath.js's R4 model (choice types, type hierarchy), for compile. */
  readonly r4: Parameters<typeof fhirpathCompile>[1];
}

let engine: FhirpathEngine | undefined;

/**
 * fhirpath.js and its R4 model, loaded on first use: the built-in mappings need only direct accessors (simple-path.ts),
 * and loading and warming them took ~0.14 s of every `bridge map` and a few MB of every process's peak RSS.
 */
function fhirpath(): FhirpathEngine {
  if (!engine) {
    const require = createRequire(import.meta.url);
    const { parse, compile } = require('fhirpath') as Pick<FhirpathEngine, 'parse' | 'compile'>;
    engine = { parse, compile, r4: require('fhirpath/fhir-context/r4') as FhirpathEngine['r4'] };
  }
  return engine;
}

export function compileExpression(entry: ExpressionEntry, site: ExpressionSite): CompiledExpression {
  if (typeof entry === 'object' && 'builtin' in entry) {
    const builtin = BUILTINS[entry.builtin];
    return {
      text: `builtin:${entry.builtin}`,
      scope: builtin.scope,
      slot: -1,
      ...(entry.warn ? { warn: `${entry.warn}:${site.column}` } : {}),
      variables: [],
      evaluate: (ctx, sink) => builtin.evaluate(ctx, sink) ?? '',
      cell: builtin.evaluate,
      never: false,
    };
  }
  const text = typeof entry === 'string' ? entry : entry.expression;
  const warnCode = typeof entry === 'string' ? undefined : entry.warn;
  checkRegexOptions(text, site);
  const path = parseSimplePath(text, site.options);
  const { scope, variables } = (path && analyseSimple(text, path, site)) ?? analyse(text, site);
  const warn = warnCode ? { warn: `${warnCode}:${site.column}` } : {};
  if (!path) {
    const evaluate = fhirpathEvaluator(text, site);
    return { text, scope, slot: -1, ...warn, variables, evaluate, cell: evaluate, never: false };
  }
  const simple = pathAccessor(path);
  const evaluate = (ctx: RowContext): string => toCell(simple(ctx), site.join);
  const code = compilePathCell(path, site.join);
  return { text, scope, slot: -1, ...warn, variables, evaluate, cell: code === NEVER ? evaluate : (code ?? evaluate), never: code === NEVER };
}

const REGEX_OPTION = /\b(matches|matchesFull|replaceMatches)\(\s*%([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * A site option an expression gives matches() (matchesFull(), replaceMatches()) must be a regular expression that cannot
 * backtrack for minutes (regex-safety.ts): found at load, naming the file, column and expression (and the configuration's
 * setting, when the value is the configuration's), not as an `expression-error` on every row or a stalled run.
 */
function checkRegexOptions(text: string, site: ExpressionSite): void {
  for (const [, fn, name] of text.replace(QUOTED, "''").matchAll(REGEX_OPTION)) {
    const option = site.options[name as string];
    const problem = typeof option === 'string' ? regexProblem(option) : undefined;
    if (problem === undefined) continue;
    const setting = site.settingOf?.(name as string);
    if (setting !== undefined) {
      throw invalidOption(site.source, name as string, `is ${problem}; column "${site.column}" passes it to ${fn}() in \`${text}\``, setting);
    }
    throw invalidExpression(site, text, `passes ${fn}() the option %${name}, which is ${problem}`);
  }
}

function fhirpathEvaluator(text: string, site: ExpressionSite): (ctx: RowContext, sink: WarningSink) => string {
  const { compile, r4 } = fhirpath();
  const compiled = compile(text, r4);
  // fhirpath.js reports unknown functions only when it evaluates them: a dry run over an empty event finds them now.
  const empty = Object.fromEntries(CONTEXT_VARIABLES.map((name) => [name, []]));
  try {
    compiled({ resourceType: 'AuditEvent' }, { ...site.options, ...empty });
  } catch (cause) {
    throw invalidExpression(site, text, `fails on an empty event: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
  }
  return (ctx, sink) => {
    try {
      const result: unknown = compiled(ctx.event, fhirpathVariables(ctx));
      return Array.isArray(result) ? toCell(result, site.join) : '';
    } catch {
      // A runtime type error (e.g. a singleton expected) must not stop the run; the code says where to look.
      sink.warn('expression-error');
      return '';
    }
  };
}

interface AstNode {
  readonly type: string;
  readonly text?: string;
  readonly atRoot?: number;
  readonly children?: readonly AstNode[];
}

/** Parses once for errors, then derives the cache scope from the %variables and root members it uses. */
export function analyse(text: string, site: ExpressionSite): { scope: Scope; variables: string[] } {
  let ast: AstNode;
  try {
    ast = fhirpath().parse(text) as AstNode;
  } catch (cause) {
    throw invalidExpression(site, text, `does not parse: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
  }
  const used = new Set<string>();
  const calls: AstNode[] = [];
  const objectCalls = new Set<AstNode>();
  let usesRoot = false;
  // A term that starts a path outside any function's arguments reads the root (the AuditEvent) when it is a member
  // (`action`), a function (`iif(…)`, `extension('url')`, `where(…)`: their input is the root) or `$this`: such an
  // expression is no patient's or user's alone, and must not be memoised for them. Inside arguments such a term reads
  // the function's input, which the path before it says.
  const walk = (node: AstNode, inArguments: boolean): void => {
    if (node.type === 'ExternalConstantTerm' && node.text) used.add(node.text.replace(/^[`'"]|[`'"]$/g, ''));
    if (node.type === 'MemberInvocation' && node.atRoot === 1) usesRoot = true;
    if (!inArguments && node.type === 'InvocationTerm' && node.children?.some((child) => ROOT_TERMS.has(child.type))) usesRoot = true;
    if (node.type === 'FunctionInvocation' && !objectCalls.has(node)) calls.push(node);
    const called = objectCall(node);
    if (called) objectCalls.add(called);
    for (const child of node.children ?? []) walk(child, inArguments || node.type === 'ParamList');
  };
  walk(ast, false);
  for (const name of used) {
    const known =
      (CONTEXT_VARIABLES as readonly string[]).includes(name) ||
      Object.hasOwn(site.options, name) ||
      ENGINE_VARIABLES.has(name) ||
      ROOT_VARIABLES.has(name) ||
      name.startsWith('vs-') ||
      name.startsWith('ext-');
    if (!known) throw invalidExpression(site, text, `uses the unknown variable %${name}`);
    if (ROOT_VARIABLES.has(name)) usesRoot = true;
  }
  for (const call of calls) checkCall(call, text, site);
  return { scope: scopeOf([...used], usesRoot), variables: [...used] };
}

/** The function `node` calls on %factory or %terminologies (`%factory.Coding(…)`): fhirpath.js's table lacks it. */
function objectCall(node: AstNode): AstNode | undefined {
  if (node.type !== 'InvocationExpression') return undefined;
  const [target, invoked] = node.children ?? [];
  const constant = target?.type === 'TermExpression' ? target.children?.[0] : undefined;
  const isObject = constant?.type === 'ExternalConstantTerm' && OBJECT_VARIABLES.has(constant.text ?? '');
  return isObject && invoked?.type === 'FunctionInvocation' ? invoked : undefined;
}

/**
 * A function call fhirpath.js would fail on, or skip without a word, at any depth: fhirpath.js reports an unknown
 * function, or one given the wrong number of arguments, only when it calls it, and never calls what a where(), select()
 * or iif() branch holds while the dry run's empty event gives it nothing (`where(matchs(%loginRegex))` passed the load,
 * then left the column empty on every row). A literal regular expression given to matches() is checked as an option is.
 */
function checkCall(call: AstNode, text: string, site: ExpressionSite): void {
  const functn = call.children?.[0];
  const name = functn?.text ?? '';
  const args = functn?.children?.find((child) => child.type === 'ParamList')?.children ?? [];
  const problem = functionProblem(name, args.length);
  if (problem !== undefined) throw invalidExpression(site, text, problem);
  const pattern = REGEX_FUNCTIONS.has(name) ? literalText(args[0]) : undefined;
  const regex = pattern === undefined ? undefined : regexProblem(pattern);
  if (regex !== undefined) throw invalidExpression(site, text, `passes ${name}() a pattern that is ${regex}`);
}

/** The string a literal argument (`'^E[0-9]+$'`) stands for, escapes read as fhirpath.js reads them; else undefined. */
function literalText(arg: AstNode | undefined): string | undefined {
  const literal = arg?.type === 'TermExpression' ? arg.children?.[0] : undefined;
  if (literal?.type !== 'LiteralTerm' || literal.children?.[0]?.type !== 'StringLiteral' || arg?.text === undefined) return undefined;
  const { compile, r4 } = fhirpath();
  const [value] = compile(arg.text, r4)({}, {}) as unknown[];
  return typeof value === 'string' ? value : undefined;
}

/** functionProblem's answers by `name/arguments`: each is found once per process. */
const functionProblems = new Map<string, string | undefined>();

/**
 * What is wrong with calling `name` with `count` arguments in fhirpath.js, undefined when nothing is. fhirpath.js does
 * not export its function table, so a call of it on an empty collection asks: with arguments that fail when read (an
 * undefined %variable), a known function stops there without running; an unknown one throws "Not implemented"; one given
 * a number of arguments it does not take says so in console.warn (caught here) and yields nothing, or throws.
 */
function functionProblem(name: string, count: number): string | undefined {
  const key = `${name}/${count}`;
  if (!functionProblems.has(key)) functionProblems.set(key, probeFunction(name, count));
  return functionProblems.get(key);
}

function probeFunction(name: string, count: number): string | undefined {
  const { compile, r4 } = fhirpath();
  const args = Array.from({ length: count }, () => `%${PROBE_VARIABLE}`).join(', ');
  const unknown = `calls the unknown function ${name}() (FHIRPath names are case-sensitive: matches(), startsWith(), where() …)`;
  const arity = `calls ${name}() with ${count} argument${count === 1 ? '' : 's'}, a number it does not take`;
  let warned = false;
  const warn = console.warn;
  // fhirpath.js reports a wrong number of arguments only this way; synchronous, so nothing else can warn meanwhile.
  console.warn = () => {
    warned = true;
  };
  try {
    compile(`{}.${name}(${args})`, r4)({}, {});
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : '';
    if (message.startsWith('Not implemented:')) return unknown;
    if (message.endsWith('expects no params')) return arity;
    if (message.includes('asynchronous function')) {
      return `calls ${name}(), which fhirpath.js runs only asynchronously (it fetches); the bridge follows references itself: read %patient, %user or %role (docs/mapping.md §3.3)`;
    }
    // The probe's own undefined argument, or the function refusing an empty input: it exists.
    return undefined;
  } finally {
    console.warn = warn;
  }
  return warned ? arity : undefined;
}

/** A %variable no environment holds: a known function's arguments fail on it before the function runs. */
const PROBE_VARIABLE = '__bridgeProbe';

/** The terms that start a path from the expression's input (the root, outside any function's arguments). */
const ROOT_TERMS: ReadonlySet<string> = new Set(['MemberInvocation', 'FunctionInvocation', 'ThisInvocation', 'IndexInvocation', 'TotalInvocation']);

const QUOTED = /'[^'\\]*'/g;
const VARIABLE = /%([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * analyse() for a path in the direct-accessor subset, without fhirpath.js: its only %names are the root and the
 * options of `in`/`matches`, and it reads the event's root only when it starts with a member. Undefined when a name
 * is neither a context variable nor an option, so analyse() reports it.
 */
export function analyseSimple(text: string, path: SimplePath, site: ExpressionSite): { scope: Scope; variables: string[] } | undefined {
  const used = [...new Set(Array.from(text.replace(QUOTED, "''").matchAll(VARIABLE), (match) => match[1] as string))];
  const known = (name: string): boolean => (CONTEXT_VARIABLES as readonly string[]).includes(name) || Object.hasOwn(site.options, name);
  if (!used.every(known)) return undefined;
  return { scope: scopeOf(used, path.root.kind === 'event'), variables: used };
}

function scopeOf(used: readonly string[], usesRoot: boolean): Scope {
  const rowVariables = used.filter((name) => (CONTEXT_VARIABLES as readonly string[]).includes(name));
  if (usesRoot || rowVariables.length === 0) return 'event';
  if (rowVariables.every((name) => PATIENT_VARIABLES.has(name))) return 'patient';
  if (rowVariables.every((name) => USER_VARIABLES.has(name))) return 'user';
  return 'event';
}

export function invalidExpression(site: { source: string; column: string }, expression: string, what: string, cause?: unknown): BridgeError {
  return new BridgeError('BRG_ERR_MAPPING_INVALID', `Mapping file ${site.source}, column "${site.column}": expression \`${expression}\` ${what}.`, {
    ...(cause === undefined ? {} : { cause }),
    details: { file: site.source, column: site.column, expression },
  });
}
