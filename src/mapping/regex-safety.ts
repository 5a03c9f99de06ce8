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
  /** … one without a maximum (`*`, `+`, `{n,}`). */
  unbounded: boolean;
}

interface Atom extends Repetition {
  readonly start: number;
}

/**
 * The first quantified atom that repeats a part which itself repeats, one of the two without a maximum (star height
 * above one: `(a+)+`, `(a*)*`, `(a+){2,9}`, `(a{2,9})*`), as its text; undefined when there is none. `pattern` is a
 * valid 'u'-mode pattern: there, `{` is always a quantifier and classes do not nest.
 */
export function nestedRepetition(pattern: string): string | undefined {
  const groups: Atom[] = [{ start: 0, repeats: false, unbounded: false }];
  let last: Atom | undefined;
  let i = 0;
  while (i < pattern.length) {
    const char = pattern[i] as string;
    const group = groups[groups.length - 1] as Atom;
    if (char === '*' || char === '+' || char === '?' || char === '{') {
      const quantifier = quantifierAt(pattern, i);
      i = quantifier.end;
      if (last === undefined) continue;
      if (quantifier.repeats && last.repeats && (quantifier.unbounded || last.unbounded)) return pattern.slice(last.start, i);
      group.repeats ||= quantifier.repeats;
      group.unbounded ||= quantifier.unbounded;
      last = undefined;
      continue;
    }
    if (char === '(') {
      groups.push({ start: i, repeats: false, unbounded: false });
      last = undefined;
      i = groupBodyStart(pattern, i);
      continue;
    }
    if (char === ')') {
      const closed = groups.length > 1 ? (groups.pop() as Atom) : group;
      const outer = groups[groups.length - 1] as Atom;
      outer.repeats ||= closed.repeats;
      outer.unbounded ||= closed.unbounded;
      last = { start: closed.start, repeats: closed.repeats, unbounded: closed.unbounded };
      i += 1;
      continue;
    }
    const end = char === '\\' ? escapeEnd(pattern, i) : char === '[' ? classEnd(pattern, i) : i + 1;
    // An assertion or an alternative's start takes no quantifier ('u' mode refuses one there).
    last = char === '|' || char === '^' || char === '$' ? undefined : { start: i, repeats: false, unbounded: false };
    i = end;
  }
  return undefined;
}

function quantifierAt(pattern: string, at: number): Repetition & { end: number } {
  const char = pattern[at];
  let end = at + 1;
  let max = Number.POSITIVE_INFINITY;
  if (char === '?') max = 1;
  else if (char === '{') {
    const close = pattern.indexOf('}', at);
    const [low, high] = pattern.slice(at + 1, close).split(',');
    max = high === undefined ? Number(low) : high === '' ? Number.POSITIVE_INFINITY : Number(high);
    end = close + 1;
  }
  // A lazy quantifier (`+?`) backtracks as much as a greedy one.
  if (pattern[end] === '?') end += 1;
  return { end, repeats: max > 1, unbounded: max === Number.POSITIVE_INFINITY };
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
