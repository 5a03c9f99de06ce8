/**
 * FHIR search escaping: what the client escapes (identifier lookups by `system|value`, in lists) the sandbox's own
 * reading splits and unescapes back to the same systems and values, whatever backslashes, bars, commas and dollars
 * they hold.
 */
import { describe, expect, it } from 'vitest';
import { escapeSearchValue, tokenValue } from '../../src/fhir/search-escape.js';
import { Rng } from '../../src/sandbox/generator-random.js';
import { parseTokenValue, splitUnescaped, unescapeSearchValue } from '../../src/sandbox/search-token.js';

const ALPHABET = ['a', 'Z', '9', '\\', '|', ',', '$', ' ', 'é'];

function text(rng: Rng): string {
  let out = '';
  for (let k = rng.int(7); k > 0; k -= 1) out += rng.pick(ALPHABET);
  return out;
}

describe('FHIR search escaping', () => {
  it('a list of tokens survives escape, join, split and parse for 2,000 random lists', () => {
    const rng = new Rng(20261206);
    for (let round = 0; round < 2000; round += 1) {
      const tokens = Array.from({ length: 1 + rng.int(4) }, () => ({ system: rng.chance(0.3) ? undefined : text(rng), value: text(rng) }));
      const sent = tokens.map((token) => tokenValue(token.system, token.value)).join(',');
      expect(splitUnescaped(sent, ',').map(parseTokenValue), sent).toEqual(tokens);
    }
  });

  it('splits only at unescaped separators and keeps the escapes in the parts', () => {
    expect(splitUnescaped('a\\,b,c', ',')).toEqual(['a\\,b', 'c']);
    expect(splitUnescaped('a\\\\,b', ',')).toEqual(['a\\\\', 'b']); // an escaped backslash, then a real comma
    expect(splitUnescaped('', ',')).toEqual(['']);
    expect(splitUnescaped('x|y\\|z', '|')).toEqual(['x', 'y\\|z']);
  });

  it('reads system|value, |value and a bare value', () => {
    expect(parseTokenValue('urn:oid:1.2|E1234')).toEqual({ system: 'urn:oid:1.2', value: 'E1234' });
    expect(parseTokenValue('|E1234')).toEqual({ system: '', value: 'E1234' });
    expect(parseTokenValue('E\\|1234')).toEqual({ system: undefined, value: 'E|1234' });
    expect(parseTokenValue('s\\\\|v\\$')).toEqual({ system: 's\\', value: 'v$' });
    expect(escapeSearchValue('a\\b|c,d$e')).toBe('a\\\\b\\|c\\,d\\$e');
    expect(unescapeSearchValue('a\\\\b\\|c\\,d\\$e')).toBe('a\\b|c,d$e');
  });
});
