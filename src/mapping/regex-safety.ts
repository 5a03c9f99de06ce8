/**
 * Regular expressions a site writes (loginRegex, an option or a literal given to matches()) run on every row, on values
 * the EHR sends. JavaScript's engine backtracks: a quantifier inside a quantified group (`^(a+)+$`, `(\w+\s?)*$`) can try
 * every way of splitting a long value among the repetitions, and one 40-character altId then stalls a run for minutes.
 * Such patterns are refused when the mapping is loaded (docs/mapping.md §12.2), so the fix is asked of the one who wrote
 * them, not found in a run that hangs.
 */

/** Flags the mapping engine gives every regular expression: those of fhirpath.js's matches(). */
export const REGEX_FLAGS = 'su';

/**
 * What is wrong with `pattern` as a mapping's regular expression, as a phrase that follows "is" / "which is" (undefined
 * when nothing is): not a regular expression, or one with nested repetition.
 */
export function regexProblem(pattern: string): string | undefined {
  try {
    new RegExp(pattern, REGEX_FLAGS);
  } catch (cause) {
    return `not a regular expression (${(cause as Error).message})`;
  }
  const nested = nestedRepetition(pattern);
  if (nested === undefined) return undefined;
  return (
    `a regular expression with a repeated part inside a repeated group (\`${nested}\`), which can backtrack for minutes on a long value; ` +
    'repeat the group or its content, not both (e.g. `^a+$` for `^(a+)+$`, `^[\\w\\s]*$` for `^(\\w+\\s?)*$`)'
  );
}

interface Repetition {
  /** The text holds a quantifier that repeats (maximum above one). */
  repeats: boolean;
  /** … a quantifier whose count varies (`*`, `+`, `?`, `{2,9}`; not `{3}`): a value can be split among its repetitions more than one way. */
  varies: boolean;
}

interface Atom extends Repetition {
  readonly start: number;
  /** A group that begins with a separator none of its repeated parts can match (`(\.[a-z]+)+`): see `separated`. */
  readonly separated?: boolean;
}

/** What a group's body holds, for `separated`. */
interface Group extends Atom {
  /** The first atom's text, and whether a quantifier applied to it. */
  first?: string;
  firstQuantified: boolean;
  /** Its single-character atoms (a character, an escape, a class, `.`), at any depth, in order. */
  readonly atoms: string[];
  /** A group repeated inside it, or an alternative (`|`): nothing is known of where an iteration starts. */
  open: boolean;
}

function newGroup(start: number): Group {
  return { start, repeats: false, varies: false, firstQuantified: false, atoms: [], open: false };
}

/**
 * The first quantified atom that repeats a part whose own count varies (`(a+)+`, `(a*)*`, `(a+){2,9}`, `(a{2,9})*`,
 * `(a{1,30}){1,30}`, `(a?b?)+`), as its text; a part repeated a fixed count (`(\d{3})+`) splits one way only; undefined when there is none. `pattern` is a
 * valid 'u'-mode pattern: there, `{` is always a quantifier and classes do not nest. A group whose every iteration
 * begins with a separator its repeated parts cannot match (`^[a-z]+(\.[a-z]+)*$`, `(-\d+)+`: a dotted login, a
 * hyphenated id) splits a value one way only, so it is not refused.
 */
export function nestedRepetition(pattern: string): string | undefined {
  const groups: Group[] = [newGroup(0)];
  let last: Atom | undefined;
  let i = 0;
  while (i < pattern.length) {
    const char = pattern[i] as string;
    const group = groups[groups.length - 1] as Group;
    if (char === '*' || char === '+' || char === '?' || char === '{') {
      const quantifier = quantifierAt(pattern, i);
      const atomText = last === undefined ? '' : pattern.slice(last.start, i);
      i = quantifier.end;
      if (last === undefined) continue;
      // Bounded counts too: `^(a{1,30}){1,30}$` takes minutes on 29 characters.
      if (quantifier.repeats && last.varies && !last.separated) return pattern.slice(last.start, i);
      group.repeats ||= quantifier.repeats;
      group.varies ||= quantifier.varies;
      if (group.first === atomText && last.start === firstAtomStart(group, pattern)) group.firstQuantified = true;
      if (quantifier.repeats && atomText.startsWith('(')) group.open = true;
      last = undefined;
      continue;
    }
    if (char === '(') {
      groups.push(newGroup(i));
      last = undefined;
      i = groupBodyStart(pattern, i);
      continue;
    }
    if (char === ')') {
      const closed = groups.length > 1 ? (groups.pop() as Group) : group;
      const outer = groups[groups.length - 1] as Group;
      outer.repeats ||= closed.repeats;
      outer.varies ||= closed.varies;
      outer.atoms.push(...closed.atoms);
      outer.open ||= closed.open;
      if (outer.first === undefined) outer.first = pattern.slice(closed.start, i + 1);
      last = { start: closed.start, repeats: closed.repeats, varies: closed.varies, separated: separated(closed) };
      i += 1;
      continue;
    }
    const end = char === '\\' ? escapeEnd(pattern, i) : char === '[' ? classEnd(pattern, i) : i + 1;
    if (char === '|') group.open = true;
    // An assertion or an alternative's start takes no quantifier ('u' mode refuses one there).
    last = char === '|' || char === '^' || char === '$' ? undefined : { start: i, repeats: false, varies: false };
    if (last !== undefined) {
      group.first ??= pattern.slice(i, end);
      group.atoms.push(pattern.slice(i, end));
    }
    i = end;
  }
  return undefined;
}

/** Where the group's first atom starts (its body's start). */
function firstAtomStart(group: Group, pattern: string): number {
  return group.start === 0 && pattern[0] !== '(' ? 0 : groupBodyStart(pattern, group.start);
}

/**
 * Every iteration of the group begins with one literal character (`\.`, `-`, `,`), neither repeated nor optional, that no
 * other part of it can match: a value's iterations cannot be split another way, so backtracking stays linear.
 */
function separated(group: Group): boolean {
  if (group.open || group.firstQuantified || group.first === undefined || group.atoms[0] !== group.first) return false;
  const literal = literalOf(group.first);
  if (literal === undefined) return false;
  return group.atoms.slice(1).every((atom) => !new RegExp(`^(?:${atom})$`, REGEX_FLAGS).test(literal));
}

/** The character an atom matches when it matches exactly one literal character (`a`, `-`, `\.`, `\/`), else undefined. */
function literalOf(atom: string): string | undefined {
  if (atom.length === 1) return '.()[]{}*+?|^$\\'.includes(atom) ? undefined : atom;
  if (atom.length === 2 && atom[0] === '\\' && /[^A-Za-z0-9]/.test(atom[1] as string)) return atom[1];
  return undefined;
}

function quantifierAt(pattern: string, at: number): Repetition & { end: number } {
  const char = pattern[at];
  let end = at + 1;
  let min = char === '+' ? 1 : 0;
  let max = Number.POSITIVE_INFINITY;
  if (char === '?') max = 1;
  else if (char === '{') {
    const close = pattern.indexOf('}', at);
    const [low, high] = pattern.slice(at + 1, close).split(',');
    min = Number(low);
    max = high === undefined ? min : high === '' ? Number.POSITIVE_INFINITY : Number(high);
    end = close + 1;
  }
  // A lazy quantifier (`+?`) backtracks as much as a greedy one.
  if (pattern[end] === '?') end += 1;
  return { end, repeats: max > 1, varies: max > min };
}

/** Where the body of the group opened at `at` starts: after `(`, `(?:`, `(?=`, `(?!`, `(?<=`, `(?<!` or `(?<name>`. */
function groupBodyStart(pattern: string, at: number): number {
  if (pattern[at + 1] !== '?') return at + 1;
  if (pattern[at + 2] !== '<') return at + 3;
  return pattern[at + 3] === '=' || pattern[at + 3] === '!' ? at + 4 : pattern.indexOf('>', at) + 1;
}

/** The end of the escape at `at` (`\d`, `\p{L}`, `\u{1F600}`, `\k<name>`). */
function escapeEnd(pattern: string, at: number): number {
  const next = pattern[at + 1];
  if ((next === 'p' || next === 'P' || next === 'u') && pattern[at + 2] === '{') return pattern.indexOf('}', at) + 1;
  if (next === 'k' && pattern[at + 2] === '<') return pattern.indexOf('>', at) + 1;
  return at + 2;
}

/** The end of the character class opened at `at`. */
function classEnd(pattern: string, at: number): number {
  let i = at + 1;
  while (i < pattern.length && pattern[i] !== ']') i = pattern[i] === '\\' ? escapeEnd(pattern, i) : i + 1;
  return i + 1;
}
