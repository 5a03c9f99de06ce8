/** Which regular expressions could backtrack for minutes, found at load (docs/mapping.md §12.2; regex-safety.ts). */
import { describe, expect, it } from 'vitest';
import { nestedRepetition, regexProblem } from '../../src/mapping/regex-safety.js';

describe('nestedRepetition', () => {
  it('finds a part whose count varies inside a repeated group, bounded or not', () => {
    const refused: Array<[string, string]> = [
      ['^(a+)+$', '(a+)+'],
      ['(\\w+\\s?)*$', '(\\w+\\s?)*'],
      ['(a*)*', '(a*)*'],
      ['(a+){2,9}', '(a+){2,9}'],
      ['(a{2,9})*', '(a{2,9})*'],
      ['^(a{1,30}){1,30}$', '(a{1,30}){1,30}'],
      ['^(\\w{1,20}\\s?){1,20}$', '(\\w{1,20}\\s?){1,20}'],
      ['(a{2,9}){2,3}', '(a{2,9}){2,3}'],
      ['^(a?b?)+$', '(a?b?)+'],
      ['((a+)?)+', '((a+)?)+'],
      ['x(?:a+)+?y', '(?:a+)+?'],
      ['(?<name>[a-z]+)*', '(?<name>[a-z]+)*'],
      ['^([a-z]+[0-9]*)+@', '([a-z]+[0-9]*)+'],
      ['(\\p{L}+ ?)+', '(\\p{L}+ ?)+'],
      // A separator a repeated part (or another part) can match, an optional one, or one among alternatives: no split is sure.
      ['^(\\..+)+$', '(\\..+)+'],
      ['^(\\.[a-z.]+)+$', '(\\.[a-z.]+)+'],
      ['^(-?\\d+)+$', '(-?\\d+)+'],
      ['^(-a-?b*)+$', '(-a-?b*)+'],
      ['^(-\\d+|x+)+$', '(-\\d+|x+)+'],
      ['^(-(\\d+)+)+$', '(\\d+)+'],
      ['^(-(?:\\d+)*)+$', '(?:\\d+)*'],
      ['^(-(?:ab)+)+$', '(-(?:ab)+)+'],
    ];
    for (const [pattern, part] of refused) expect(nestedRepetition(pattern), pattern).toBe(part);
  });

  it('passes single repetition, bounded nesting, and look-alikes in classes and escapes', () => {
    const accepted = [
      '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$',
      '^[0-9]+$',
      '.',
      '(ab?)*',
      '(a|b)+',
      '(a{2}){1,30}',
      '^(\\d{3}-){2}\\d{4}$',
      '[(]+a+',
      '\\(a+\\)+',
      '[a+]+',
      '(x(y+))z*',
      '\\u{1F600}+',
      '(?<=a+)b',
      '^E\\d{4,8}$',
      // Every iteration starts with a separator nothing else in it matches: a dotted login, a hyphenated id, a list.
      '^[a-z]+(\\.[a-z]+)+$',
      '^[a-z]+(\\.[a-z]+)*@hospital\\.org$',
      '^E(-\\d+)+$',
      '^\\w+(,\\s*\\w+)*$',
    ];
    for (const pattern of accepted) expect(nestedRepetition(pattern), pattern).toBeUndefined();
  });
});

describe('regexProblem', () => {
  it('says what is wrong: no regular expression, or a nested repetition; nothing for a safe one', () => {
    expect(regexProblem('^(E[0-9]+')).toMatch(/^not a regular expression \(Invalid regular expression: .*Unterminated group\)$/);
    expect(regexProblem('^(a+)+$')).toMatch(/^a regular expression with a repeated part inside a repeated group \(`\(a\+\)\+`\)/);
    expect(regexProblem('^[a-z]+$')).toBeUndefined();
  });
});
